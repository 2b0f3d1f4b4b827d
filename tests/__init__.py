"""Test suite (a package, so tests/okx does not shadow the python-okx `okx` module)."""
