"""The engine's plain state: settings, per-account and per-position records, the seams.

Nothing here does I/O. The core (:mod:`reactor.engine.core`) reads and writes these records; the
asyncio shell (:mod:`reactor.engine.shell`) only holds the clients named in
:class:`AccountState` and drives the core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from reactor.domain.policy import PolicyConfig
from reactor.okx.clock import ExchangeClock
from reactor.okx.models import PositionKey


class Role(StrEnum):
    """An account's role: a managed sub-account, or the main account (read only)."""

    SUB = "sub"
    MAIN = "main"


class Status(StrEnum):
    """A position's state on the status page (its values are the strings shown and stored)."""

    OK = "ok"
    ADJUSTING = "adjusting"
    BLOCKED = "blocked"
    HELD = "held"
    PAUSED = "paused"
    STALE = "stale"
    ERROR = "error"
    UNMANAGED = "unmanaged"


class MarginClient(Protocol):
    """The part of :class:`reactor.okx.rest.OkxRestClient` the engine shell uses."""

    async def get_positions(
        self, inst_type: str = "SWAP", inst_id: str | None = None
    ) -> list[dict[str, Any]]: ...

    async def margin_balance(
        self, inst_id: str, pos_side: str, action: str, amt: Decimal
    ) -> dict[str, Any]: ...

    async def sync_clock(self) -> float: ...

    async def get_instruments(
        self, inst_type: str = "SWAP", inst_id: str | None = None
    ) -> list[dict[str, Any]]: ...

    async def adjust_leverage_info(
        self, inst_id: str, lever: Decimal, pos_side: str, *, mgn_mode: str = "isolated"
    ) -> dict[str, Any]: ...

    async def get_bills(
        self,
        inst_id: str,
        *,
        bill_type: str = "6",
        sub_type: str | None = None,
        begin_ms: int | None = None,
        end_ms: int | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]: ...

    @property
    def clock(self) -> ExchangeClock: ...  # the account's offset to OKX's clock, measured


class EngineObserver(Protocol):
    """Counters the engine feeds; :class:`reactor.status.metrics.Metrics` satisfies it."""

    def inc_adjustment(self, result: str, account: str = "") -> None: ...
    def inc_reconnect(self, account: str, reason: str = "") -> None: ...
    def observe_latency(
        self, seconds: float, *, retry: bool = False, account: str = ""
    ) -> None: ...


class NullObserver:
    """Counts nothing (tests, tools)."""

    def inc_adjustment(self, result: str, account: str = "") -> None:
        pass

    def inc_reconnect(self, account: str, reason: str = "") -> None:
        pass

    def observe_latency(self, seconds: float, *, retry: bool = False, account: str = "") -> None:
        pass


# An operator's pause: (account, None, None) for the whole account, else one position.
PauseKey = tuple[str, str | None, str | None]


class StorageError(Exception):
    """The ledger could not be read or written (locked, disk full, file gone)."""


class CountSource(Protocol):
    """Maintenance counts (the ledger); raises :class:`StorageError` when it cannot answer."""

    def count(self, account: str, inst_id: str, pos_side: str, c_time: int) -> int: ...


@dataclass(frozen=True, slots=True)
class EngineSettings:
    policy: PolicyConfig
    debounce_s: float = 0.5
    leading_edge: bool = True
    cooldown_s: float = 5.0
    max_moved_per_hour: Decimal = Decimal("1000")  # per account
    # per position; None = the account's limit, so one position can never trip the account
    max_moved_per_position_hour: Decimal | None = None
    main_expected_positions: int = 22
    dry_run: bool = False
    retry_max_s: float = 60.0  # cap of the per-position backoff after repeated errors
    reread_delay_s: float = 0.5  # after an ambiguous call, before the position is re-read
    # Ask the exchange for its own reduce limit (``adjust-leverage-info`` ``estAvailTrans``)
    # before every reduce and never ask for more; ``reactor run`` turns it on. Off here so the
    # core's unit tests of other rules need not answer the check.
    pre_reduce_check: bool = False
    # Ambiguous outcomes: bills are read after ``bill_settle_s`` and once more after another
    # ``bill_settle_s`` before the margin comparison decides; ``bill_skew_ms`` allows for the
    # two clocks when matching a bill's ``ts`` against the journalled send time.
    bill_settle_s: float = 2.0
    bill_skew_ms: int = 5000
    # Foreign transfers (bills no journalled call accounts for): this many on one instrument
    # of an account within the window hold its positions (reactor.engine.foreign).
    foreign_transfer_limit: int = 2
    foreign_transfer_window_s: float = 600.0
    # After a margin change with no fill and no call of ours, the position waits for the
    # bills read (who moved it?) at most this long before acting.
    bills_wait_s: float = 3.0
    # Without ``maintenance.detect`` (records only): a position that grew waits this long for
    # the maintenance record posted after its fill (local API, CLI: 100-500 ms later), or
    # until it comes; ``reactor run`` sets it from ``maintenance.record_grace_ms``.
    record_grace_s: float = 0.0
    internal_error_window_s: float = 600.0  # /healthz shows an internal error this long

    @property
    def position_limit(self) -> Decimal:
        limit = self.max_moved_per_position_hour
        return self.max_moved_per_hour if limit is None else limit


@dataclass(slots=True)
class AccountState:
    name: str
    role: Role
    client: MarginClient | None = None  # used by the shell only; the core never calls it
    enabled: bool = True
    # Why the account may not be acted on (the session gave up: on_stopped; or the engine
    # stopped it after a REST answer). Whether its socket is up is the session's fact alone
    # (PrivateSession.connected); the engine only hears of (re)connects, below.
    stopped_reason: str | None = None
    guard_tripped: bool = False
    reconcile_due: bool = False  # a (re)connect happened: reconcile after its snapshot
    snapshot_logged: bool = False  # the (re)connect snapshot was logged at info
    balance_waiters: set[PositionKey] = field(default_factory=set)  # got 59200, wait for funds

    def __post_init__(self) -> None:
        self.role = Role(self.role)  # a config's plain "sub"/"main" compares typed from here

    @property
    def managed(self) -> bool:
        return self.role is Role.SUB and self.stopped_reason is None and not self.guard_tripped

    def connect(self) -> None:
        """A (re)connect: its next full snapshot is said at info and followed by a REST read."""
        self.reconcile_due = True
        self.snapshot_logged = False


@dataclass(frozen=True, slots=True)
class PendingOutcome:
    """A margin call whose effect is not known yet: what a resolution compares against."""

    journal_id: int | None  # None: the answer was an ambiguous code with no journal row
    action: str  # add | reduce
    amount: Decimal
    margin_before: Decimal | None
    sent_at: float  # engine clock when the call was sent (the window for a bill match)
    code: str | None = None  # the answer that made it ambiguous (50004, 502, timeout)


@dataclass(frozen=True, slots=True)
class EstAvail:
    """OKX's ``estAvailTrans`` for a position, with the record it was read for: reused while
    margin, size, ``cTime`` and leverage stay the same and the mark stays near
    (:func:`reactor.engine.calls.cached_estimate`), so one burst reads it once per position."""

    cap: Decimal
    margin: Decimal | None
    pos: Decimal
    c_time: int
    lever: Decimal | None
    mark_px: Decimal | None


@dataclass(slots=True)
class PositionControl:
    """Per-position timing and outcome state. Lives as long as the position is in the book."""

    due_at: float | None = None  # the one pending wake-up of this position (engine clock)
    last_acted: float = -1e9  # when the last margin call was started
    in_flight: bool = False  # a check, journal write, call or re-read is under way
    cooldown_until: float = 0.0
    expected_margin: Decimal | None = None  # an ok call's result, until a push confirms it
    step_cap: Decimal | None = None  # after 59301: the largest reduce step to try
    pending: PendingOutcome | None = None  # ambiguous outcome: resolve before anything else
    reread: bool = False  # re-read before anything else (restart, unconfirmed ok call)
    hold_until_change: str | None = None  # error code that needs a changed position first
    hold_size_only: bool = False  # a mark-price move does not end the hold (51000)
    balance_wait: bool = False  # 59200: retry when the account's balance grows, or later
    failures: int = 0  # consecutive failed attempts: the backoff exponent
    blocked: bool = False  # inside a margin.target.blocked episode
    guard_held: bool = False  # inside a margin.guard.position_held episode
    exchange_limited: bool = False  # estAvailTrans left less than min_action (blocked episode)
    foreign_held: bool = False  # held: someone else keeps moving its margin
    bills_wait_until: float = 0.0  # a margin drift: wait for the bills read until then
    est_avail: EstAvail | None = None  # the last estAvailTrans read (reduce check cache)
    # 59301 despite estAvailTrans, at this mark: the local bound caps reduces while the mark
    # stays near it and the size is the same
    distrust_mark: Decimal | None = None
    status: Status = Status.OK
    reason: str = ""
    target: Decimal | None = None
    band: tuple[Decimal, Decimal] | None = None
    count: int = 0
    changed_at: float = 0.0  # when the push that made it due arrived, for latency
