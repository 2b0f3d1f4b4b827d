"""Pure margin policy: from one position's state to one action (none / add / reduce / blocked).

Sans-I/O and deterministic so that it can be property-tested and replayed: the engine owns
timing, single flight and the 59301 step cap; this module only does arithmetic, in Decimal.

Reasons are stable snake_case prefixes, optionally followed by ``": detail"`` (or ``:<field>``
for ``missing_field``), so that logs can be grouped by prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from reactor.okx.models import Position

__all__ = [
    "Action",
    "ActionKind",
    "PolicyConfig",
    "TargetRule",
    "decide",
    "round_down",
    "round_up",
    "safe_floor",
    "target_for",
]

_ZERO = Decimal(0)

# Reason prefixes (stable: tests and logs depend on them).
NOT_MANAGED = "not_managed"
IN_BAND = "in_band"
ABOVE_BAND = "above_band"
BELOW_BAND = "below_band"
BELOW_MIN_ACTION = "below_min_action"
FLOOR_ABOVE_TARGET = "floor_above_target"
INSUFFICIENT_BALANCE = "insufficient_balance"
MISSING_FIELD = "missing_field"


@dataclass(frozen=True, slots=True)
class TargetRule:
    """Target margin and no-action band for positions with at least ``min_count`` maintenances."""

    min_count: int
    target: Decimal
    band_lo: Decimal
    band_hi: Decimal

    def __post_init__(self) -> None:
        if self.min_count < 0:
            raise ValueError("min_count must be >= 0")
        if not self.band_lo <= self.target <= self.band_hi:
            raise ValueError("target must lie inside its band (band_lo <= target <= band_hi)")
        if self.band_lo < 0:
            raise ValueError("band_lo must be >= 0")


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    targets: tuple[TargetRule, ...]  # sorted by min_count; largest min_count <= count applies
    buffer: Decimal = Decimal("1.5")
    min_action: Decimal = Decimal("0.1")
    amount_step: Decimal = Decimal("0.01")  # OKX amount precision for amt
    mmr_rate_fallback: Decimal = Decimal("0.004")  # when the position's mmr field is empty
    # A reduction that cannot reach the band (the safe floor blocks the target) only moves the
    # margin closer; it is sent only when it frees at least this much (after the 59301 step
    # cap). Below it the position waits for the market: chasing a moving floor in small steps
    # cost more calls than the old poller in a falling market (bench: 92 against 72; 48 with
    # this), and halving after 59301s under a stricter exchange rule cost 236 calls, 108 of them
    # refused (bench: strictest reduce rule). Every reduce sized to the floor risks a 59301 on
    # OKX's up-to-5-s-old mark (docs/spec/okx-fidelity.md §1.1). 0 turns the rule off.
    min_blocked_reduce: Decimal = Decimal("2")

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError("targets must not be empty")
        counts = [t.min_count for t in self.targets]
        if counts != sorted(set(counts)):
            raise ValueError("targets must be sorted by strictly increasing min_count")
        if counts[0] != 0:
            raise ValueError("the first target must have min_count 0")
        if self.buffer < 0:
            raise ValueError("buffer must be >= 0")
        if self.min_action < 0:
            raise ValueError("min_action must be >= 0")
        if self.amount_step <= 0:
            raise ValueError("amount_step must be > 0")
        if self.mmr_rate_fallback < 0:
            raise ValueError("mmr_rate_fallback must be >= 0")
        if self.min_blocked_reduce < 0:
            raise ValueError("min_blocked_reduce must be >= 0")


class ActionKind(StrEnum):
    NONE = "none"
    ADD = "add"
    REDUCE = "reduce"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class Action:
    """What to do with one position. ``amount`` is 0 unless kind is ADD or REDUCE.

    ``limited_by_floor`` is True when the safe floor keeps the margin above the band, i.e. the
    target cannot be reached now (a REDUCE down to the floor, or BLOCKED); the engine logs
    ``margin.target.blocked`` once per such episode. A floor between target and band_hi does
    not set it: the reduction still lands in the band (the CRO seed case).
    """

    kind: ActionKind
    amount: Decimal
    target: Decimal
    band: tuple[Decimal, Decimal]
    floor: Decimal | None
    reason: str
    limited_by_floor: bool = False

    @property
    def reason_code(self) -> str:
        """The stable prefix of ``reason`` (without detail)."""
        return self.reason.split(":", 1)[0]


def round_down(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` <= value (towards safety for reductions)."""
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def round_up(value: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of ``step`` >= value."""
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def _fmt(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN), "f")


def target_for(count: int, targets: Sequence[TargetRule]) -> TargetRule:
    """The rule with the largest ``min_count <= count`` (``targets`` sorted by min_count)."""
    chosen: TargetRule | None = None
    for rule in targets:
        if rule.min_count <= count:
            chosen = rule
        else:
            break
    if chosen is None:
        raise ValueError(f"no target rule applies to maintenance count {count}")
    return chosen


@dataclass(frozen=True, slots=True)
class _FloorParts:
    im: Decimal
    mm: Decimal
    loss: Decimal
    floor: Decimal


def _missing_for_floor(position: Position) -> str | None:
    """First OKX field name needed for the safe floor that is empty (or unusable)."""
    if position.mark_px is None or position.mark_px <= 0:
        return "markPx"
    if position.lever is None or position.lever <= 0:
        return "lever"
    if position.upl is None:
        return "upl"
    return None


def _floor_parts(position: Position, ct_val: Decimal, cfg: PolicyConfig) -> _FloorParts | None:
    if _missing_for_floor(position) is not None:
        return None
    assert position.mark_px is not None and position.lever is not None
    assert position.upl is not None
    notional = abs(position.pos) * ct_val * position.mark_px
    im = notional / position.lever
    loss = max(_ZERO, -position.upl)
    mm = position.mmr if position.mmr is not None else notional * cfg.mmr_rate_fallback
    floor = max(im, mm + cfg.buffer) + loss
    return _FloorParts(im=im, mm=mm, loss=loss, floor=floor)


def safe_floor(position: Position, ct_val: Decimal, cfg: PolicyConfig) -> Decimal | None:
    """Lowest margin the position may be reduced to; None if a needed field is empty.

    ``floor = max(im, mm + buffer) + max(0, -upl)``: OKX's 59301 rule as the simulator models
    it (margin left must cover initial margin plus unrealised loss) with a maintenance buffer.
    """
    parts = _floor_parts(position, ct_val, cfg)
    return None if parts is None else parts.floor


def _floor_detail(parts: _FloorParts, cfg: PolicyConfig) -> str:
    if parts.loss > 0:
        return f"unrealised loss {_fmt(parts.loss)} keeps floor at {_fmt(parts.floor)}"
    if parts.im >= parts.mm + cfg.buffer:
        return f"initial margin {_fmt(parts.im)} keeps floor at {_fmt(parts.floor)}"
    return f"maintenance margin {_fmt(parts.mm)} keeps floor at {_fmt(parts.floor)}"


def decide(
    position: Position,
    ct_val: Decimal,
    count: int,
    cfg: PolicyConfig,
    *,
    step_cap: Decimal | None = None,
    available: Decimal | None = None,
) -> Action:
    """Decide the margin correction for one position from its current fields.

    ``step_cap`` (set by the engine after a 59301) bounds a reduction; ``available`` (the
    account's available USDT, when known) bounds an addition. Reductions are rounded down and
    additions up to ``amount_step`` (never past the band), so a decision never overshoots.
    A reduction that would still leave the margin above the band because of the floor is
    BLOCKED unless it frees at least ``cfg.min_blocked_reduce`` (within the step cap).
    """
    rule = target_for(count, cfg.targets)
    t, lo, hi = rule.target, rule.band_lo, rule.band_hi
    band = (lo, hi)

    def act(
        kind: ActionKind,
        reason: str,
        amount: Decimal = _ZERO,
        floor: Decimal | None = None,
        limited: bool = False,
    ) -> Action:
        return Action(kind, amount, t, band, floor, reason, limited)

    if not position.is_managed_kind or position.pos == 0:
        return act(ActionKind.NONE, NOT_MANAGED)
    m = position.margin
    if m is None:
        return act(ActionKind.BLOCKED, f"{MISSING_FIELD}:margin")
    parts = _floor_parts(position, ct_val, cfg)
    floor = None if parts is None else parts.floor

    if lo <= m <= hi:
        return act(ActionKind.NONE, IN_BAND, floor=floor)

    if m < lo:
        amount = round_up(t - m, cfg.amount_step)
        if m + amount > hi:  # a coarse step must not push the margin past the band
            amount = round_down(t - m, cfg.amount_step)
        if amount < cfg.min_action:
            return act(ActionKind.NONE, BELOW_MIN_ACTION, floor=floor)
        if available is not None:
            cap = round_down(max(available, _ZERO), cfg.amount_step)
            if cap < amount:
                if cap < cfg.min_action:
                    detail = f"needs {_fmt(amount)}, available {_fmt(max(available, _ZERO))}"
                    return act(ActionKind.BLOCKED, f"{INSUFFICIENT_BALANCE}: {detail}", floor=floor)
                return act(
                    ActionKind.ADD,
                    f"{BELOW_BAND}: capped by available {_fmt(cap)}",
                    cap,
                    floor,
                )
        return act(ActionKind.ADD, BELOW_BAND, amount, floor)

    # m > hi: reduce, never guessing from incomplete data.
    if parts is None:
        missing = _missing_for_floor(position)
        return act(ActionKind.BLOCKED, f"{MISSING_FIELD}:{missing}")
    assert floor is not None
    wanted = m - t
    max_reducible = m - floor
    floor_amount = round_down(max(max_reducible, _ZERO), cfg.amount_step)
    floor_binds = max_reducible < wanted
    # The floor (not the step cap) keeps the margin above the band: the target is out of reach.
    limited = floor_binds and m - floor_amount > hi
    raw = min(wanted, max_reducible)
    capped_by_step = step_cap is not None and step_cap < raw
    if step_cap is not None:
        raw = min(raw, step_cap)
    amount = round_down(max(raw, _ZERO), cfg.amount_step)
    if amount <= 0 or amount < cfg.min_action:
        if floor_binds and (floor_amount <= 0 or floor_amount < cfg.min_action):
            return act(
                ActionKind.BLOCKED,
                f"{FLOOR_ABOVE_TARGET}: {_floor_detail(parts, cfg)}",
                floor=floor,
                limited=True,
            )
        if capped_by_step:
            return act(ActionKind.BLOCKED, f"{BELOW_MIN_ACTION}: step cap {step_cap}", floor=floor)
        return act(ActionKind.NONE, BELOW_MIN_ACTION, floor=floor)
    if limited and amount < cfg.min_blocked_reduce:
        # The floor keeps the margin above the band whatever is sent: wait for the market
        # rather than send a small step (or, after 59301s, ever smaller halvings).
        what = f"step cap {step_cap}" if capped_by_step else f"reachable {_fmt(floor_amount)}"
        detail = f"{_floor_detail(parts, cfg)}; {what} is below {_fmt(cfg.min_blocked_reduce)}"
        return act(ActionKind.BLOCKED, f"{FLOOR_ABOVE_TARGET}: {detail}", floor=floor, limited=True)
    if limited:
        reason = f"{FLOOR_ABOVE_TARGET}: {_floor_detail(parts, cfg)}"
    elif capped_by_step:
        reason = f"{ABOVE_BAND}: step cap {step_cap}"
    else:
        reason = ABOVE_BAND
    return act(ActionKind.REDUCE, reason, amount, floor, limited)
