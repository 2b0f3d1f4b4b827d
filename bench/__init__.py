"""Benchmarks for the reactor (``make bench`` / ``python -m bench``); never run by pytest."""
