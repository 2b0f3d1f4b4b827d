"""The ledger on one SQLite file: the connection (``db``) under the tables' shared rules."""

from __future__ import annotations

from reactor.store.db import Database
from reactor.store.interface import Ledger

__all__ = ["SqliteLedger"]


class SqliteLedger(Database, Ledger):
    """:class:`reactor.store.Ledger` on a SQLite file (WAL) in the state dir.

    Opened with ``SqliteLedger(path, clock=..., busy_timeout_ms=...)``; see
    :class:`reactor.store.db.Database` for the connection, its durability and its faults.
    """
