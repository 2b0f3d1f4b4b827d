"""The ledger's interface: what the engine, service, local APIs, CLI and status ask of storage.

:class:`reactor.store.SqliteLedger` implements it on one SQLite file and
:class:`reactor.store.postgres.PostgresLedger` on a server database shared by several hosts.
Both inherit every rule from the tables (``maintenance``, ``journal``, ``pauses``, on
:class:`reactor.store.base.LedgerBase`) and add only their SQL runners and connection, so the
contract is one: idempotent records, derived counts, an intent committed before its call is
sent, and every storage fault raised as :class:`LedgerUnavailable` ("did not happen"), never as
a driver error.
"""

from __future__ import annotations

from abc import abstractmethod

from reactor.store.db import LedgerUnavailable
from reactor.store.journal import JournalTables
from reactor.store.maintenance import MaintenanceTables
from reactor.store.pauses import PauseTables

__all__ = ["Ledger"]


class Ledger(MaintenanceTables, JournalTables, PauseTables):
    """Maintenance records, the call journal and pauses, behind one connection.

    Every method may raise :class:`LedgerUnavailable` (nothing was read or written); writes
    validate their arguments with ``ValueError`` and name a missing row with ``KeyError``.
    """

    # The last storage failure, until a write succeeds again (for ``/healthz``).
    problem: LedgerUnavailable | None

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`LedgerUnavailable` (:class:`LedgerReplaced`: for good) when the
        storage is closed, unreachable or no longer the one opened."""

    @abstractmethod
    def data_version(self) -> int:
        """Changes when *another* connection commits: a cheap "anything new?" check."""
