"""Maintenance detection core: config, classification, the no-race gate, recovery."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from reactor.domain.fills import (
    DetectRule,
    FillGate,
    MaintenanceSection,
    PlainFill,
    RecordMaintenance,
    Released,
    Skipped,
    classify,
    describe_effect,
    missing_from_bills,
    missing_from_orders,
    recovery_since_ms,
)
from reactor.okx.bills import parse_bill
from reactor.okx.orders import OrderUpdate, parse_order, parse_orders_push
from tests.paths import FIXTURES

from .factories import D, position

T0 = 1_700_000_000_000  # the factory position's cTime
NOW = T0 + 60_000
TAG = DetectRule(tag="maint")
KEY4 = ("sub1", "CRO-USDT-SWAP", "long", "isolated")


def order(**overrides: Any) -> OrderUpdate:
    """A tagged market buy adding 10 contracts to the factory's CRO long, filled at once."""
    raw: dict[str, Any] = {
        "instId": "CRO-USDT-SWAP",
        "instType": "SWAP",
        "ordId": "9001",
        "clOrdId": "mnt0001",
        "tag": "maint",
        "state": "filled",
        "side": "buy",
        "posSide": "long",
        "tdMode": "isolated",
        "reduceOnly": "false",
        "sz": "10",
        "fillSz": "10",
        "fillPx": "0.09",
        "accFillSz": "10",
        "avgPx": "0.09",
        "tradeId": "t1",
        "fillTime": str(NOW),
        "cTime": str(NOW - 5),
        "uTime": str(NOW),
    }
    raw.update(overrides)
    return parse_order("sub1", raw)


def grown(by: int = 10, **overrides: Any) -> Any:
    return position(pos=D(108 + by), u_time=NOW, **overrides)


# --- config and classification ---------------------------------------------------------------


def test_section_defaults_and_rules() -> None:
    assert MaintenanceSection().rule() is None
    assert MaintenanceSection().grace_ms == 300
    sec = MaintenanceSection.model_validate({"detect": {"tag": "maint"}, "grace_ms": 150})
    assert sec.rule() == DetectRule(tag="maint") and sec.grace_ms == 150
    sec = MaintenanceSection.model_validate({"detect": {"clOrdId_prefix": "mnt"}})
    assert sec.rule() == DetectRule(cl_ord_id_prefix="mnt")


def test_record_grace_is_the_longer_of_its_setting_and_grace_ms() -> None:
    """A grown position waits 1 s by default for the record posted after its fill; never
    less than ``grace_ms``; the benchmarks scale it like every other timer."""
    assert MaintenanceSection().record_grace_s == 1.0
    assert MaintenanceSection(record_grace_ms=10).record_grace_s == 0.3  # grace_ms 300 wins
    assert MaintenanceSection(record_grace_ms=10, grace_ms=0).record_grace_s == 0.01
    assert MaintenanceSection(record_grace_ms=2500).record_grace_s == 2.5


@pytest.mark.parametrize(
    "raw",
    [
        {"detect": {}},
        {"detect": {"tag": "a", "clOrdId_prefix": "b"}},
        {"detect": {"tag": ""}},
        {"detect": {"tag": "x" * 17}},  # OKX tags are at most 16 characters
        {"detect": {"clOrdId_prefix": "mnt-"}},  # clOrdId is alphanumeric only
        {"detect": {"tags": "maint"}},
        {"grace_ms": -1},
        {"grace_ms": 60_000},
        {"record_grace_ms": -1},
        {"record_grace_ms": 60_001},
        {"api_token_env": "lower"},
    ],
)
def test_section_rejects(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        MaintenanceSection.model_validate(raw)


def test_detect_rule_requires_exactly_one() -> None:
    with pytest.raises(ValueError):
        DetectRule()
    with pytest.raises(ValueError):
        DetectRule(tag="a", cl_ord_id_prefix="b")
    assert DetectRule(cl_ord_id_prefix="mnt").matches("", "mnt42")
    assert not DetectRule(cl_ord_id_prefix="mnt").matches("mnt", "x42")
    assert not TAG.matches("maint2", "")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "maintenance"),
        ({"tag": "", "clOrdId": ""}, "plain"),
        ({"tag": "other"}, "plain"),
        ({"state": "live", "fillSz": "0", "accFillSz": "0"}, "no_fill"),
        ({"state": "canceled", "fillSz": "", "accFillSz": "0"}, "no_fill"),
        ({"state": "partially_filled", "fillSz": "4", "accFillSz": "4"}, "maintenance"),
        ({"tdMode": "cross"}, "skipped"),
        ({"side": "sell"}, "skipped"),
        ({"reduceOnly": "true"}, "skipped"),
        ({"posSide": "short", "side": "sell"}, "maintenance"),
    ],
)
def test_classify(overrides: dict[str, Any], expected: str) -> None:
    assert classify(order(**overrides), TAG)[0] == expected


def test_classify_without_rule_is_plain() -> None:
    assert classify(order(), None)[0] == "plain"


def test_classify_captured_payloads() -> None:
    raw = json.loads((FIXTURES / "ws_orders_nt.json").read_text())
    [o] = parse_orders_push("sub1", raw).orders
    assert classify(o, DetectRule(cl_ord_id_prefix="001BTC"))[0] == "maintenance"
    assert classify(o, TAG)[0] == "plain"
    created, filled = json.loads((FIXTURES / "ws_orders_swap_created_then_filled.json").read_text())
    [c] = parse_orders_push("sub1", created).orders
    [f] = parse_orders_push("sub1", filled).orders
    assert classify(c, TAG)[0] == "no_fill"  # the creation push: nothing filled yet
    assert classify(f, TAG)[0] == "plain"  # untagged
    tagged = dataclasses.replace(f, tag="maint")
    assert classify(tagged, TAG) == ("skipped", "sell on net does not add contracts")


# --- the gate: the three orderings of one maintenance -------------------------------------------


def baseline_gate(grace_ms: int = 300) -> FillGate:
    gate = FillGate(TAG, grace_ms=grace_ms)
    assert gate.on_position(position(), T0 + 1, baseline=True) == []
    return gate


def test_position_first_is_held_until_the_order_is_classified() -> None:
    gate = baseline_gate()
    assert gate.on_position(grown(), NOW) == []
    assert gate.held(grown(), NOW) and gate.held(grown(), NOW + 299)
    assert gate.next_deadline() == NOW + 300
    effects = gate.on_order(order(), NOW + 40)
    rec, rel = effects
    assert isinstance(rec, RecordMaintenance) and isinstance(rel, Released)
    assert (rec.key, rec.c_time, rec.position_key) == ("9001", T0, KEY4)
    assert (rel.key, rel.reason, rel.waited_ms) == (KEY4, "classified", 40)
    assert not gate.held(grown(), NOW + 40)
    assert gate.next_deadline() is None


def test_order_first_records_and_holds_until_the_position_shows_the_fill() -> None:
    gate = baseline_gate()
    [rec] = gate.on_order(order(), NOW)
    assert isinstance(rec, RecordMaintenance) and rec.c_time == T0
    # The count moved but the pushed margin does not show the fill yet: not corrected.
    assert gate.held(position(), NOW + 10)
    [rel] = gate.on_position(grown(), NOW + 30)
    assert isinstance(rel, Released) and (rel.reason, rel.waited_ms) == ("classified", 30)
    assert not gate.held(grown(), NOW + 30)


def test_together_in_one_tick() -> None:
    gate = baseline_gate()
    assert gate.on_position(grown(), NOW) == []
    effects = gate.on_order(order(), NOW)
    assert [type(e) for e in effects] == [RecordMaintenance, Released]
    assert effects[1].waited_ms == 0  # type: ignore[union-attr]


def test_untagged_fill_is_plain_and_releases() -> None:
    gate = baseline_gate()
    gate.on_position(grown(), NOW)
    plain, rel = gate.on_order(order(tag="", clOrdId=""), NOW + 20)
    assert isinstance(plain, PlainFill) and plain.fill_sz == 10
    assert isinstance(rel, Released) and rel.reason == "classified"


def test_grace_expires_and_a_late_order_still_counts_once() -> None:
    gate = baseline_gate()
    gate.on_position(grown(), NOW)
    assert gate.expire(NOW + 299) == []
    [rel] = gate.expire(NOW + 300)
    assert isinstance(rel, Released) and rel.reason == "grace_expired" and rel.waited_ms == 300
    assert not gate.held(grown(), NOW + 300)
    [rec] = gate.on_order(order(), NOW + 900)  # late: recorded, nothing left to release
    assert isinstance(rec, RecordMaintenance)
    # The late fill paid off the growth already released: it explains nothing new.
    assert gate.on_position(grown(by=15), NOW + 1000) == []
    assert gate.held(grown(by=15), NOW + 1000)


def test_same_fill_twice_counts_once() -> None:
    gate = baseline_gate()
    gate.on_position(grown(), NOW)
    first = gate.on_order(order(), NOW + 10)
    assert [type(e) for e in first] == [RecordMaintenance, Released]
    assert gate.on_order(order(), NOW + 20) == []
    assert gate.on_order(order(uTime=str(NOW + 50)), NOW + 60) == []


def test_partial_fills_record_once_and_release_when_all_classified() -> None:
    gate = baseline_gate()
    part = {"state": "partially_filled"}
    [rec] = gate.on_order(order(fillSz="4", accFillSz="4", **part), NOW)
    assert isinstance(rec, RecordMaintenance) and rec.acc_fill_sz == 4
    [rel] = gate.on_position(grown(by=4), NOW + 5)
    assert isinstance(rel, Released)
    assert gate.on_position(grown(by=10), NOW + 10) == []  # 6 more, not yet classified
    assert gate.held(grown(by=10), NOW + 10)
    [rel] = gate.on_order(order(fillSz="6", accFillSz="10", tradeId="t2"), NOW + 30)
    assert isinstance(rel, Released) and rel.reason == "classified"


def test_reduce_and_close_do_not_hold() -> None:
    gate = baseline_gate()
    assert gate.on_position(position(pos=D(100)), NOW) == []
    assert not gate.held(position(pos=D(100)), NOW)
    assert gate.on_position(position(pos=D(0)), NOW + 1) == []


def test_close_while_held_releases() -> None:
    gate = baseline_gate()
    gate.on_position(grown(), NOW)
    [rel] = gate.on_position(position(pos=D(0)), NOW + 5)
    assert isinstance(rel, Released) and rel.reason == "closed"
    assert gate.next_deadline() is None


def test_new_position_opened_by_a_tagged_order_first() -> None:
    gate = FillGate(TAG)
    opened = position(c_time=NOW, u_time=NOW, pos=D(10))
    assert gate.on_order(order(), NOW) == []  # no position yet: the record waits for it
    assert gate.next_deadline() == NOW + 300
    [rec] = gate.on_position(opened, NOW + 20)
    assert isinstance(rec, RecordMaintenance) and rec.c_time == NOW
    assert not gate.held(opened, NOW + 20)


def test_unbound_record_is_written_untied_after_grace() -> None:
    gate = FillGate(TAG)
    assert gate.on_order(order(), NOW) == []
    [rec] = gate.expire(NOW + 300)
    assert isinstance(rec, RecordMaintenance) and rec.c_time is None
    assert gate.next_deadline() is None


def test_fill_older_than_the_position_never_counts_for_it() -> None:
    gate = FillGate(TAG)
    gate.on_position(position(c_time=NOW + 10, pos=D(5)), NOW + 10, baseline=True)
    [skip] = gate.on_order(order(fillTime=str(NOW)), NOW + 20)  # a late push, closed position
    assert isinstance(skip, Skipped) and "before" in skip.reason
    assert gate.expire(NOW + 400) == [] and gate.next_deadline() is None


def test_cross_order_does_not_explain_isolated_growth() -> None:
    gate = baseline_gate()
    gate.on_position(grown(), NOW)
    [skip] = gate.on_order(order(tdMode="cross"), NOW + 10)
    assert isinstance(skip, Skipped) and "not isolated" in skip.reason
    assert gate.held(grown(), NOW + 10)


def test_clock_going_backwards_releases() -> None:
    gate = baseline_gate()
    gate.on_position(grown(), NOW)
    assert not gate.held(grown(), NOW - 5_000)
    [rel] = gate.expire(NOW - 5_000)
    assert isinstance(rel, Released) and rel.reason == "grace_expired"


def test_reopened_position_starts_over() -> None:
    gate = baseline_gate()
    gate.on_position(grown(), NOW)
    reopened = position(c_time=NOW + 100, pos=D(3))
    assert gate.on_position(reopened, NOW + 100) == []
    assert gate.held(reopened, NOW + 100)  # the opening fill, not yet classified


def test_reset_account_releases_and_forgets() -> None:
    gate = baseline_gate()
    gate.on_position(grown(), NOW)
    [rel] = gate.reset_account("sub1", NOW + 10)
    assert isinstance(rel, Released) and rel.reason == "reset"
    assert gate.held_keys() == [] and gate.reset_account("sub1", NOW + 11) == []


def test_disabled_gate_is_inert() -> None:
    gate = FillGate(None)
    assert not gate.enabled
    assert gate.on_position(grown(), NOW) == [] and gate.on_order(order(), NOW) == []
    assert not gate.held(grown(), NOW)


def test_credit_expires() -> None:
    gate = FillGate(TAG, credit_ttl_ms=1_000)
    gate.on_position(position(), T0, baseline=True)
    gate.on_order(order(), NOW)
    assert gate.on_position(grown(), NOW + 1_001) == []
    assert gate.held(grown(), NOW + 1_001)  # a stale order event explains no new growth


def test_memory_is_bounded() -> None:
    gate = FillGate(TAG, memory_ms=10, memory_max=5)
    for i in range(20):
        gate.on_order(order(ordId=str(i), tag=""), NOW + i * 100)
    assert len(gate._acc) <= 5


def test_describe_effect() -> None:
    gate = baseline_gate()
    gate.on_position(grown(), NOW)
    rec, rel = gate.on_order(order(), NOW + 1)
    assert describe_effect(rec)["ordId"] == "9001"
    assert describe_effect(rel)["reason"] == "classified"
    [skip] = gate.on_order(order(ordId="2", tdMode="cross"), NOW + 2)
    assert "reason" in describe_effect(skip)


# --- recovery ---------------------------------------------------------------------------------


def test_missing_from_orders() -> None:
    positions = [position(), position(inst_id="DOGE-USDT-SWAP", c_time=NOW)]
    history = [
        order(ordId="a"),  # counts
        order(ordId="b"),  # already recorded
        order(ordId="c", tag=""),  # untagged
        order(ordId="d", instId="DOGE-USDT-SWAP", fillTime=str(NOW - 1)),  # before its cTime
        order(ordId="e", instId="ETH-USDT-SWAP"),  # no such position now
        order(ordId="f", tdMode="cross"),
        order(ordId="g", state="canceled", fillSz="0", accFillSz="0"),
        order(ordId="h", fillTime=str(NOW - 10), state="partially_filled"),
        order(ordId="a"),  # the same order twice in a page overlap
    ]
    other = dataclasses.replace(order(ordId="z"), account="sub2")
    found = missing_from_orders("sub1", [*history, other], positions, {"b"}, TAG)
    assert [(r.ord_id, r.c_time) for r in found] == [("h", T0), ("a", T0)]
    assert all(r.account == "sub1" for r in found)


def test_missing_from_orders_fixture_by_prefix() -> None:
    [row] = json.loads((FIXTURES / "http_orders_history_swap.json").read_text())["data"]
    hist = parse_order("sub1", dict(row, clOrdId="mnt77"))
    btc = position(inst_id="BTC-USDT-SWAP", c_time=1746947317000)
    [rec] = missing_from_orders("sub1", [hist], [btc], set(), DetectRule(cl_ord_id_prefix="mnt"))
    assert (rec.ord_id, rec.c_time, rec.acc_fill_sz) == (
        "2497956918703120384",
        1746947317000,
        Decimal("0.03"),
    )


def bill(**overrides: Any) -> Any:
    raw = {
        "billId": "b1",
        "type": "2",
        "subType": "3",
        "instId": "CRO-USDT-SWAP",
        "instType": "SWAP",
        "mgnMode": "isolated",
        "ordId": "9001",
        "clOrdId": "",
        "tag": "maint",
        "sz": "4",
        "ts": str(NOW),
    }
    raw.update(overrides)
    return parse_bill("sub1", raw)


def test_missing_from_bills() -> None:
    bills = [
        bill(billId="b2", sz="6", ts=str(NOW + 5)),
        bill(),  # the first partial fill of the same order
        bill(billId="b3", ordId="x", subType="5"),  # close long: never a maintenance
        bill(billId="b4", ordId="y", tag=""),
        bill(billId="b5", ordId="z", mgnMode="cross"),
        bill(billId="b6", ordId="w", type="6", subType="160"),
        bill(billId="b7", ordId="v", subType="4"),  # open short: no short position held
        bill(billId="b8", ordId="u"),  # recorded already
        bill(billId="b9", ordId="t", ts=str(T0 - 1)),  # older than the position
    ]
    [rec] = missing_from_bills("sub1", bills, [position()], {"u"}, TAG)
    assert (rec.ord_id, rec.pos_side, rec.c_time, rec.fill_time, rec.acc_fill_sz) == (
        "9001",
        "long",
        T0,
        NOW,
        Decimal("10"),
    )


def test_recovery_since() -> None:
    day = 86_400_000
    assert recovery_since_ms([position()], NOW, 7 * day) == T0
    assert recovery_since_ms([position()], T0 + 8 * day, 7 * day) == T0 + day
    assert recovery_since_ms([], NOW, day) == NOW


def test_growth_seen_first_in_a_regular_snapshot_is_held() -> None:
    """OKX's regular snapshot (every ~5 s) may show a fill before its order event."""
    gate = baseline_gate()
    assert gate.on_position(grown(), NOW, baseline=True) == []
    assert gate.held(grown(), NOW)
    assert gate.on_position(grown(), NOW + 20) == []  # the event push: no new growth
    assert gate.held(grown(), NOW + 20)
    rec, rel = gate.on_order(order(), NOW + 30)
    assert isinstance(rec, RecordMaintenance) and isinstance(rel, Released)


def test_first_sight_in_a_snapshot_is_a_baseline() -> None:
    gate = FillGate(TAG)
    assert gate.on_position(grown(), NOW, baseline=True) == []
    assert not gate.held(grown(), NOW) and gate.next_deadline() is None
