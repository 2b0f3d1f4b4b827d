"""The ledger's interface: what the engine, service, local APIs, CLI and status ask of storage.

:class:`reactor.store.SqliteLedger` implements it on one SQLite file; a second backend (a
server database shared by several hosts) implements the same methods with the same contract:
idempotent records, derived counts, an intent committed before its call is sent, and every
storage fault raised as :class:`LedgerUnavailable` ("did not happen"), never as a driver error.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from reactor.store.db import LedgerUnavailable
from reactor.store.journal import JournalEntry, ResultStatus
from reactor.store.maintenance import (
    AuditEntry,
    MaintenanceRecord,
    MaintenanceSource,
    PositionCount,
)
from reactor.store.pauses import Pause

__all__ = ["Ledger"]


class Ledger(Protocol):
    """Maintenance records, the call journal and pauses, behind one connection.

    Every method may raise :class:`LedgerUnavailable` (nothing was read or written); writes
    validate their arguments with ``ValueError`` and name a missing row with ``KeyError``.
    """

    @property
    def problem(self) -> LedgerUnavailable | None:
        """The last storage failure, until a write succeeds again (for ``/healthz``)."""
        ...

    # --- connection -------------------------------------------------------------------------

    def check(self) -> None:
        """Raise :class:`LedgerReplaced` when the storage is no longer the one opened."""
        ...

    def data_version(self) -> int:
        """Changes when *another* connection commits: a cheap "anything new?" check."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    # --- maintenance ------------------------------------------------------------------------

    def record(
        self,
        account: str,
        inst_id: str,
        pos_side: str,
        key: str,
        *,
        source: MaintenanceSource,
        c_time: int | None = None,
        ord_id: str | None = None,
    ) -> MaintenanceRecord | None:
        """Record one maintenance; None when its key (or ``ord_id``) is already recorded."""
        ...

    def count(self, account: str, inst_id: str, pos_side: str, c_time: int) -> int:
        """Counted (not voided) maintenances of the position opened at ``c_time`` (ms)."""
        ...

    def records_for(
        self, account: str, inst_id: str, pos_side: str, c_time: int
    ) -> list[MaintenanceRecord]:
        """The records :meth:`count` counts, oldest first."""
        ...

    def sources(self, account: str, inst_id: str, pos_side: str, c_time: int) -> dict[str, int]:
        """How many of that position's counted records came from each source."""
        ...

    def list_maintenance(self) -> list[MaintenanceRecord]:
        """Every record, voided ones included, oldest first."""
        ...

    def records_after(self, record_id: int) -> list[MaintenanceRecord]:
        """Records with id > ``record_id``, oldest first: incremental polling."""
        ...

    def position_counts(self) -> list[PositionCount]:
        """Counted records grouped per position (``c_time`` None: untied)."""
        ...

    def recorded_ord_ids(self, account: str) -> set[str]:
        """Every order of ``account`` already recorded, voided ones included."""
        ...

    def find(self, key: str, account: str | None = None) -> list[MaintenanceRecord]:
        """Records with that key (or that ``ord_id``), in every account unless one is named."""
        ...

    def void(self, account: str, key: str, *, actor: str, reason: str) -> MaintenanceRecord:
        """Void one record and write its audit entry, atomically."""
        ...

    def audit_after(self, audit_id: int) -> list[AuditEntry]:
        """Audit entries with id > ``audit_id``, oldest first."""
        ...

    # --- journal ----------------------------------------------------------------------------

    def journal_intent(
        self,
        account: str,
        inst_id: str,
        pos_side: str,
        action: str,
        amount: str,
        request: str,
        *,
        okx_ms: int | None = None,
    ) -> int:
        """Write a pending entry, committed before the call is sent; returns its id.
        ``okx_ms``: the send time on OKX's clock, with the offset in force now."""
        ...

    def journal_result(
        self, entry_id: int, status: ResultStatus, code: str | None = None, msg: str | None = None
    ) -> None:
        """Complete an entry: "ok", "error" (with OKX code and message), "unknown" or
        "expired" (its bills are gone)."""
        ...

    def journal_bill(
        self, entry_id: int, bill_id: str, *, status: ResultStatus | None = None
    ) -> None:
        """Credit OKX bill ``bill_id`` to an entry; one bill, one call (else ValueError)."""
        ...

    def journal_entry(self, entry_id: int) -> JournalEntry | None: ...

    def pending_intents(self) -> list[JournalEntry]:
        """Entries with no result: after a crash, outcome unknown."""
        ...

    def open_entries(self) -> list[JournalEntry]:
        """Entries not final (``pending`` or ``unknown``), oldest first."""
        ...

    def journal_since(self, since_ms: int) -> list[JournalEntry]:
        """Entries sent at or after ``since_ms``, oldest first."""
        ...

    def journal(self, limit: int = 100) -> list[JournalEntry]:
        """The latest ``limit`` entries, newest first."""
        ...

    # --- pauses -----------------------------------------------------------------------------

    def pause(
        self,
        account: str,
        inst_id: str | None = None,
        pos_side: str | None = None,
        reason: str = "",
        *,
        source: str = "",
    ) -> bool:
        """Pause an account (no ``inst_id``) or one position; False when already paused."""
        ...

    def resume(self, account: str, inst_id: str | None = None, pos_side: str | None = None) -> bool:
        """Remove a pause; False when there was none."""
        ...

    def pauses(self) -> list[Pause]: ...
