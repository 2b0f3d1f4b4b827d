"""Leases with fencing on PostgreSQL: one row per scope, expiry from the database's clock, an
epoch that grows on every grant (docs/operations.md "High availability"; ha.md §3.2).

- :meth:`LeaseStore.acquire` grants a free (expired) lease: ``epoch + 1``.
- :meth:`LeaseStore.renew` extends it while this holder still has that epoch and it has not
  expired; False means lost: stop signing at once.
- :meth:`LeaseStore.release` on a clean stop: the lease stays held only as long as a request
  signed under it could still be accepted by OKX, so a successor starts at once when nothing
  was signed in the last window.
- The database fence, the fenced journal intent, is
  :func:`reactor.store.postgres.intent_sql`; the exchange fence is :class:`SignClock`.

Host clocks never decide expiry. The local :class:`SignClock` only ever stops signing
*earlier* than the database would: its deadline counts from the moment the renewal was sent,
before PostgreSQL stamped the expiry.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from reactor.store.postgres import (
    DEFAULT_TIMEOUT_S,
    _reason,
    _Watchdog,
    connect_args,
    describe_dsn,
    migrate,
    watchdog_s,
)

__all__ = ["LeaseInfo", "LeaseStore", "LeaseUnavailable", "SignClock"]

ACQUIRE_SQL = (
    "UPDATE lease SET holder = %s, epoch = epoch + 1,"
    " expires_at = clock_timestamp() + make_interval(secs => %s)"
    " WHERE name = %s AND expires_at < clock_timestamp() RETURNING epoch"
)
RENEW_SQL = (
    "UPDATE lease SET expires_at = clock_timestamp() + make_interval(secs => %s)"
    " WHERE name = %s AND holder = %s AND epoch = %s AND expires_at > clock_timestamp()"
    " RETURNING epoch"
)
# Every lease this holder has, in one statement (sharding: one renewal for all its scopes).
RENEW_ALL_SQL = (
    "UPDATE lease SET expires_at = clock_timestamp() + make_interval(secs => %s)"
    " WHERE holder = %s AND expires_at > clock_timestamp() RETURNING name, epoch"
)
RELEASE_SQL = (
    "UPDATE lease SET expires_at = clock_timestamp() + make_interval(secs => %s)"
    " WHERE name = %s AND holder = %s AND epoch = %s AND expires_at > clock_timestamp()"
    " RETURNING epoch"
)


class LeaseUnavailable(Exception):
    """The lease call did not complete (database unreachable, frozen, timed out): the caller
    does not know whether it still holds the lease, so it stops signing."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A scope's lease as the database sees it now."""

    scope: str
    holder: str | None
    epoch: int
    remaining_s: float  # until expiry by the database clock (<= 0: free)

    @property
    def held(self) -> bool:
        return self.holder is not None and self.remaining_s > 0


class LeaseStore:
    """Lease calls on one connection of their own (a renewal never queues behind a ledger
    write), each bounded like the ledger's: server timeouts plus the socket watchdog."""

    def __init__(self, dsn: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.dsn = dsn
        self.where = describe_dsn(dsn)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._watchdog = _Watchdog()
        with self._guarded() as conn:
            migrate(conn)

    @contextmanager
    def _guarded(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.dsn, **connect_args(self.timeout_s))
                conn = self._conn
            except psycopg.Error as exc:
                raise self._unavailable(exc, None) from None
            token = self._watchdog.arm(conn.fileno(), watchdog_s(self.timeout_s))
            try:
                yield conn
            except psycopg.Error as exc:
                fired = self._watchdog.disarm(token)
                self._drop()
                raise self._unavailable(exc, "timeout" if fired else None) from None
            else:
                if self._watchdog.disarm(token):
                    self._drop()

    def _unavailable(self, exc: BaseException, reason: str | None) -> LeaseUnavailable:
        why = reason or _reason(exc)
        text = " ".join(str(exc).split())[:200]
        return LeaseUnavailable(f"lease store {self.where}: {why}: {text}", why)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._guarded() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchone() if cur.description else None

    def ensure(self, scope: str) -> None:
        """Create the scope's lease row (free) when missing."""
        self._one("INSERT INTO lease (name) VALUES (%s) ON CONFLICT DO NOTHING", (scope,))

    def acquire(self, scope: str, holder: str, ttl_s: float) -> int | None:
        """Take the lease when it is free (expired): returns the new epoch, or None."""
        row = self._one(ACQUIRE_SQL, (holder, ttl_s, scope))
        return int(row[0]) if row else None

    def renew(self, scope: str, holder: str, epoch: int, ttl_s: float) -> bool:
        """Extend this holder's unexpired lease of ``epoch``; False: lost (expired or taken)."""
        return self._one(RENEW_SQL, (ttl_s, scope, holder, epoch)) is not None

    def renew_all(self, holder: str, ttl_s: float) -> dict[str, int]:
        """Extend every unexpired lease of ``holder`` in one statement: {scope: epoch}."""
        with self._guarded() as conn:
            rows = conn.execute(RENEW_ALL_SQL, (ttl_s, holder)).fetchall()
        return {str(name): int(epoch) for name, epoch in rows}

    def release(self, scope: str, holder: str, epoch: int, hold_s: float) -> bool:
        """Clean stop: the lease expires ``hold_s`` from now (0: at once). ``hold_s`` is how
        long a request this holder signed could still be accepted by OKX."""
        return self._one(RELEASE_SQL, (max(0.0, hold_s), scope, holder, epoch)) is not None

    def claim(self, scope: str, accounts: list[str]) -> dict[str, str]:
        """Record ``accounts`` as ``scope``'s (dropping accounts the scope no longer lists) and
        return those another scope already has: {account: other scope}; empty when none. An
        account is in one scope only (the table's primary key), whichever host starts first."""
        with self._guarded() as conn, conn.transaction():
            conn.execute(
                "DELETE FROM scope_account WHERE scope = %s AND NOT (account = ANY(%s))",
                (scope, accounts),
            )
            conn.execute(
                "INSERT INTO scope_account (account, scope) SELECT unnest(%s::text[]), %s"
                " ON CONFLICT (account) DO NOTHING",
                (accounts, scope),
            )
            rows = conn.execute(
                "SELECT account, scope FROM scope_account WHERE account = ANY(%s)"
                " AND scope <> %s ORDER BY account",
                (accounts, scope),
            ).fetchall()
        return {str(a): str(s) for a, s in rows}

    def info(self, scope: str) -> LeaseInfo | None:
        row = self._one(
            "SELECT holder, epoch, extract(epoch FROM expires_at - clock_timestamp())"
            " FROM lease WHERE name = %s",
            (scope,),
        )
        if row is None:
            return None
        remaining = float(row[2]) if row[2] is not None else float("-inf")
        return LeaseInfo(scope, row[0], int(row[1]), remaining)

    def close(self) -> None:
        with self._lock:
            self._drop()
            self._watchdog.close()


class SignClock:
    """The exchange fence's local deadline: sign only until ``sent + ttl - window - margin``,
    ``sent`` being when the last successful renewal (or the grant) was *sent*.

    OKX refuses a request whose timestamp is more than ``window`` (30 s) old when it arrives
    (50102). A request signed before the deadline therefore either reaches OKX before
    ``expiry - margin`` or is refused; the margin absorbs the OKX clock-offset error and a
    slow local clock. The REST client checks :meth:`may_sign` *after* signing, then sends.
    """

    def __init__(
        self,
        ttl_s: float,
        window_s: float,
        margin_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.window_s = window_s
        self.margin_s = margin_s
        self._clock = clock
        self._deadline = float("-inf")
        self.last_signed: float | None = None  # monotonic time of the last accepted check

    def granted(self, sent_at: float) -> None:
        """The grant or renewal sent at ``sent_at`` (monotonic) succeeded."""
        self._deadline = max(self._deadline, sent_at + self.ttl_s - self.window_s - self.margin_s)

    def revoke(self) -> None:
        """Lost, released, or unknown: stop signing now."""
        self._deadline = float("-inf")

    @property
    def deadline(self) -> float:
        return self._deadline

    def may_sign(self) -> bool:
        """True while a request signed now is safe to send; records the signature time."""
        now = self._clock()
        if now < self._deadline:
            self.last_signed = now
            return True
        return False

    def hold_after_release_s(self) -> float:
        """How long the lease must stay held after a clean stop: until no request signed under
        it can be accepted any more (0 when nothing was signed in the last window)."""
        if self.last_signed is None:
            return 0.0
        return max(0.0, self.last_signed + self.window_s + self.margin_s - self._clock())
