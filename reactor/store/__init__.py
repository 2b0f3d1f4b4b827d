"""Durable state: the ledger (maintenance records, pauses, the call journal, the audit trail)
and the per-host state directory with its lock.

Callers import from here: :class:`Ledger` is the interface they type against,
:class:`SqliteLedger` the implementation they open, and the records, statuses and errors are
shared by every backend.
"""

from reactor.store.db import (
    DEFAULT_BUSY_TIMEOUT_MS,
    SCHEMA_VERSION,
    LedgerCorrupt,
    LedgerError,
    LedgerReplaced,
    LedgerTooNew,
    LedgerUnavailable,
)
from reactor.store.interface import Ledger
from reactor.store.journal import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    Intent,
    JournalEntry,
    JournalStatus,
    ResultStatus,
)
from reactor.store.maintenance import (
    MAINTENANCE_SOURCES,
    AuditEntry,
    MaintenanceRecord,
    MaintenanceSource,
    PositionCount,
)
from reactor.store.pauses import Pause
from reactor.store.sqlite import SqliteLedger

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "FINAL_STATUSES",
    "MAINTENANCE_SOURCES",
    "OPEN_STATUSES",
    "SCHEMA_VERSION",
    "AuditEntry",
    "Intent",
    "JournalEntry",
    "JournalStatus",
    "Ledger",
    "LedgerCorrupt",
    "LedgerError",
    "LedgerReplaced",
    "LedgerTooNew",
    "LedgerUnavailable",
    "MaintenanceRecord",
    "MaintenanceSource",
    "Pause",
    "PositionCount",
    "ResultStatus",
    "SqliteLedger",
]
