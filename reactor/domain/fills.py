"""Maintenance counts from the exchange's own fills, without the double-update race.

Pure core, no I/O and no clock of its own (every call takes ``now_ms``):

- :class:`DetectRule` - how the desk's strategy marks a maintenance order (``tag`` or a
  ``clOrdId`` prefix), and :func:`classify` - what one order push means.
- :class:`FillGate` - the "no race" gate. OKX pushes one fill twice, on ``orders`` and on
  ``positions``, in either order, tens of milliseconds apart. A position whose size grew is
  *held* (not corrected) until the fills that grew it have been classified - a maintenance is
  recorded first, so the correction uses the new count - or until ``grace_ms`` has passed.
  Without it, a fill seen before its order event is corrected to the *old* target and a
  second transfer undoes the first once the count moves (the old system's race).
- :func:`missing_from_orders` / :func:`missing_from_bills` - after a restart or a reconnect,
  which matching fills OKX has that the ledger has not.

The engine writes the ledger (``RecordMaintenance`` effects, keyed on ``ordId``, so the same
fill seen twice, or seen live and again in history, counts once) and asks :meth:`FillGate.held`
before it evaluates a position.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reactor.okx.bills import Bill
from reactor.okx.models import Position, PositionKey
from reactor.okx.orders import OrderUpdate

__all__ = [
    "DEFAULT_GRACE_MS",
    "DetectRule",
    "Effect",
    "FillClass",
    "FillGate",
    "GateKey",
    "MaintenanceSection",
    "PlainFill",
    "RecordMaintenance",
    "Released",
    "Skipped",
    "classify",
    "missing_from_bills",
    "missing_from_orders",
]

DEFAULT_GRACE_MS = 300
ISOLATED = "isolated"
# (account, instId, posSide, mgnMode): a position's identity (an isolated and a cross position
# on one instrument and side coexist on OKX).
GateKey = PositionKey
_ZERO = Decimal(0)


# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DetectRule:
    """A maintenance order carries ``tag`` == ``tag``, or a ``clOrdId`` starting with the prefix."""

    tag: str | None = None
    cl_ord_id_prefix: str | None = None

    def __post_init__(self) -> None:
        if (self.tag is None) == (self.cl_ord_id_prefix is None):
            raise ValueError("detect: give exactly one of tag or clOrdId_prefix")
        if self.tag is not None and not self.tag:
            raise ValueError("detect.tag: must not be empty")
        if self.cl_ord_id_prefix is not None and not self.cl_ord_id_prefix:
            raise ValueError("detect.clOrdId_prefix: must not be empty")

    def matches(self, tag: str, cl_ord_id: str) -> bool:
        if self.tag is not None:
            return tag == self.tag
        assert self.cl_ord_id_prefix is not None
        return cl_ord_id.startswith(self.cl_ord_id_prefix)

    def describe(self) -> str:
        if self.tag is not None:
            return f"tag={self.tag}"
        return f"clOrdId_prefix={self.cl_ord_id_prefix}"


# OKX: tag is "up to 16 characters", clOrdId "1-32 case-sensitive alphanumerics" (docs, Place
# order). A rule that could never match a real order is a config error, not a silent no-op.
_OKX_TAG_MAX = 16
_OKX_CL_ORD_ID_MAX = 32


class _Detect(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    tag: str | None = Field(default=None, min_length=1, max_length=_OKX_TAG_MAX)
    cl_ord_id_prefix: str | None = Field(
        default=None,
        alias="clOrdId_prefix",
        min_length=1,
        max_length=_OKX_CL_ORD_ID_MAX,
        pattern=r"^[A-Za-z0-9]+$",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> _Detect:
        if (self.tag is None) == (self.cl_ord_id_prefix is None):
            raise ValueError("give exactly one of tag or clOrdId_prefix")
        return self


DEFAULT_RECORD_GRACE_MS = 1_000


class MaintenanceSection(BaseModel):
    """``maintenance:`` in config.yaml.

    ``detect`` absent: counts come from records only (CLI, API) and ``orders`` is not read.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    detect: _Detect | None = None
    grace_ms: int = Field(default=DEFAULT_GRACE_MS, ge=0, le=10_000)
    # Without ``detect``: a position that grew waits this long (at least ``grace_ms``) for the
    # maintenance record its strategy posts after the fill (local API, CLI: 100-500 ms later).
    record_grace_ms: int = Field(default=DEFAULT_RECORD_GRACE_MS, ge=0, le=60_000)
    # The local API's bearer token is read from this environment variable (never from config).
    api_token_env: str = Field(default="REACTOR_API_TOKEN", pattern=r"^[A-Z_][A-Z0-9_]*$")
    # Where fills missed while away are read back from after a (re)connect: type-2 bills (one
    # per fill, tag and clOrdId included) and/or the order history.
    recover_from: tuple[Literal["bills", "orders"], ...] = Field(default=("bills",), min_length=1)

    @property
    def record_grace_s(self) -> float:
        """How long a grown position waits for its record when ``orders`` is not read."""
        return max(self.grace_ms, self.record_grace_ms) / 1000

    def rule(self) -> DetectRule | None:
        if self.detect is None:
            return None
        return DetectRule(self.detect.tag, self.detect.cl_ord_id_prefix)


# --- classification --------------------------------------------------------------------------

FillClass = Literal["no_fill", "maintenance", "plain", "skipped"]


def classify(order: OrderUpdate, rule: DetectRule | None) -> tuple[FillClass, str]:
    """What one order push means for the counts, with a short reason.

    - ``no_fill``: nothing filled yet (creation, cancel without fills).
    - ``maintenance``: a matching order added contracts to an isolated position.
    - ``skipped``: a matching order that cannot be a maintenance (not isolated, or it reduces).
    - ``plain``: any other fill - the position changed, the count did not.
    """
    if not order.has_fill:
        return "no_fill", order.state or "no fill"
    if rule is None or not rule.matches(order.tag, order.cl_ord_id):
        return "plain", "not marked as a maintenance"
    if order.pos_side not in ("long", "short", "net"):
        return "skipped", f"posSide {order.pos_side or '(empty)'} names no position"
    if order.td_mode != ISOLATED:
        return "skipped", f"tdMode {order.td_mode or '(empty)'}, not isolated"
    if not order.adds_to_position:
        return "skipped", f"{order.side} on {order.pos_side or '(empty)'} does not add contracts"
    return "maintenance", rule.describe()


# --- effects the engine carries out ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordMaintenance:
    """Write one ledger record (source ``fill`` or ``backfill``), idempotent on ``ord_id``.

    ``c_time`` ties it to the position open when it filled; None when that position was not
    known in time (the ledger then counts it for the position open when it is recorded).
    """

    account: str
    inst_id: str
    pos_side: str
    c_time: int | None
    ord_id: str
    cl_ord_id: str
    tag: str
    fill_time: int
    acc_fill_sz: Decimal

    @property
    def key(self) -> str:
        return self.ord_id

    @property
    def position_key(self) -> GateKey:
        return PositionKey(self.account, self.inst_id, self.pos_side, ISOLATED)


@dataclass(frozen=True, slots=True)
class PlainFill:
    account: str
    inst_id: str
    pos_side: str
    ord_id: str
    fill_sz: Decimal


@dataclass(frozen=True, slots=True)
class Skipped:
    account: str
    inst_id: str
    pos_side: str
    ord_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Released:
    """A held position may be evaluated again: its fills are classified, or grace ran out."""

    key: GateKey
    reason: Literal["classified", "grace_expired", "closed", "reset"]
    waited_ms: int


Effect = RecordMaintenance | PlainFill | Skipped | Released


# --- the gate --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Hold:
    since_ms: int
    until_ms: int


@dataclass(slots=True)
class _Lane:
    """What the gate knows about one (account, instId, posSide, mgnMode)."""

    c_time: int | None = None
    size: Decimal = _ZERO  # |pos| last seen
    unexplained: Decimal = _ZERO  # growth not yet matched by a classified fill
    credit: Decimal = _ZERO  # classified adding fills not yet matched by growth
    credit_ms: int = 0
    forgiven: Decimal = _ZERO  # growth released at grace end; a late fill pays this first
    credit_released: bool = False  # the credit waited its grace: it holds nothing any more
    hold: _Hold | None = None
    unbound: list[tuple[int, RecordMaintenance]] = field(default_factory=list)


class FillGate:
    """The "no race" gate between ``orders`` and ``positions`` pushes (see module docstring).

    Feed it every position push (:meth:`on_position`, ``baseline=True`` for snapshot pages and
    REST reads: a position first seen there is not held, what changed while away is recovered
    from history; a known position that grew is held whatever showed it) and every order push
    (:meth:`on_order`); carry out the effects in order (a ``RecordMaintenance`` always comes
    before the ``Released`` it explains); call :meth:`expire` at :meth:`next_deadline`.
    Everything it holds is bounded by ``grace_ms`` - a position is never held longer, even if
    the order event never comes or the clock jumps.

    Matching is by size per (account, instId, posSide, mgnMode): growth seen on ``positions``
    against fills classified on ``orders`` (each new ``accFillSz`` counted once). It relies on
    each channel keeping its own order on the connection (fills reach ``orders`` in execution
    order), which OKX's single, ordered WebSocket stream gives; the two channels may
    interleave in any way.
    """

    def __init__(
        self,
        rule: DetectRule | None,
        *,
        grace_ms: int = DEFAULT_GRACE_MS,
        credit_ttl_ms: int | None = None,
        memory_ms: int = 600_000,
        memory_max: int = 50_000,
    ) -> None:
        if grace_ms < 0:
            raise ValueError("grace_ms must be >= 0")
        self.rule = rule
        self.grace_ms = grace_ms
        # An order event seen before its position push waits this long to be matched.
        self.credit_ttl_ms = credit_ttl_ms if credit_ttl_ms is not None else max(5_000, grace_ms)
        self.memory_ms = memory_ms
        self.memory_max = memory_max
        self._lanes: dict[GateKey, _Lane] = {}
        self._acc: dict[str, tuple[str, Decimal, int]] = {}  # ordId -> (account, accFillSz, ms)
        self._recorded: dict[tuple[str, str], int] = {}  # (account, ordId) -> ms emitted

    @property
    def enabled(self) -> bool:
        return self.rule is not None

    # -- inputs -------------------------------------------------------------------------------

    def on_position(self, pos: Position, now_ms: int, *, baseline: bool = False) -> list[Effect]:
        """A position as pushed; returns effects (records bound to it, releases)."""
        if not self.enabled:
            return []
        gk = PositionKey(pos.account, pos.inst_id, pos.pos_side, pos.mgn_mode)
        lane = self._lanes.get(gk)
        size = abs(pos.pos)
        if size == 0:
            if lane is None:
                return []
            effects = self._bind_unbound(lane, None, now_ms, force=True)
            if lane.hold is not None:
                effects.append(Released(gk, "closed", now_ms - lane.hold.since_ms))
            del self._lanes[gk]
            return effects
        if lane is None:
            lane = self._lanes[gk] = _Lane()
        first_sight = lane.c_time != pos.c_time  # or closed and reopened: a new position
        if first_sight:
            grown = size
            lane.unexplained = lane.forgiven = _ZERO
            lane.hold = None
        else:
            grown = size - lane.size
        lane.c_time, lane.size = pos.c_time, size
        effects = self._bind_unbound(lane, pos.c_time, now_ms)
        # A snapshot or REST read is a baseline for a position not seen before (what changed
        # while away is recovered from history); for a known one, growth is growth.
        if grown <= 0 or (baseline and first_sight):
            return effects
        lane.unexplained += grown
        self._expire_credit(lane, now_ms)
        effects.extend(self._settle(gk, lane, now_ms))
        return effects

    def on_order(self, order: OrderUpdate, now_ms: int) -> list[Effect]:
        """One order of an ``orders`` push (or a recovered one); returns effects."""
        if not self.enabled:
            return []
        kind, reason = classify(order, self.rule)
        if kind == "no_fill":
            return []
        acc = max(order.acc_fill_sz, order.fill_sz)
        seen = self._acc.get(order.ord_id)
        new = acc - (seen[1] if seen is not None and seen[0] == order.account else _ZERO)
        if new <= 0:
            return []  # the same fill again (or an older push late): nothing new
        self._acc[order.ord_id] = (order.account, acc, now_ms)
        gk = PositionKey(order.account, order.inst_id, order.pos_side, order.td_mode)
        lane = self._lanes.get(gk)
        if lane is None:
            lane = self._lanes[gk] = _Lane()
        effects: list[Effect] = []
        if kind == "maintenance":
            rk = (order.account, order.ord_id)
            if rk not in self._recorded:
                self._recorded[rk] = now_ms
                effects.extend(self._record(lane, order, now_ms))
        elif kind == "skipped":
            effects.append(
                Skipped(order.account, order.inst_id, order.pos_side, order.ord_id, reason)
            )
        else:
            effects.append(
                PlainFill(order.account, order.inst_id, order.pos_side, order.ord_id, new)
            )
        older = lane.c_time is not None and 0 < order.fill_time < lane.c_time
        if order.adds_to_position and not older:  # a closed position's fill grows nothing here
            self._expire_credit(lane, now_ms)
            paid = min(new, lane.forgiven)  # a late fill for growth already released
            lane.forgiven -= paid
            lane.credit += new - paid
            lane.credit_ms = now_ms
            lane.credit_released = False
            effects.extend(self._settle(gk, lane, now_ms))
        self._prune(now_ms)
        return effects

    def reset_account(self, account: str, now_ms: int) -> list[Effect]:
        """Forget an account's lanes (disconnect): its book is stale until a fresh snapshot."""
        effects: list[Effect] = []
        for gk in [k for k in self._lanes if k[0] == account]:
            lane = self._lanes.pop(gk)
            effects.extend(self._bind_unbound(lane, None, now_ms, force=True))
            if lane.hold is not None:
                effects.append(Released(gk, "reset", now_ms - lane.hold.since_ms))
        return effects

    def expire(self, now_ms: int) -> list[Effect]:
        """Release holds past their grace (or whose clock went backwards); bind late records."""
        effects: list[Effect] = []
        for gk, lane in list(self._lanes.items()):
            effects.extend(self._bind_unbound(lane, None, now_ms))
            hold = lane.hold
            if hold is not None and (now_ms >= hold.until_ms or now_ms < hold.since_ms):
                lane.forgiven += lane.unexplained
                lane.unexplained = _ZERO
                lane.credit_released = True  # a late growth still consumes it, unheld
                lane.hold = None
                effects.append(Released(gk, "grace_expired", now_ms - hold.since_ms))
        return effects

    # -- queries ------------------------------------------------------------------------------

    def held(self, pos: Position, now_ms: int) -> bool:
        """True while ``pos`` grew by fills not yet classified, within its grace window."""
        return self.hold_until(pos, now_ms) is not None

    def hold_until(self, pos: Position, now_ms: int) -> int | None:
        """When the hold of ``pos`` ends at the latest (ms), or None when it is not held."""
        lane = self._lanes.get(pos.key)
        if lane is None or lane.hold is None:
            return None
        if not lane.hold.since_ms <= now_ms < lane.hold.until_ms:
            return None
        return lane.hold.until_ms

    def close(self, key: GateKey, now_ms: int) -> list[Effect]:
        """The position left the book (closed): forget it, releasing a hold."""
        lane = self._lanes.pop(key, None)
        if lane is None:
            return []
        effects = self._bind_unbound(lane, None, now_ms, force=True)
        if lane.hold is not None:
            effects.append(Released(key, "closed", now_ms - lane.hold.since_ms))
        return effects

    def next_deadline(self) -> int | None:
        """When :meth:`expire` has work next (ms), or None."""
        times = [lane.hold.until_ms for lane in self._lanes.values() if lane.hold is not None]
        times += [d for lane in self._lanes.values() for d, _ in lane.unbound]
        return min(times) if times else None

    def held_keys(self) -> list[GateKey]:
        return [gk for gk, lane in self._lanes.items() if lane.hold is not None]

    # -- internals ----------------------------------------------------------------------------

    def _record(self, lane: _Lane, order: OrderUpdate, now_ms: int) -> list[Effect]:
        rec = RecordMaintenance(
            account=order.account,
            inst_id=order.inst_id,
            pos_side=order.pos_side,
            c_time=None,
            ord_id=order.ord_id,
            cl_ord_id=order.cl_ord_id,
            tag=order.tag,
            fill_time=order.fill_time,
            acc_fill_sz=order.acc_fill_sz,
        )
        if lane.c_time is not None:
            if _belongs(lane.c_time, order.fill_time):
                return [_bound(rec, lane.c_time)]
            # Filled before the open position was created: it grew a position since closed.
            return [
                Skipped(
                    order.account,
                    order.inst_id,
                    order.pos_side,
                    order.ord_id,
                    "filled before the open position was created",
                )
            ]
        # The position push has not come yet: wait for it, at most the grace window, then
        # record untied (it counts for the position open then) rather than never.
        lane.unbound.append((now_ms + self.grace_ms, rec))
        return []

    def _bind_unbound(
        self, lane: _Lane, c_time: int | None, now_ms: int, *, force: bool = False
    ) -> list[Effect]:
        if not lane.unbound:
            return []
        out: list[Effect] = []
        keep: list[tuple[int, RecordMaintenance]] = []
        for deadline, rec in lane.unbound:
            if c_time is not None and _belongs(c_time, rec.fill_time):
                out.append(_bound(rec, c_time))
            elif force or now_ms >= deadline:
                out.append(rec)  # untied: counts for the position open when recorded
            else:
                keep.append((deadline, rec))
        lane.unbound = keep
        return out

    def _settle(self, gk: GateKey, lane: _Lane, now_ms: int) -> list[Effect]:
        """Match growth against classified fills; hold while either side waits for the other.

        Growth without its order event: the count may be about to move. A classified fill
        without its growth: the count moved but the pushed margin does not show the fill yet
        (correcting now would move margin the fill is about to add). Both end at grace."""
        matched = min(lane.credit, lane.unexplained)
        lane.credit -= matched
        lane.unexplained -= matched
        fill_ahead = lane.credit > 0 and not lane.credit_released and lane.c_time is not None
        waiting = lane.unexplained > 0 or fill_ahead
        hold = lane.hold
        if waiting and (hold is None or not hold.since_ms <= now_ms < hold.until_ms):
            lane.hold = _Hold(now_ms, now_ms + self.grace_ms)  # new, or one nobody expired
            return []
        if not waiting and lane.hold is not None:
            waited = now_ms - lane.hold.since_ms
            lane.hold = None
            return [Released(gk, "classified", waited)]
        return []

    def _expire_credit(self, lane: _Lane, now_ms: int) -> None:
        if lane.credit and not 0 <= now_ms - lane.credit_ms <= self.credit_ttl_ms:
            lane.credit = _ZERO

    def _prune(self, now_ms: int) -> None:
        if len(self._acc) <= self.memory_max:
            return
        horizon = now_ms - self.memory_ms
        self._acc = {k: v for k, v in self._acc.items() if v[2] >= horizon}
        self._recorded = {k: v for k, v in self._recorded.items() if v >= horizon}
        while len(self._acc) > self.memory_max:  # all recent: drop the oldest (dict order)
            self._acc.pop(next(iter(self._acc)))


def _belongs(c_time: int, fill_time: int) -> bool:
    """A fill belongs to the position opened at ``c_time`` unless it filled before it opened."""
    return fill_time == 0 or c_time <= fill_time


def _bound(rec: RecordMaintenance, c_time: int) -> RecordMaintenance:
    return RecordMaintenance(
        rec.account,
        rec.inst_id,
        rec.pos_side,
        c_time,
        rec.ord_id,
        rec.cl_ord_id,
        rec.tag,
        rec.fill_time,
        rec.acc_fill_sz,
    )


# --- recovery --------------------------------------------------------------------------------


def _position_for(
    positions: Mapping[tuple[str, str, str], Position], inst_id: str, pos_side: str, mgn: str
) -> Position | None:
    pos = positions.get((inst_id, pos_side, mgn))
    return pos if pos is not None and pos.pos != 0 else None


def _index(positions: Iterable[Position]) -> dict[tuple[str, str, str], Position]:
    return {(p.inst_id, p.pos_side, p.mgn_mode): p for p in positions}


def missing_from_orders(
    account: str,
    orders: Iterable[OrderUpdate],
    positions: Iterable[Position],
    recorded_ord_ids: set[str],
    rule: DetectRule,
) -> list[RecordMaintenance]:
    """Matching fills in OKX's order history that the ledger lacks, for open positions.

    ``positions`` are the account's open positions now (after the reconnect snapshot); a fill
    counts for one only when instrument, side and margin mode match and it filled at or after
    the position's ``cTime`` (an older fill belonged to a closed position and no longer counts).
    Voided records are in ``recorded_ord_ids`` too, so recovery never revives them. The
    history holds one row per order, so a partially filled order is one maintenance.
    """
    index = _index(positions)
    out: dict[str, RecordMaintenance] = {}
    for order in orders:
        if order.account != account or order.ord_id in recorded_ord_ids or order.ord_id in out:
            continue
        if classify(order, rule)[0] != "maintenance":
            continue
        pos = _position_for(index, order.inst_id, order.pos_side, order.td_mode)
        fill_time = order.fill_time or order.u_time
        if pos is None or (fill_time and fill_time < pos.c_time):
            continue
        out[order.ord_id] = RecordMaintenance(
            account,
            order.inst_id,
            order.pos_side,
            pos.c_time,
            order.ord_id,
            order.cl_ord_id,
            order.tag,
            fill_time,
            order.acc_fill_sz,
        )
    return sorted(out.values(), key=lambda r: (r.fill_time, r.ord_id))


def missing_from_bills(
    account: str,
    bills: Iterable[Bill],
    positions: Iterable[Position],
    recorded_ord_ids: set[str],
    rule: DetectRule,
) -> list[RecordMaintenance]:
    """As :func:`missing_from_orders`, from type-2 bills (one per fill; no posSide field).

    A bill's side comes from its subType (3 open long, 4 open short; 1/2 buy/sell in net
    mode). Several bills of one order (partial fills) are one maintenance, timed by the first.
    """
    index = _index(positions)
    first: dict[str, Bill] = {}
    total: dict[str, Decimal] = {}
    for bill in bills:
        if bill.account != account or not bill.ord_id or not bill.opens:
            continue
        if bill.ord_id in recorded_ord_ids or not rule.matches(bill.tag, bill.cl_ord_id):
            continue
        if bill.mgn_mode != ISOLATED:
            continue
        total[bill.ord_id] = total.get(bill.ord_id, _ZERO) + (bill.sz or _ZERO)
        if bill.ord_id not in first or bill.ts < first[bill.ord_id].ts:
            first[bill.ord_id] = bill
    out: list[RecordMaintenance] = []
    for ord_id, bill in first.items():
        pos = _position_for(index, bill.inst_id, bill.pos_side, bill.mgn_mode)
        if pos is None or (bill.ts and bill.ts < pos.c_time):
            continue
        out.append(
            RecordMaintenance(
                account,
                bill.inst_id,
                bill.pos_side,
                pos.c_time,
                ord_id,
                bill.cl_ord_id,
                bill.tag,
                bill.ts,
                total[ord_id],
            )
        )
    return sorted(out, key=lambda r: (r.fill_time, r.ord_id))


def recovery_since_ms(positions: Iterable[Position], now_ms: int, max_age_ms: int) -> int:
    """Where history must be read from: the oldest open position's cTime, at most ``max_age_ms``
    back (OKX's orders-history covers 7 days, the archive 3 months)."""
    times = [p.c_time for p in positions if p.pos != 0 and p.c_time > 0]
    oldest = min(times) if times else now_ms
    return max(oldest, now_ms - max_age_ms)


def describe_effect(effect: Effect) -> dict[str, Any]:
    """Log fields for an effect (no secrets exist here: ids, sizes, reasons)."""
    if isinstance(effect, Released):
        account, inst_id, pos_side, mgn_mode = effect.key
        return {
            "account": account,
            "instId": inst_id,
            "posSide": pos_side,
            "mgnMode": mgn_mode,
            "reason": effect.reason,
            "waited_ms": effect.waited_ms,
        }
    base: dict[str, Any] = {
        "account": effect.account,
        "instId": effect.inst_id,
        "posSide": effect.pos_side,
        "ordId": effect.ord_id,
    }
    if isinstance(effect, RecordMaintenance):
        base.update(cTime=effect.c_time, accFillSz=str(effect.acc_fill_sz))
    elif isinstance(effect, PlainFill):
        base["fillSz"] = str(effect.fill_sz)
    else:
        base["reason"] = effect.reason
    return base
