"""Durable maintenance ledger and exchange-call journal: one SQLite file (WAL) in the state dir.

Maintenance counts are *derived* from records (never a stored counter) and a record's key is
unique per account, so recording twice is a no-op and a missing increment cannot happen. Several
processes (the running reactor and the CLI) may open the file at once; ``data_version`` lets the
reactor notice the CLI's writes without re-reading tables.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "LEDGER_FILENAME",
    "MAINTENANCE_SOURCES",
    "AuditEntry",
    "JournalEntry",
    "Ledger",
    "MaintenanceRecord",
    "PositionCount",
]

LEDGER_FILENAME = "ledger.sqlite3"
_RESULT_STATUSES = frozenset({"ok", "error", "unknown"})

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
"""

_M_COLS = "id, account, inst_id, pos_side, c_time, key, recorded_ms, source, ord_id, voided_ms"
_J_COLS = (
    "id, account, inst_id, pos_side, action, amount, request, status, code, msg, sent_ms, done_ms"
)


@dataclass(frozen=True, slots=True)
class MaintenanceRecord:
    id: int
    account: str
    inst_id: str
    pos_side: str
    c_time: int | None
    key: str
    recorded_ms: int
    source: str = "cli"  # one of MAINTENANCE_SOURCES
    ord_id: str | None = None  # the OKX order, when known: a second idempotency key
    voided_ms: int | None = None  # voided records stay (audit) but never count


MAINTENANCE_SOURCES = ("fill", "api", "cli", "backfill")
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
    status: str  # "pending" | "ok" | "error" | "unknown"
    code: str | None
    msg: str | None
    sent_ms: int
    done_ms: int | None


class Ledger:
    """One connection to the ledger file; thread-safe (one lock), every write committed at once.

    Writes use WAL with ``synchronous=NORMAL``: a committed intent survives a crash or kill -9
    of the process (the case the journal is for) without an fsync on the hot path between a
    push and its margin call. A power cut may lose the last intents; the reactor then starts
    from the exchange's fresh snapshot, so nothing is re-sent from stale state.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        # Autocommit (isolation_level=None): each statement is its own durable transaction.
        self._db = sqlite3.connect(
            self.path, timeout=5.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # two processes starting at once: one creates
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                self._db.execute(statement)
            _migrate_maintenance_sources(self._db)
            self._db.execute("COMMIT")

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

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
        with self._lock:
            cur = self._db.execute(
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
        source: str,
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
        with self._lock:
            cur = self._db.execute(
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
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    f"SELECT {_M_COLS} FROM maintenance WHERE account = ?"
                    " AND (key = ? OR ord_id = ?) ORDER BY id LIMIT 1",
                    (account, key, key),
                ).fetchone()
                if row is None:
                    raise KeyError(f"no maintenance record {key!r} in account {account!r}")
                rec = MaintenanceRecord(*row)
                if rec.voided_ms is not None:
                    raise ValueError(f"maintenance record {rec.key!r} is already void")
                self._db.execute("UPDATE maintenance SET voided_ms = ? WHERE id = ?", (now, rec.id))
                self._db.execute(
                    "INSERT INTO maintenance_audit (record_id, account, key, action, actor,"
                    " reason, at_ms) VALUES (?, ?, ?, 'void', ?, ?, ?)",
                    (rec.id, account, rec.key, actor, reason, now),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
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
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO journal (account, inst_id, pos_side, action, amount, request,"
                " status, sent_ms) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                (account, inst_id, pos_side, action, amount, request, self._now_ms()),
            )
            row_id = cur.lastrowid
        assert row_id is not None
        return row_id

    def journal_result(
        self, entry_id: int, status: str, code: str | None = None, msg: str | None = None
    ) -> None:
        """Complete an entry: "ok", "error" (with OKX code and message) or "unknown"."""
        if status not in _RESULT_STATUSES:
            raise ValueError(f"status must be one of {sorted(_RESULT_STATUSES)}, not {status!r}")
        with self._lock:
            cur = self._db.execute(
                "UPDATE journal SET status = ?, code = ?, msg = ?, done_ms = ? WHERE id = ?",
                (status, code, msg, self._now_ms(), entry_id),
            )
            found = cur.rowcount == 1
        if not found:
            raise KeyError(f"no journal entry {entry_id}")

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

    # --- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
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
