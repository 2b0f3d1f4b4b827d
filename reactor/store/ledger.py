"""Durable maintenance ledger and exchange-call journal: one SQLite file (WAL) in the state dir.

Maintenance counts are *derived* from records (never a stored counter) and a record's key is
unique per account, so recording twice is a no-op and a missing increment cannot happen. Several
processes (the running reactor and the CLI) may open the file at once; ``data_version`` lets the
reactor notice the CLI's writes without re-reading tables.

Storage faults surface as typed exceptions, never as a hang or a bare ``sqlite3`` error:

- :class:`LedgerUnavailable` - this read or write did not happen: the file is locked by another
  writer for longer than ``busy_timeout_ms``, the disk is full, an I/O error, or the file was
  deleted or replaced (:class:`LedgerReplaced`). For a caller this means exactly "not
  written": a margin call must not be sent without its intent, and the caller may try again
  later (locked and disk full recover by themselves; a replaced file does not, see below).
- :class:`LedgerCorrupt` - at open: the file is not a usable SQLite database.

A deleted or replaced file is detected by comparing the path's (device, inode) with the one
opened, before every write and on :meth:`Ledger.check` (the reactor's poll loop). The
connection then stays refused until the process restarts: writing on into an unlinked file
would lose every record at exit, and silently switching to a new empty file would forget
maintenance counts.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, get_args

from reactor.redaction import redact_text

__all__ = [
    "LEDGER_FILENAME",
    "MAINTENANCE_SOURCES",
    "AuditEntry",
    "JournalEntry",
    "JournalStatus",
    "Ledger",
    "LedgerCorrupt",
    "LedgerError",
    "LedgerReplaced",
    "LedgerUnavailable",
    "MaintenanceRecord",
    "MaintenanceSource",
    "Pause",
    "PositionCount",
    "ResultStatus",
]

LEDGER_FILENAME = "ledger.sqlite3"
# A journalled call: "pending" from its intent until its outcome is written.
ResultStatus = Literal["ok", "error", "unknown"]
JournalStatus = Literal["pending", "ok", "error", "unknown"]
_RESULT_STATUSES = frozenset(get_args(ResultStatus))

_SCHEMA = """
CREATE TABLE IF NOT EXISTS maintenance (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account     TEXT    NOT NULL,
    inst_id     TEXT    NOT NULL,
    pos_side    TEXT    NOT NULL,
    c_time      INTEGER,
    key         TEXT    NOT NULL,
    recorded_ms INTEGER NOT NULL,
    UNIQUE (account, key)
);
CREATE INDEX IF NOT EXISTS maintenance_position ON maintenance (account, inst_id, pos_side);
CREATE TABLE IF NOT EXISTS journal (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    account  TEXT    NOT NULL,
    inst_id  TEXT    NOT NULL,
    pos_side TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    amount   TEXT    NOT NULL,
    request  TEXT    NOT NULL,
    status   TEXT    NOT NULL,
    code     TEXT,
    msg      TEXT,
    sent_ms  INTEGER NOT NULL,
    done_ms  INTEGER
);
CREATE INDEX IF NOT EXISTS journal_pending ON journal (status) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS pauses (
    account   TEXT    NOT NULL,
    inst_id   TEXT    NOT NULL DEFAULT '',
    pos_side  TEXT    NOT NULL DEFAULT '',
    reason    TEXT    NOT NULL DEFAULT '',
    source    TEXT    NOT NULL DEFAULT '',
    paused_ms INTEGER NOT NULL,
    PRIMARY KEY (account, inst_id, pos_side)
);
"""
# Added columns (a ledger written by an older version gains them at open).
_ADDED_COLUMNS = (
    # The OKX billId (type 6, subType 160/161) credited to this call: a bill is credited to at
    # most one call, so an ambiguous call is never matched to an earlier call's bill and a
    # credited bill is never reported as a foreign transfer (docs/spec/okx-fidelity.md §5.4).
    ("journal", "bill_id", "TEXT"),
)

DEFAULT_BUSY_TIMEOUT_MS = 5000


class LedgerError(sqlite3.Error):
    """Base of the ledger's storage errors; the message names the file and the problem.

    A subclass of ``sqlite3.Error``, so that a caller catching SQLite's errors (the engine
    shell does) catches these too."""


class LedgerUnavailable(LedgerError):
    """The read or write did not happen (locked too long, disk full, I/O error, replaced).

    Contract with the engine: after this from :meth:`Ledger.journal_intent` no intent exists,
    so the call must not be sent; after it from :meth:`Ledger.journal_result` the intent
    stays ``pending`` in the file (a restart resolves it as unknown). ``reason`` is a short
    stable word for events and ``/healthz``: ``locked``, ``disk_full``, ``io_error``,
    ``replaced``, ``closed``.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class LedgerReplaced(LedgerUnavailable):
    """The ledger file was deleted or replaced under the running process; restart needed."""


class LedgerCorrupt(LedgerError):
    """At open: the file is not a usable SQLite database."""


def _reason(exc: sqlite3.Error) -> str:
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return "locked"
    if "full" in text:
        return "disk_full"
    if "readonly" in text or "read-only" in text:
        return "read_only"
    return "io_error"


_M_COLS = "id, account, inst_id, pos_side, c_time, key, recorded_ms, source, ord_id, voided_ms"
_J_COLS = (
    "id, account, inst_id, pos_side, action, amount, request, status, code, msg, sent_ms, done_ms,"
    " bill_id"
)


# Where a maintenance record came from (see MAINTENANCE_SOURCES).
MaintenanceSource = Literal["fill", "api", "cli", "backfill"]


@dataclass(frozen=True, slots=True)
class MaintenanceRecord:
    id: int
    account: str
    inst_id: str
    pos_side: str
    c_time: int | None
    key: str
    recorded_ms: int
    source: MaintenanceSource = "cli"
    ord_id: str | None = None  # the OKX order, when known: a second idempotency key
    voided_ms: int | None = None  # voided records stay (audit) but never count


MAINTENANCE_SOURCES: tuple[MaintenanceSource, ...] = get_args(MaintenanceSource)
"""Where a maintenance record came from: the ``orders`` channel (``fill``), the local HTTP API,
the CLI, or OKX's order history / bills read after a restart or reconnect (``backfill``)."""

_A_COLS = "id, record_id, account, key, action, actor, reason, at_ms"

# Added to ``maintenance`` after the first release: checked by column, not by a version number,
# so ledgers of any age (and other schema changes made meanwhile) migrate in place.
_MAINTENANCE_COLUMNS = (
    ("source", "ALTER TABLE maintenance ADD COLUMN source TEXT NOT NULL DEFAULT 'cli'"),
    ("ord_id", "ALTER TABLE maintenance ADD COLUMN ord_id TEXT"),
    ("voided_ms", "ALTER TABLE maintenance ADD COLUMN voided_ms INTEGER"),
)
_MAINTENANCE_EXTRA_SCHEMA = (
    "CREATE UNIQUE INDEX IF NOT EXISTS maintenance_ord ON maintenance (account, ord_id)"
    " WHERE ord_id IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS maintenance_audit (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        record_id INTEGER NOT NULL,
        account   TEXT    NOT NULL,
        key       TEXT    NOT NULL,
        action    TEXT    NOT NULL,
        actor     TEXT    NOT NULL,
        reason    TEXT    NOT NULL,
        at_ms     INTEGER NOT NULL
    )""",
)


def _migrate_maintenance_sources(db: sqlite3.Connection) -> None:
    """Add source / ord_id / voided_ms and the audit table; inside the caller's transaction.

    Records written before the migration came from the CLI (the only writer then): ``cli``.
    """
    have = {row[1] for row in db.execute("PRAGMA table_info(maintenance)")}
    for column, statement in _MAINTENANCE_COLUMNS:
        if column not in have:
            db.execute(statement)
    for statement in _MAINTENANCE_EXTRA_SCHEMA:
        db.execute(statement)


@dataclass(frozen=True, slots=True)
class PositionCount:
    """One position's counted maintenances, by source (``c_time`` None: records not tied)."""

    account: str
    inst_id: str
    pos_side: str
    c_time: int | None
    count: int
    sources: dict[str, int]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    record_id: int
    account: str
    key: str
    action: str  # "void"
    actor: str
    reason: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class JournalEntry:
    id: int
    account: str
    inst_id: str
    pos_side: str
    action: str
    amount: str
    request: str
    status: JournalStatus
    code: str | None
    msg: str | None
    sent_ms: int
    done_ms: int | None
    bill_id: str | None = None  # the OKX bill credited to this call (None: none yet)


@dataclass(frozen=True, slots=True)
class Pause:
    """An operator's pause: the whole account (``inst_id``/``pos_side`` None) or one position.
    The engine sends nothing for a paused position until it is resumed."""

    account: str
    inst_id: str | None
    pos_side: str | None
    reason: str
    source: str  # cli | api
    paused_ms: int

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return (self.account, self.inst_id, self.pos_side)

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "instId": self.inst_id,
            "posSide": self.pos_side,
            "reason": self.reason,
            "source": self.source,
            "pausedMs": self.paused_ms,
        }


class Ledger:
    """One connection to the ledger file; thread-safe (one lock), every write committed at once.

    Writes use WAL with ``synchronous=NORMAL``: a committed intent survives a crash or kill -9
    of the process (the case the journal is for) without an fsync on the hot path between a
    push and its margin call. A power cut may lose the last intents; the reactor then starts
    from the exchange's fresh snapshot, so nothing is re-sent from stale state.
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    ) -> None:
        """Open (and create) the ledger; raises :class:`LedgerCorrupt` or
        :class:`LedgerUnavailable` (locked, read-only, disk full) with one line."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        # The last storage failure, until a write succeeds again: for /healthz and events.
        self.problem: LedgerUnavailable | None = None
        # Autocommit (isolation_level=None): each statement is its own durable transaction.
        # busy_timeout bounds how long a write waits for another writer: past it, the write
        # fails with LedgerUnavailable("locked") instead of stalling the caller.
        timeout_s = busy_timeout_ms / 1000
        try:
            self._db = sqlite3.connect(
                self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise LedgerUnavailable(
                f"ledger {self.path}: cannot open: {exc}", _reason(exc)
            ) from None
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            check = self._db.execute("PRAGMA quick_check(1)").fetchone()
            if check is None or check[0] != "ok":
                raise LedgerCorrupt(f"ledger {self.path}: damaged: {check and check[0]}")
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")  # two processes starting at once: one creates
                for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    self._db.execute(statement)
                for table, column, kind in _ADDED_COLUMNS:
                    have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
                    if column not in have:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                _migrate_maintenance_sources(self._db)
                self._db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            text = str(exc)
            if isinstance(exc, sqlite3.OperationalError):
                raise LedgerUnavailable(f"ledger {self.path}: {text}", _reason(exc)) from None
            raise LedgerCorrupt(
                f"ledger {self.path}: not a usable SQLite database: {text}"
            ) from None
        except LedgerCorrupt:
            self._db.close()
            raise
        self._identity = _identity(self.path)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def check(self) -> None:
        """Raise :class:`LedgerReplaced` when the file at ``path`` is no longer the one open."""
        if self._closed:
            raise LedgerUnavailable(f"ledger {self.path}: closed", "closed")
        now = _identity(self.path)
        if now != self._identity:
            what = "deleted" if now is None else "replaced by another file"
            self.problem = LedgerReplaced(
                f"ledger {self.path}: {what} while in use; restart the reactor", "replaced"
            )
            raise self.problem

    @contextmanager
    def _guarded(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """The connection under the lock, with SQLite's failures as :class:`LedgerUnavailable`."""
        try:
            if write:
                self.check()
            with self._lock:
                if self._closed:
                    raise LedgerUnavailable(f"ledger {self.path}: closed", "closed")
                try:
                    yield self._db
                except sqlite3.Error as exc:
                    if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
                        raise
                    reason = _reason(exc)
                    msg = f"ledger {self.path}: {reason}: {exc}"
                    raise LedgerUnavailable(msg, reason) from None
        except LedgerUnavailable as exc:
            self.problem = exc
            raise
        if write:
            self.problem = None

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._guarded(write=False) as db:
            return db.execute(sql, params).fetchall()

    # --- maintenance ------------------------------------------------------------------------

    def record_maintenance(
        self,
        account: str,
        inst_id: str,
        pos_side: str,
        key: str,
        *,
        c_time: int | None = None,
    ) -> MaintenanceRecord | None:
        """Record one successful maintenance; None when ``(account, key)`` is already recorded.

        Logs nothing: the caller (the CLI, the one writer) logs ``maintenance.recorded``.

        ``c_time`` ties the record to one position; without it the record counts for the
        position open at ``recorded_ms`` (see :meth:`count`).
        """
        for name, value in (("account", account), ("inst_id", inst_id), ("pos_side", pos_side)):
            if not value:
                raise ValueError(f"{name} must not be empty")
        if not key:
            raise ValueError("key must not be empty")
        now = self._now_ms()
        with self._guarded(write=True) as db:
            cur = db.execute(
                "INSERT INTO maintenance (account, inst_id, pos_side, c_time, key, recorded_ms)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account, key) DO NOTHING",
                (account, inst_id, pos_side, c_time, key, now),
            )
            inserted = cur.rowcount == 1
            row_id = cur.lastrowid
        if not inserted or row_id is None:
            return None
        return MaintenanceRecord(row_id, account, inst_id, pos_side, c_time, key, now)

    def count(self, account: str, inst_id: str, pos_side: str, c_time: int) -> int:
        """Maintenances of the position opened at ``c_time`` (ms), derived from the records.

        Counts records tied to that cTime plus untied records made at or after it, so a
        reopened position (new cTime) starts again at 0.
        """
        rows = self._query(
            "SELECT COUNT(*) FROM maintenance WHERE account = ? AND inst_id = ? AND pos_side = ?"
            " AND (c_time = ? OR (c_time IS NULL AND recorded_ms >= ?)) AND voided_ms IS NULL",
            (account, inst_id, pos_side, c_time, c_time),
        )
        return int(rows[0][0])

    def list_maintenance(self) -> list[MaintenanceRecord]:
        return self.records_after(0)

    def records_after(self, record_id: int) -> list[MaintenanceRecord]:
        """Records with id > ``record_id``, oldest first: incremental polling."""
        rows = self._query(
            f"SELECT {_M_COLS} FROM maintenance WHERE id > ? ORDER BY id", (record_id,)
        )
        return [MaintenanceRecord(*row) for row in rows]

    def data_version(self) -> int:
        """Changes when *another* connection commits: a cheap "anything new?" check."""
        return int(self._query("PRAGMA data_version")[0][0])

    # --- maintenance: sources, order idempotency, void (counts from fills) -------------------

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
        """Record one maintenance from ``source``; None when already recorded.

        Idempotent on ``(account, key)`` and, when ``ord_id`` is given, on
        ``(account, ord_id)``: the fill seen on the ``orders`` channel, the same order recovered
        from history after a restart and a strategy's API call naming that order are one
        maintenance. A voided record keeps its keys, so nothing brings it back by itself.
        """
        if source not in MAINTENANCE_SOURCES:
            raise ValueError(f"source must be one of {list(MAINTENANCE_SOURCES)}, not {source!r}")
        for name, value in (
            ("account", account),
            ("inst_id", inst_id),
            ("pos_side", pos_side),
            ("key", key),
        ):
            if not value:
                raise ValueError(f"{name} must not be empty")
        if ord_id is not None and not ord_id:
            raise ValueError("ord_id must not be empty")
        now = self._now_ms()
        with self._guarded(write=True) as db:
            cur = db.execute(
                "INSERT INTO maintenance"
                " (account, inst_id, pos_side, c_time, key, recorded_ms, source, ord_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (account, inst_id, pos_side, c_time, key, now, source, ord_id),
            )
            inserted = cur.rowcount == 1
            row_id = cur.lastrowid
        if not inserted or row_id is None:
            return None
        return MaintenanceRecord(
            row_id, account, inst_id, pos_side, c_time, key, now, source, ord_id, None
        )

    def records_for(
        self, account: str, inst_id: str, pos_side: str, c_time: int
    ) -> list[MaintenanceRecord]:
        """The records :meth:`count` counts for that position, oldest first."""
        rows = self._query(
            f"SELECT {_M_COLS} FROM maintenance WHERE account = ? AND inst_id = ? AND pos_side = ?"
            " AND (c_time = ? OR (c_time IS NULL AND recorded_ms >= ?)) AND voided_ms IS NULL"
            " ORDER BY id",
            (account, inst_id, pos_side, c_time, c_time),
        )
        return [MaintenanceRecord(*row) for row in rows]

    def sources(self, account: str, inst_id: str, pos_side: str, c_time: int) -> dict[str, int]:
        """How many of that position's counted records came from each source."""
        out: dict[str, int] = {}
        for rec in self.records_for(account, inst_id, pos_side, c_time):
            out[rec.source] = out.get(rec.source, 0) + 1
        return out

    def position_counts(self) -> list[PositionCount]:
        """Counted (not voided) records grouped per position (``c_time`` None: untied)."""
        rows = self._query(
            "SELECT account, inst_id, pos_side, c_time, source, COUNT(*) FROM maintenance"
            " WHERE voided_ms IS NULL GROUP BY account, inst_id, pos_side, c_time, source"
            " ORDER BY account, inst_id, pos_side, c_time"
        )
        grouped: dict[tuple[str, str, str, int | None], dict[str, int]] = {}
        for account, inst_id, pos_side, c_time, source, n in rows:
            grouped.setdefault((account, inst_id, pos_side, c_time), {})[source] = int(n)
        return [
            PositionCount(*key, count=sum(by_source.values()), sources=by_source)
            for key, by_source in grouped.items()
        ]

    def recorded_ord_ids(self, account: str) -> set[str]:
        """Every order of ``account`` already recorded, voided ones included (never re-added)."""
        rows = self._query(
            "SELECT ord_id FROM maintenance WHERE account = ? AND ord_id IS NOT NULL", (account,)
        )
        return {row[0] for row in rows}

    def find(self, key: str, account: str | None = None) -> list[MaintenanceRecord]:
        """Records with that key (or that ``ord_id``), in every account unless one is named."""
        sql = f"SELECT {_M_COLS} FROM maintenance WHERE (key = ? OR ord_id = ?)"
        params: tuple[Any, ...] = (key, key)
        if account is not None:
            sql += " AND account = ?"
            params += (account,)
        return [MaintenanceRecord(*row) for row in self._query(sql + " ORDER BY id", params)]

    def void(self, account: str, key: str, *, actor: str, reason: str) -> MaintenanceRecord:
        """Void one record (it stops counting) and write an audit entry, in one transaction.

        ``key`` may be the record's key or its ``ord_id``. Raises KeyError when no such
        record exists and ValueError when it is already void (a second void changes nothing).
        """
        if not actor:
            raise ValueError("actor must not be empty")
        now = self._now_ms()
        with self._guarded(write=True) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    f"SELECT {_M_COLS} FROM maintenance WHERE account = ?"
                    " AND (key = ? OR ord_id = ?) ORDER BY id LIMIT 1",
                    (account, key, key),
                ).fetchone()
                if row is None:
                    raise KeyError(f"no maintenance record {key!r} in account {account!r}")
                rec = MaintenanceRecord(*row)
                if rec.voided_ms is not None:
                    raise ValueError(f"maintenance record {rec.key!r} is already void")
                db.execute("UPDATE maintenance SET voided_ms = ? WHERE id = ?", (now, rec.id))
                db.execute(
                    "INSERT INTO maintenance_audit (record_id, account, key, action, actor,"
                    " reason, at_ms) VALUES (?, ?, ?, 'void', ?, ?, ?)",
                    (rec.id, account, rec.key, actor, reason, now),
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return MaintenanceRecord(
            rec.id,
            rec.account,
            rec.inst_id,
            rec.pos_side,
            rec.c_time,
            rec.key,
            rec.recorded_ms,
            rec.source,
            rec.ord_id,
            now,
        )

    def audit_after(self, audit_id: int) -> list[AuditEntry]:
        """Audit entries with id > ``audit_id``, oldest first (the reactor polls for voids)."""
        rows = self._query(
            f"SELECT {_A_COLS} FROM maintenance_audit WHERE id > ? ORDER BY id", (audit_id,)
        )
        return [AuditEntry(*row) for row in rows]

    # --- journal ----------------------------------------------------------------------------

    def journal_intent(
        self, account: str, inst_id: str, pos_side: str, action: str, amount: str, request: str
    ) -> int:
        """Write a pending entry, committed before the call is sent; returns its id."""
        with self._guarded(write=True) as db:
            cur = db.execute(
                "INSERT INTO journal (account, inst_id, pos_side, action, amount, request,"
                " status, sent_ms) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                (account, inst_id, pos_side, action, amount, redact_text(request), self._now_ms()),
            )
            row_id = cur.lastrowid
        assert row_id is not None
        return row_id

    def journal_result(
        self, entry_id: int, status: ResultStatus, code: str | None = None, msg: str | None = None
    ) -> None:
        """Complete an entry: "ok", "error" (with OKX code and message) or "unknown"."""
        if status not in _RESULT_STATUSES:
            raise ValueError(f"status must be one of {sorted(_RESULT_STATUSES)}, not {status!r}")
        with self._guarded(write=True) as db:
            cur = db.execute(
                "UPDATE journal SET status = ?, code = ?, msg = ?, done_ms = ? WHERE id = ?",
                (status, code, None if msg is None else redact_text(msg), self._now_ms(), entry_id),
            )
            found = cur.rowcount == 1
        if not found:
            raise KeyError(f"no journal entry {entry_id}")

    def journal_bill(
        self, entry_id: int, bill_id: str, *, status: ResultStatus | None = None
    ) -> None:
        """Credit OKX bill ``bill_id`` to an entry (and, when given, set its status: an
        ambiguous call a bill showed applied becomes "ok"). A bill already credited to another
        entry is refused with ``ValueError``: one bill, one call."""
        if status is not None and status not in _RESULT_STATUSES:
            raise ValueError(f"status must be one of {sorted(_RESULT_STATUSES)}, not {status!r}")
        with self._guarded(write=True) as db:
            other = db.execute(
                "SELECT id FROM journal WHERE bill_id = ? AND id != ?", (bill_id, entry_id)
            ).fetchone()
            if other is not None:
                raise ValueError(f"bill {bill_id} is already credited to journal entry {other[0]}")
            cur = db.execute(
                "UPDATE journal SET bill_id = ?, status = COALESCE(?, status) WHERE id = ?",
                (bill_id, status, entry_id),
            )
            found = cur.rowcount == 1
        if not found:
            raise KeyError(f"no journal entry {entry_id}")

    def journal_entry(self, entry_id: int) -> JournalEntry | None:
        rows = self._query(f"SELECT {_J_COLS} FROM journal WHERE id = ?", (entry_id,))
        return JournalEntry(*rows[0]) if rows else None

    def pending_intents(self) -> list[JournalEntry]:
        """Entries sent (or about to be) with no result: after a crash, outcome unknown."""
        rows = self._query(f"SELECT {_J_COLS} FROM journal WHERE status = 'pending' ORDER BY id")
        return [JournalEntry(*row) for row in rows]

    def journal_since(self, since_ms: int) -> list[JournalEntry]:
        """Entries sent at or after ``since_ms``, oldest first (the runaway guard's window)."""
        rows = self._query(
            f"SELECT {_J_COLS} FROM journal WHERE sent_ms >= ? ORDER BY id", (since_ms,)
        )
        return [JournalEntry(*row) for row in rows]

    def journal(self, limit: int = 100) -> list[JournalEntry]:
        """The latest ``limit`` entries, newest first."""
        rows = self._query(f"SELECT {_J_COLS} FROM journal ORDER BY id DESC LIMIT ?", (limit,))
        return [JournalEntry(*row) for row in rows]

    # --- pauses (operator controls) ---------------------------------------------------------

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
        if not account or (inst_id is None) != (pos_side is None):
            raise ValueError("pause: an account, and instId with posSide or neither")
        with self._guarded(write=True) as db:
            cur = db.execute(
                "INSERT INTO pauses (account, inst_id, pos_side, reason, source, paused_ms)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (account, inst_id or "", pos_side or "", reason[:200], source, self._now_ms()),
            )
            return cur.rowcount == 1

    def resume(self, account: str, inst_id: str | None = None, pos_side: str | None = None) -> bool:
        """Remove a pause; False when there was none (resuming twice is harmless)."""
        with self._guarded(write=True) as db:
            cur = db.execute(
                "DELETE FROM pauses WHERE account = ? AND inst_id = ? AND pos_side = ?",
                (account, inst_id or "", pos_side or ""),
            )
            return cur.rowcount == 1

    def pauses(self) -> list[Pause]:
        rows = self._query(
            "SELECT account, inst_id, pos_side, reason, source, paused_ms FROM pauses"
            " ORDER BY account, inst_id, pos_side"
        )
        return [Pause(a, i or None, ps or None, r, src, int(ms)) for a, i, ps, r, src, ms in rows]

    # --- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)
