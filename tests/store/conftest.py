"""The store tests' backend fixtures (``backend``, ``open_ledger``: SQLite and PostgreSQL)."""

from tests.store.backends import backend, open_ledger  # noqa: F401
