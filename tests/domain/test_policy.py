"""Examples of the margin policy, starting from the CRO seed case of the old system's failure."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from reactor.domain.policy import (
    ActionKind,
    PolicyConfig,
    TargetRule,
    decide,
    round_down,
    round_up,
    safe_floor,
    target_for,
)
from reactor.okx.models import Position

from .factories import CFG, DEFAULT_TARGETS, D, position

CT_VAL = D("10")


def test_seed_case_reduces_into_band_in_one_step() -> None:
    p = position()
    # notional 102.6, im 10.26, no loss, mm 0.4104 + 1.5 < im  -> floor 10.26
    assert safe_floor(p, CT_VAL, CFG) == D("10.26")
    action = decide(p, CT_VAL, 0, CFG)
    assert action.kind is ActionKind.REDUCE
    assert action.amount == D("10.03")
    assert action.reason == "above_band"
    assert not action.limited_by_floor  # the floor is above 10 but still inside the band
    after = p.margin - action.amount  # type: ignore[operator]
    assert after == D("10.26")
    assert D("9.5") <= after <= D("10.5")
    follow_up = decide(dataclasses.replace(p, margin=after), CT_VAL, 0, CFG)
    assert follow_up.kind is ActionKind.NONE
    assert follow_up.reason == "in_band"


def test_seed_without_ct_val_would_be_the_old_bug() -> None:
    # With ctVal forgotten (the old system's bug) the floor would be a tenth of the real one.
    assert safe_floor(position(), D("1"), CFG) == D("1.9104")  # mm + buffer dominates


def test_unrealised_loss_limits_reduce_to_floor() -> None:
    # mark below entry: upl = 108*10*(0.087-0.0905) = -3.78; im = 9.396; floor = 13.176
    p = position(mark_px=D("0.087"), upl=D("-3.78"), mmr=D("0.37584"))
    floor = safe_floor(p, CT_VAL, CFG)
    assert floor == D("13.176")
    action = decide(p, CT_VAL, 0, CFG)
    assert action.kind is ActionKind.REDUCE
    assert action.amount == D("7.11")  # 20.29 - 13.176 = 7.114, rounded down
    assert action.limited_by_floor
    assert action.reason_code == "floor_above_target"
    assert "unrealised loss 3.78" in action.reason
    assert "13.18" in action.reason
    assert p.margin - action.amount >= floor  # type: ignore[operator]
    # At the floor: blocked, with the same reason, until the market moves.
    again = decide(dataclasses.replace(p, margin=D("13.18")), CT_VAL, 0, CFG)
    assert again.kind is ActionKind.BLOCKED
    assert again.limited_by_floor
    assert again.reason.startswith("floor_above_target: unrealised loss 3.78")
    # The price recovers: the correction finishes.
    recovered = dataclasses.replace(p, margin=D("13.18"), mark_px=D("0.095"), upl=D("4.86"))
    done = decide(recovered, CT_VAL, 0, CFG)
    assert done.kind is ActionKind.REDUCE
    assert D("9.5") <= D("13.18") - done.amount <= D("10.5")


def test_floor_inside_band_but_too_close_blocks() -> None:
    # floor 10.45 (above target, inside band); margin 10.52 -> only 0.07 reducible
    p = position(
        lever=D("10"), mark_px=D("0.095"), upl=D("-0.19"), mmr=D("0.4104"), margin=D("10.52")
    )
    assert safe_floor(p, CT_VAL, CFG) == D("10.45")
    action = decide(p, CT_VAL, 0, CFG)
    assert action.kind is ActionKind.BLOCKED
    assert action.reason_code == "floor_above_target"
    assert action.limited_by_floor


def test_in_band_is_none() -> None:
    for m in ("9.5", "10", "10.5"):
        assert decide(position(margin=D(m)), CT_VAL, 0, CFG).kind is ActionKind.NONE


def test_add_rounds_up_and_targets_count() -> None:
    p = position(margin=D("10.26"))
    action = decide(p, CT_VAL, 2, CFG)  # target 20 after two maintenances
    assert action.kind is ActionKind.ADD
    assert action.amount == D("9.74")
    assert action.target == D("20")
    assert action.band == (D("19"), D("21"))
    odd = decide(position(margin=D("8.333")), CT_VAL, 0, CFG)
    assert odd.amount == D("1.67")  # 1.667 rounded up


def test_add_capped_by_available_and_blocked_when_empty() -> None:
    p = position(margin=D("5"))
    capped = decide(p, CT_VAL, 0, CFG, available=D("3.459"))
    assert capped.kind is ActionKind.ADD
    assert capped.amount == D("3.45")
    assert capped.reason_code == "below_band"
    blocked = decide(p, CT_VAL, 0, CFG, available=D("0.05"))
    assert blocked.kind is ActionKind.BLOCKED
    assert blocked.reason_code == "insufficient_balance"
    plenty = decide(p, CT_VAL, 0, CFG, available=D("1000"))
    assert plenty.amount == D("5")


def test_add_needs_only_margin() -> None:
    p = position(margin=D("4"), mark_px=None, lever=None, upl=None, mmr=None)
    action = decide(p, CT_VAL, 0, CFG)
    assert action.kind is ActionKind.ADD
    assert action.amount == D("6")
    assert action.floor is None


@pytest.mark.parametrize(
    ("field", "name"),
    [("mark_px", "markPx"), ("lever", "lever"), ("upl", "upl"), ("margin", "margin")],
)
def test_missing_field_never_guesses_a_reduce(field: str, name: str) -> None:
    p = position(**{field: None})
    action = decide(p, CT_VAL, 0, CFG)
    assert action.kind is ActionKind.BLOCKED
    assert action.reason == f"missing_field:{name}"
    assert action.amount == 0


def test_zero_lever_or_mark_counts_as_missing() -> None:
    assert decide(position(lever=D("0")), CT_VAL, 0, CFG).reason == "missing_field:lever"
    assert decide(position(mark_px=D("0")), CT_VAL, 0, CFG).reason == "missing_field:markPx"


def test_empty_mmr_uses_fallback_rate() -> None:
    p = position(mmr=None, lever=D("100"))  # im 1.026; mm 102.6*0.004=0.4104 -> floor 1.9104
    assert safe_floor(p, CT_VAL, CFG) == D("1.9104")
    action = decide(p, CT_VAL, 0, CFG)
    assert action.kind is ActionKind.REDUCE
    assert action.amount == D("10.29")


@pytest.mark.parametrize(
    "overrides",
    [
        {"mgn_mode": "cross"},
        {"inst_type": "FUTURES"},
        {"ccy": "BTC", "inst_id": "BTC-USD-SWAP"},
        {"pos": D("0")},
    ],
)
def test_not_managed(overrides: dict[str, object]) -> None:
    action = decide(position(**overrides), CT_VAL, 0, CFG)
    assert action.kind is ActionKind.NONE
    assert action.reason == "not_managed"


def test_short_position_uses_absolute_size() -> None:
    p = position(pos_side="short", upl=D("-4.86"))
    assert safe_floor(p, CT_VAL, CFG) == D("15.12")  # 10.26 + 4.86
    net_short = position(pos_side="net", pos=D("-108"), upl=D("-4.86"))
    assert safe_floor(net_short, CT_VAL, CFG) == D("15.12")


def test_step_cap_bounds_reduce() -> None:
    action = decide(position(), CT_VAL, 0, CFG, step_cap=D("2.5"))
    assert action.kind is ActionKind.REDUCE
    assert action.amount == D("2.5")
    assert action.reason == "above_band: step cap 2.5"
    tiny = decide(position(), CT_VAL, 0, CFG, step_cap=D("0.05"))
    assert tiny.kind is ActionKind.BLOCKED
    assert tiny.reason_code == "below_min_action"


def test_target_for_picks_largest_min_count() -> None:
    assert target_for(0, DEFAULT_TARGETS).target == D("10")
    assert target_for(1, DEFAULT_TARGETS).target == D("10")
    assert target_for(2, DEFAULT_TARGETS).target == D("20")
    assert target_for(3, DEFAULT_TARGETS).target == D("30")
    assert target_for(17, DEFAULT_TARGETS).target == D("30")
    with pytest.raises(ValueError):
        target_for(0, DEFAULT_TARGETS[1:])


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        PolicyConfig(targets=())
    with pytest.raises(ValueError):
        PolicyConfig(targets=(DEFAULT_TARGETS[1], DEFAULT_TARGETS[0]))
    with pytest.raises(ValueError):
        PolicyConfig(targets=DEFAULT_TARGETS[1:])
    with pytest.raises(ValueError):
        TargetRule(0, D("10"), D("10.5"), D("11"))
    with pytest.raises(ValueError):
        PolicyConfig(targets=DEFAULT_TARGETS, amount_step=D("0"))


def test_rounding_helpers() -> None:
    assert round_down(D("10.039"), D("0.01")) == D("10.03")
    assert round_up(D("10.031"), D("0.01")) == D("10.04")
    assert round_down(D("1.07"), D("0.05")) == D("1.05")
    assert round_up(D("1.01"), D("0.05")) == D("1.05")
    assert round_down(D("2"), D("0.01")) == D("2")


def test_coarse_step_never_overshoots_band() -> None:
    cfg = PolicyConfig(targets=DEFAULT_TARGETS, amount_step=D("2"))
    action = decide(position(margin=D("9.4")), CT_VAL, 0, cfg)
    assert action.kind is ActionKind.NONE  # 0.6 rounded up to 2 would land at 11.4
    assert action.reason == "below_min_action"
    action = decide(position(margin=D("7.6")), CT_VAL, 0, cfg)
    assert action.kind is ActionKind.ADD and action.amount == D("2")  # 4 would overshoot


def test_decimal_type() -> None:
    assert isinstance(decide(position(), CT_VAL, 0, CFG).amount, Decimal)


def _falling(mark: str, margin: str) -> Position:
    """Long 1 @ 100 (ctVal 1, lever 10) in a market below its entry: floor = 100 - 0.9 mark."""
    m = D(mark)
    return position(
        inst_id="F-USDT-SWAP",
        pos=D(1),
        avg_px=D(100),
        mark_px=m,
        lever=D(10),
        margin=D(margin),
        mmr=m * D("0.004"),
        upl=m - D(100),
    )


def test_blocked_position_waits_until_the_reduction_is_worth_a_call() -> None:
    """The bench's falling market: the floor drops 1.62 per 1.8 of recovery. A reduction that
    stays above the band and frees less than min_blocked_reduce (2) is not sent."""
    small = decide(_falling("92.2", "19"), D(1), 0, CFG)  # floor 17.02: 1.98 reachable
    assert small.kind is ActionKind.BLOCKED and small.amount == 0
    assert small.limited_by_floor
    assert small.reason_code == "floor_above_target"
    assert "reachable 1.98 is below 2.00" in small.reason
    worth = decide(_falling("94", "19"), D(1), 0, CFG)  # floor 15.4: 3.6 reachable
    assert worth.kind is ActionKind.REDUCE and worth.amount == D("3.60")
    assert worth.limited_by_floor
    off = decide(_falling("92.2", "19"), D(1), 0, dataclasses.replace(CFG, min_blocked_reduce=D(0)))
    assert off.kind is ActionKind.REDUCE and off.amount == D("1.98")


def test_blocked_rule_never_delays_the_step_into_the_band() -> None:
    """Once the floor lets the margin reach the band, the reduction goes whatever its size."""
    action = decide(_falling("101.2", "11.5"), D(1), 0, CFG)  # no loss: floor 10.12
    assert action.kind is ActionKind.REDUCE and action.amount == D("1.38")
    assert not action.limited_by_floor


def test_after_59301s_a_blocked_position_stops_halving_below_the_minimum() -> None:
    """A stricter exchange refused the floor-sized step; the engine's step cap halves. Once
    the capped step is below min_blocked_reduce the position waits for the market instead."""
    p = _falling("94", "19")  # floor 15.4: 3.6 reachable, still above the band
    capped = decide(p, D(1), 0, CFG, step_cap=D("2.5"))
    assert capped.kind is ActionKind.REDUCE and capped.amount == D("2.50")
    held = decide(p, D(1), 0, CFG, step_cap=D("1.8"))
    assert held.kind is ActionKind.BLOCKED and held.limited_by_floor
    assert "step cap 1.8 is below 2.00" in held.reason
    into_band = decide(_falling("101.2", "11.5"), D(1), 0, CFG, step_cap=D("0.5"))
    assert into_band.kind is ActionKind.REDUCE and into_band.amount == D("0.50")  # not held
