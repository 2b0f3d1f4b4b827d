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

__all__ = ["LEDGER_FILENAME", "JournalEntry", "Ledger", "MaintenanceRecord"]

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

_M_COLS = "id, account, inst_id, pos_side, c_time, key, recorded_ms"
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
            " AND (c_time = ? OR (c_time IS NULL AND recorded_ms >= ?))",
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
