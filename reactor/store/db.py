"""The SQLite ledger's connection: opening, the schema and its migrations, and storage errors.

The ledger is one SQLite file (WAL) in the state dir; the tables' rules live beside this
module (``maintenance``, ``journal``, ``pauses``), shared with the PostgreSQL ledger, and run
their SQL through the runners :class:`Database` implements (:class:`reactor.store.base.LedgerBase`);
:class:`reactor.store.SqliteLedger` puts them together behind the :class:`reactor.store.Ledger`
interface.

Several processes (the running reactor and the CLI) may open the file at once; ``data_version``
lets the reactor notice the CLI's writes without re-reading tables.

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
from pathlib import Path
from typing import Any

from reactor.store.base import SQLITE, LedgerBase, Result, Run

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "SCHEMA_VERSION",
    "Database",
    "LedgerCorrupt",
    "LedgerError",
    "LedgerReplaced",
    "LedgerTooNew",
    "LedgerUnavailable",
    "schema_version",
]

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
CREATE INDEX IF NOT EXISTS journal_account_sent ON journal (account, sent_ms);
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
    # The send time on OKX's clock (the offset in force then): bills are matched on it, so a
    # later step of the local clock never makes an earlier call's bill look foreign.
    ("journal", "sent_okx_ms", "INTEGER"),
)
# Indexes over added columns, created after them. journal_bill: crediting a bill checks that no
# other row holds it, which scanned the whole journal per credit (quadratic in a fleet-wide
# burst: 20,000 credits at 1,000 accounts, docs/performance.md).
_ADDED_INDEXES = (
    "CREATE INDEX IF NOT EXISTS journal_bill ON journal (bill_id) WHERE bill_id IS NOT NULL",
)

DEFAULT_BUSY_TIMEOUT_MS = 5000

# The ledger's schema version, kept in SQLite's ``PRAGMA user_version``: raised whenever a
# release changes the schema (a migration above), so that an older program refuses a ledger a
# newer one has written instead of misreading it (docs/upgrading.md). 0: a ledger written
# before the schema carried a version (it migrates in place like any older one).
SCHEMA_VERSION = 1


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


class LedgerTooNew(LedgerError):
    """At open: a newer version of the program wrote this ledger (a downgrade); refused
    before anything is read or written, since its tables may mean something else now."""

    def __init__(self, path: Path, found: int) -> None:
        super().__init__(
            f"ledger {path}: schema version {found} was written by a newer okx-margin-reactor "
            f"(this one knows up to {SCHEMA_VERSION}); install that version again or restore "
            "the backup taken before the upgrade (docs/upgrading.md)"
        )
        self.found = found


def schema_version(db: sqlite3.Connection) -> int:
    """The schema version a ledger file carries (0: from before versions)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _reason(exc: sqlite3.Error) -> str:
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return "locked"
    if "full" in text:
        return "disk_full"
    if "readonly" in text or "read-only" in text:
        return "read_only"
    return "io_error"


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


class Database(LedgerBase):
    """One connection to the ledger file; thread-safe (one lock), every write committed at once.

    The tables' rules run their SQL through the runners below, all of them under
    :meth:`_guarded`, so every storage fault has one translation.

    Writes use WAL with ``synchronous=NORMAL``: a committed intent survives a crash or kill -9
    of the process (the case the journal is for) without an fsync on the hot path between a
    push and its margin call. A power cut may lose the last intents; the reactor then starts
    from the exchange's fresh snapshot, so nothing is re-sent from stale state.
    """

    dialect = SQLITE

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
                found = schema_version(self._db)
                if found > SCHEMA_VERSION:
                    self._db.execute("ROLLBACK")
                    raise LedgerTooNew(self.path, found)
                for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    self._db.execute(statement)
                for table, column, kind in _ADDED_COLUMNS:
                    have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
                    if column not in have:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                for statement in _ADDED_INDEXES:
                    self._db.execute(statement)
                _migrate_maintenance_sources(self._db)
                if found != SCHEMA_VERSION:
                    self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self._db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            text = str(exc)
            if isinstance(exc, sqlite3.OperationalError):
                raise LedgerUnavailable(f"ledger {self.path}: {text}", _reason(exc)) from None
            raise LedgerCorrupt(
                f"ledger {self.path}: not a usable SQLite database: {text}"
            ) from None
        except (LedgerCorrupt, LedgerTooNew):
            self._db.close()
            raise
        self._identity = _identity(self.path)

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

    def _execute(self, sql: str, params: tuple[Any, ...], *, polled: bool = False) -> int:
        with self._guarded(write=True) as db:
            return int(db.execute(sql, params).rowcount)

    def _insert(self, sql: str, params: tuple[Any, ...], *, polled: bool = False) -> int | None:
        with self._guarded(write=True) as db:
            cur = db.execute(sql, params)
            return cur.lastrowid if cur.rowcount == 1 else None

    @contextmanager
    def _transaction(self) -> Iterator[Run]:
        """``BEGIN IMMEDIATE``: the write lock from the first statement, so no other process
        changes what the block read before it writes."""

        def run(sql: str, params: tuple[Any, ...] = (), *, polled: bool = False) -> Result:
            cur = db.execute(sql, params)
            return Result(cur.fetchall(), cur.rowcount)

        with self._guarded(write=True) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield run
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def data_version(self) -> int:
        """Changes when *another* connection commits: a cheap "anything new?" check."""
        return int(self._query("PRAGMA data_version")[0][0])

    # --- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)
