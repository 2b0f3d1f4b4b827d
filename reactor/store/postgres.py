"""The ledger on PostgreSQL (``storage.kind: postgres``): the same interface as the SQLite
:class:`~reactor.store.Ledger`, shared by every instance of a high-availability scope.

Why synchronous (psycopg 3, one connection, a lock): the engine calls the ledger synchronously
between a decision and its margin call (``journal_intent`` must commit before the call is sent),
and this backend keeps that contract instead of changing the engine. What makes that safe on
the event loop is that **every call is bounded**, whatever the database does:

- PostgreSQL's ``statement_timeout`` and ``lock_timeout`` (a slow or blocked statement),
  ``idle_in_transaction_session_timeout`` (a client that stalls inside ``void``'s transaction);
- libpq's ``connect_timeout``, TCP keepalives and ``tcp_user_timeout`` (a dead peer);
- a watchdog thread that shuts the socket down when a call runs past ``watchdog_s(timeout_s)``
  (a server that is *frozen*: SIGSTOPped or a VM paused, whose kernel still ACKs, so no TCP
  timer fires); later calls then fail at once until the poll loop's probe reaches it again.

A call past its bound raises :class:`LedgerUnavailable` (``timeout``/``unreachable``): for the
engine that is "not written", exactly as a locked SQLite file, and no call is sent without its
intent. The next call reconnects.

The schema is versioned (``schema_version``), created or migrated on open and by
``reactor db migrate``. The journal carries the ``scope`` and ``epoch`` of the lease it was
written under (:mod:`reactor.store.lease`); with a :class:`Fence` set, an intent is written only
while this instance holds that epoch's lease, in ONE autocommit statement.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from reactor.redaction import redact_text
from reactor.store.base import POSTGRES, Result, Run
from reactor.store.db import LedgerCorrupt, LedgerUnavailable
from reactor.store.interface import Ledger
from reactor.store.journal import INTENT_COLUMNS, IntentRow

__all__ = ["SCHEMA_VERSION", "Fence", "PostgresLedger", "describe_dsn", "migrate", "watchdog_s"]

DEFAULT_TIMEOUT_S = 2.0

# Versioned migrations: each entry brings the schema from index to index + 1.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE maintenance (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            account     text   NOT NULL,
            inst_id     text   NOT NULL,
            pos_side    text   NOT NULL,
            c_time      bigint,
            key         text   NOT NULL,
            recorded_ms bigint NOT NULL,
            source      text   NOT NULL DEFAULT 'cli',
            ord_id      text,
            voided_ms   bigint,
            UNIQUE (account, key)
        )""",
        "CREATE INDEX maintenance_position ON maintenance (account, inst_id, pos_side)",
        "CREATE UNIQUE INDEX maintenance_ord ON maintenance (account, ord_id)"
        " WHERE ord_id IS NOT NULL",
        """CREATE TABLE maintenance_audit (
            id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            record_id bigint NOT NULL,
            account   text   NOT NULL,
            key       text   NOT NULL,
            action    text   NOT NULL,
            actor     text   NOT NULL,
            reason    text   NOT NULL,
            at_ms     bigint NOT NULL
        )""",
        """CREATE TABLE journal (
            id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            scope    text   NOT NULL DEFAULT '',
            epoch    bigint NOT NULL DEFAULT 0,
            account  text   NOT NULL,
            inst_id  text   NOT NULL,
            pos_side text   NOT NULL,
            action   text   NOT NULL,
            amount   text   NOT NULL,
            request  text   NOT NULL,
            status   text   NOT NULL,
            code     text,
            msg      text,
            sent_ms  bigint NOT NULL,
            done_ms  bigint,
            bill_id  text,
            -- written by the client with the intent: finds an intent whose write timed out
            intent_key text UNIQUE
        )""",
        "CREATE INDEX journal_pending ON journal (status) WHERE status = 'pending'",
        "CREATE INDEX journal_sent ON journal (sent_ms)",
        """CREATE TABLE pauses (
            account   text   NOT NULL,
            inst_id   text   NOT NULL DEFAULT '',
            pos_side  text   NOT NULL DEFAULT '',
            reason    text   NOT NULL DEFAULT '',
            source    text   NOT NULL DEFAULT '',
            paused_ms bigint NOT NULL,
            PRIMARY KEY (account, inst_id, pos_side)
        )""",
        # "Anything new from another process?" (SQLite's data_version): one counter, bumped by
        # every row change of the tables the running reactor polls.
        "CREATE TABLE ledger_version (one boolean PRIMARY KEY DEFAULT true CHECK (one),"
        " v bigint NOT NULL)",
        "INSERT INTO ledger_version (v) VALUES (0)",
        """CREATE FUNCTION ledger_bump() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN UPDATE ledger_version SET v = v + 1; RETURN NULL; END $$""",
        "CREATE TRIGGER maintenance_bump AFTER INSERT OR UPDATE OR DELETE ON maintenance"
        " FOR EACH ROW EXECUTE FUNCTION ledger_bump()",
        "CREATE TRIGGER audit_bump AFTER INSERT OR UPDATE OR DELETE ON maintenance_audit"
        " FOR EACH ROW EXECUTE FUNCTION ledger_bump()",
        "CREATE TRIGGER pauses_bump AFTER INSERT OR UPDATE OR DELETE ON pauses"
        " FOR EACH ROW EXECUTE FUNCTION ledger_bump()",
        # One row per scope (reactor.store.lease): expiry from the database clock, an epoch
        # that grows on every grant.
        """CREATE TABLE lease (
            name       text        PRIMARY KEY,
            holder     text,
            epoch      bigint      NOT NULL DEFAULT 0,
            expires_at timestamptz NOT NULL DEFAULT '-infinity'
        )""",
    ),
    (
        # Sharding: which scope (shard) each account belongs to. The primary key is the rule
        # that an account is in one scope only; each instance claims its config's accounts at
        # start (reactor.store.lease.LeaseStore.claim) and is refused on a clash.
        """CREATE TABLE scope_account (
            account text PRIMARY KEY,
            scope   text NOT NULL
        )""",
        # Renewals rewrite every row's expires_at: room on each page keeps those updates HOT
        # (no new index entry, one WAL record a row; measured for 1,000 leases: 3,013 -> 1,016
        # WAL records, 3.0 -> 1.1 ms, the table 1.2 MB -> 128 kB). Applies to new pages; the
        # lease table is small, VACUUM FULL lease rewrites it.
        "ALTER TABLE lease SET (fillfactor = 50)",
    ),
    (
        # The send time on OKX's clock (the offset in force then): bills are matched on it, so
        # a later step of the local clock never makes an earlier call's bill look foreign.
        "ALTER TABLE journal ADD COLUMN sent_okx_ms bigint",
    ),
    (
        # A bills read matches one account's rows (Ledger.journal_since(since, account)), and
        # crediting a bill checks no other row holds it: both scanned the whole journal, which
        # made a fleet-wide burst quadratic (docs/performance.md, funding).
        "CREATE INDEX journal_account_sent ON journal (account, sent_ms)",
        "CREATE INDEX journal_bill ON journal (bill_id) WHERE bill_id IS NOT NULL",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)
# Any fixed key: migrations of concurrent starters run one after the other.
_MIGRATION_LOCK = 0x6F6B78  # "okx"

_NEVER_SENT = "never sent: the intent write timed out"


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease an intent must be written under: ``scope``'s lease held by ``holder`` at
    ``epoch``, unexpired by the database's clock."""

    scope: str
    holder: str
    epoch: int


# The fenced intent: ONE autocommit statement. FOR SHARE OF l makes a concurrent takeover's
# UPDATE of the lease row wait for this insert's commit (and this insert wait for a takeover in
# flight, then re-check the new row): without it an intent of the old epoch can commit after
# the new epoch was granted (ha.md §2: 15 in 200 takeovers). Never a client-side transaction:
# a paused client holding the row lock would block the takeover.
@cache
def intent_sql(rows: int, *, fenced: bool) -> str:
    """One statement writing ``rows`` pending journal entries (:data:`INTENT_COLUMNS` each,
    plus their ``intent_key``): all of them or none.

    ``fenced``: each entry carries the lease's epoch and the statement inserts only while the
    lease is held by this holder at this epoch (three more parameters: scope, holder, epoch;
    0 rows otherwise)."""
    names = (*INTENT_COLUMNS, "intent_key")
    columns = ", ".join(names)
    # typed: a VALUES list's NULL (okx_ms unknown) would otherwise be text, not bigint
    row = ", ".join("%s::bigint" if n.endswith("_ms") else "%s" for n in names)
    values = f"(VALUES {', '.join([f'({row})'] * rows)}) AS v({columns})"
    if not fenced:
        return (
            f"INSERT INTO journal ({columns}, status) SELECT v.*, 'pending' FROM {values}"
            " RETURNING id, intent_key"
        )
    return (
        f"INSERT INTO journal (scope, epoch, {columns}, status)"
        f" SELECT l.name, l.epoch, v.*, 'pending' FROM lease l, {values}"
        " WHERE l.name = %s AND l.holder = %s AND l.epoch = %s AND l.expires_at > clock_timestamp()"
        " FOR SHARE OF l RETURNING id, intent_key"
    )


def describe_dsn(dsn: str) -> str:
    """The DSN as ``postgres <host>/<db>`` for messages and logs: never a password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgres (unparsable dsn)"
    host = str(parts.get("host") or "localhost")
    db = str(parts.get("dbname") or parts.get("user") or "")
    return f"postgres {host}/{db}"


def connect_args(timeout_s: float) -> dict[str, Any]:
    """libpq and server settings that bound every call (module docstring)."""
    ms = max(1, int(timeout_s * 1000))
    return {
        "autocommit": True,
        "connect_timeout": max(2, int(timeout_s + 0.999)),  # libpq: whole seconds, at least 2
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": ms,
        "options": (
            f"-c statement_timeout={ms} -c lock_timeout={ms}"
            f" -c idle_in_transaction_session_timeout={max(ms, 5000)}"
        ),
    }


def watchdog_s(timeout_s: float) -> float:
    """When the watchdog cuts a call: a little after the server's own timeouts, so a live
    server answers with its error (the connection stays) and only a frozen one is cut."""
    return timeout_s * 1.25 + 0.1


def _reason(exc: BaseException) -> str:
    if isinstance(exc, pg_errors.LockNotAvailable):
        return "locked"
    if isinstance(exc, pg_errors.QueryCanceled):
        return "timeout"
    if isinstance(exc, pg_errors.DiskFull):
        return "disk_full"
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        return "read_only"
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return "unreachable"
    return "io_error"


class _Watchdog:
    """Shuts down the socket of a call that outlives its deadline, so that a frozen server
    (no TCP timer fires: its kernel still ACKs) cannot hold the caller longer than that."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: tuple[int, float, int] | None = None  # (token, deadline, fd)
        self._token = 0
        self._fired = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="pg-watchdog", daemon=True)
        self._thread.start()

    def arm(self, fd: int, timeout_s: float) -> int:
        with self._cond:
            self._token += 1
            self._fired = False
            self._armed = (self._token, time.monotonic() + timeout_s, fd)
            self._cond.notify()
            return self._token

    def disarm(self, token: int) -> bool:
        """True when the deadline fired for this call (its connection is dead)."""
        with self._cond:
            if self._armed is not None and self._armed[0] == token:
                self._armed = None
            return self._fired

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._stop:
                if self._armed is None:
                    self._cond.wait()
                    continue
                _token, deadline, fd = self._armed
                left = deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._armed = None
                self._fired = True
                _shutdown(fd)


def _shutdown(fd: int) -> None:
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


def _connect(dsn: str, timeout_s: float) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, **connect_args(timeout_s))


def migrate(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """Bring the schema to :data:`SCHEMA_VERSION`; returns (before, after). Concurrent callers
    serialise on an advisory lock; a database newer than this code is refused."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        before = int(row[0]) if row and row[0] is not None else 0
        if before > SCHEMA_VERSION:
            raise LedgerCorrupt(
                f"ledger schema version {before} is newer than this reactor's {SCHEMA_VERSION}:"
                " upgrade the reactor"
            )
        for version in range(before, SCHEMA_VERSION):
            for statement in _MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version + 1,))
    return before, SCHEMA_VERSION


class PostgresLedger(Ledger):
    """The :class:`~reactor.store.Ledger` interface on one PostgreSQL connection: the tables'
    rules are the SQLite ledger's (:mod:`reactor.store.base`); this class is the connection.

    Thread-safe (one lock). Each write commits at once (autocommit), except ``void`` and
    ``journal_bill``, whose statements commit together. ``fence`` (set by the lease task) makes
    :meth:`journal_intents` refuse to write without the lease: ``LedgerUnavailable("fenced")``.
    """

    dialect = POSTGRES

    def __init__(
        self,
        dsn: str,
        *,
        clock: Callable[[], float] = time.time,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        migrate_schema: bool = True,
    ) -> None:
        """Connect, and create or migrate the schema; a failure raises
        :class:`LedgerUnavailable` (or :class:`LedgerCorrupt`) with one line, no password."""
        self.dsn = dsn
        self.where = describe_dsn(dsn)
        self.path = self.where  # messages name the ledger as the SQLite one names its file
        self._clock = clock
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._closed = False
        self._conn: psycopg.Connection[Any] | None = None
        self._own_changes = 0  # rows this object changed in the polled tables (data_version)
        # Intents whose write timed out after it reached a server backend: (backend pid, key).
        self._ambiguous: list[tuple[int, str]] = []
        self._sent_on: int | None = None  # backend pid of the connection of the current call
        self._watchdog = _Watchdog()
        self.problem: LedgerUnavailable | None = None
        self._down: LedgerUnavailable | None = None  # unreachable: fail fast until check()
        self.fence: Fence | None = None
        try:
            with self._guarded(write=False) as conn:
                if migrate_schema:
                    migrate(conn)
                else:
                    self._require_schema(conn)
        except LedgerUnavailable:
            self._watchdog.close()
            raise

    def _require_schema(self, conn: psycopg.Connection[Any]) -> None:
        exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        row = None
        if exists and exists[0]:
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        if not row or row[0] != SCHEMA_VERSION:
            raise LedgerUnavailable(
                f"ledger {self.where}: schema is not at version {SCHEMA_VERSION}:"
                " run `reactor db migrate`",
                "schema",
            )

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = _connect(self.dsn, self._timeout_s)
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a dead connection may fail to close
                conn.close()

    def check(self) -> None:
        """Raise :class:`LedgerUnavailable` when this ledger was closed or its database is
        still unreachable. After an outage this is the probe (one bounded round trip) that
        lets calls through again; the ledger poll loop runs it in a thread."""
        if self._closed:
            raise LedgerUnavailable(f"ledger {self.where}: closed", "closed")
        if self._down is None:
            return
        with self._guarded(write=False, probe=True) as conn:
            conn.execute("SELECT 1")
        self._down = None
        self.problem = None

    @contextmanager
    def _guarded(self, *, write: bool, probe: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """The connection under the lock and the watchdog, with psycopg's failures as
        :class:`LedgerUnavailable` (the connection is dropped; the next call reconnects).

        Once a call found the database unreachable or timed out, later calls fail at once
        (the same error) until :meth:`check` - the ledger poll loop, off the event loop - has
        reached the database again: an outage costs the engine's event loop one bounded wait,
        not one per call."""
        try:
            self._sent_on = None
            down = self._down
            if down is not None and not probe:
                raise LedgerUnavailable(str(down), down.reason)
            with self._lock:
                if self._closed:
                    raise LedgerUnavailable(f"ledger {self.where}: closed", "closed")
                started = time.monotonic()
                try:
                    conn = self._connection()
                except psycopg.Error as exc:
                    reason = "timeout" if time.monotonic() - started >= self._timeout_s else None
                    self._down = self._unavailable(exc, reason)
                    raise self._down from None
                if self._ambiguous:
                    self._settle(conn)
                self._sent_on = conn.info.backend_pid
                token = self._watchdog.arm(conn.fileno(), watchdog_s(self._timeout_s))
                try:
                    yield conn
                except (psycopg.IntegrityError, psycopg.ProgrammingError, psycopg.DataError):
                    if self._watchdog.disarm(token):
                        self._drop()
                    raise
                except psycopg.Error as exc:
                    fired = self._watchdog.disarm(token)
                    failure = self._unavailable(exc, "timeout" if fired else None)
                    server_said = isinstance(
                        exc, pg_errors.QueryCanceled | pg_errors.LockNotAvailable
                    )
                    if fired or (
                        isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
                        and not server_said
                    ):
                        self._drop()
                        self._down = failure  # the server is gone or frozen: fail fast
                    raise failure from None
                except BaseException:  # a rule refused (KeyError, ValueError): disarm too,
                    if self._watchdog.disarm(token):  # else it cuts the idle connection later
                        self._drop()
                    raise
                else:
                    if self._watchdog.disarm(token):  # fired just as the call returned
                        self._drop()
        except LedgerUnavailable as exc:
            self.problem = exc
            raise
        if write:
            self.problem = None

    def _settle(self, conn: psycopg.Connection[Any]) -> None:
        """Close intents whose write timed out as never sent: end the backend that may still
        hold one (it cannot commit afterwards), then mark the row if it did commit. The engine
        was told "not written" and sent nothing; without this the row would stay ``pending``
        and read as a call of unknown outcome."""
        token = self._watchdog.arm(conn.fileno(), watchdog_s(self._timeout_s))
        try:
            for pid, key in list(self._ambiguous):
                conn.execute("SELECT pg_terminate_backend(%s, %s)", (pid, 1000))
                conn.execute(
                    "UPDATE journal SET status = 'error', msg = %s, done_ms = %s"
                    " WHERE intent_key = %s AND status = 'pending'",
                    (_NEVER_SENT, self._now_ms(), key),
                )
                self._ambiguous.remove((pid, key))
        except psycopg.Error:
            pass  # tried again before the next call
        finally:
            if self._watchdog.disarm(token):
                self._drop()
                raise LedgerUnavailable(f"ledger {self.where}: timeout: settling", "timeout")

    def _unavailable(self, exc: BaseException, reason: str | None) -> LedgerUnavailable:
        why = reason or _reason(exc)
        text = " ".join(str(exc).split())[:200]
        return LedgerUnavailable(f"ledger {self.where}: {why}: {redact_text(text)}", why)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._guarded(write=False) as conn:
            return conn.execute(sql, params).fetchall()

    def _execute(self, sql: str, params: tuple[Any, ...], *, polled: bool = False) -> int:
        _, n = self._write(sql, params, polled=polled)
        return int(n)

    def _insert(self, sql: str, params: tuple[Any, ...], *, polled: bool = False) -> int | None:
        rows, _ = self._write(sql + " RETURNING id", params, polled=polled)
        return int(rows[0][0]) if rows else None

    @contextmanager
    def _transaction(self) -> Iterator[Run]:
        """One server transaction; its polled changes count as this object's own once it
        commits (:meth:`data_version`)."""
        changed = 0

        def run(sql: str, params: tuple[Any, ...] = (), *, polled: bool = False) -> Result:
            nonlocal changed
            cur = conn.execute(sql, params)
            if polled:
                changed += max(cur.rowcount, 0)
            return Result(cur.fetchall() if cur.description else [], cur.rowcount)

        with self._guarded(write=True) as conn:
            with conn.transaction():
                yield run
            self._own_changes += changed

    def _write(self, sql: str, params: tuple[Any, ...], *, polled: bool = False) -> Any:
        """One autocommit statement; returns the cursor's rows (RETURNING) and rowcount."""
        with self._guarded(write=True) as conn:
            cur = conn.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
            if polled:
                self._own_changes += max(cur.rowcount, 0)
            return rows, cur.rowcount

    def data_version(self) -> int:
        """Changes when another connection changes maintenance records, voids or pauses."""
        rows = self._query("SELECT v FROM ledger_version")
        return int(rows[0][0]) - self._own_changes

    # --- journal ----------------------------------------------------------------------------

    def _insert_intents(self, rows: list[IntentRow]) -> list[int]:
        """One statement (:func:`intent_sql`), each row with a fresh ``intent_key``.

        With a :attr:`fence`, the entries carry the lease's epoch and commit only while this
        instance holds that lease (0 rows: ``LedgerUnavailable("fenced")``, nothing written).
        """
        fence = self.fence
        keys = [uuid.uuid4().hex for _ in rows]
        params = tuple(v for row, key in zip(rows, keys, strict=True) for v in (*row, key))
        if fence is not None:
            params = (*params, fence.scope, fence.holder, fence.epoch)
        try:
            written, _ = self._write(intent_sql(len(rows), fenced=fence is not None), params)
        except LedgerUnavailable as exc:
            if exc.reason in {"timeout", "unreachable"} and self._sent_on is not None:
                # The server may still commit them (a frozen server runs the buffered statement
                # when it thaws): remember them, so they are closed as never sent (_settle).
                self._ambiguous.extend((self._sent_on, key) for key in keys)
            raise
        if not written:
            assert fence is not None
            fenced = LedgerUnavailable(
                f"ledger {self.where}: fenced: lease {fence.scope} epoch {fence.epoch}"
                " is not held by this instance",
                "fenced",
            )
            self.problem = fenced
            raise fenced
        ids = {str(key): int(new_id) for new_id, key in written}
        return [ids[key] for key in keys]

    def journal_epochs(self) -> list[tuple[int, str, int]]:
        """(id, scope, epoch) of every entry in id order: who wrote which intent."""
        rows = self._query("SELECT id, scope, epoch FROM journal ORDER BY id")
        return [(int(i), str(s), int(e)) for i, s, e in rows]

    # --- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._drop()
                self._watchdog.close()
