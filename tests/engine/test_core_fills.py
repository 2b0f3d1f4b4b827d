"""The engine core with counts from fills, on a fake clock.

The race: a maintenance fill raises the isolated margin (about the fill's initial margin) and
moves the count from 1 to 2, so the target from 10 to 20. The position push and the order push
of that fill arrive in any order. Without the gate the core would see the new margin with the
old count and reduce to 10, then add back to 20 once the count moved: two wasted transfers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from reactor.domain.fills import DetectRule, FillGate, RecordMaintenance
from reactor.engine.commands import Command, RecoverFills, WriteMaintenance
from reactor.engine.core import EngineCore
from reactor.engine.state import AccountState
from reactor.okx.models import Position
from reactor.okx.orders import OrderUpdate, parse_order
from tests.domain.factories import D
from tests.engine.core_driver import CT_VALS, KEY, Driver, FakeCounts, cro, settings

T0 = 1_700_000_000_000
POS3 = KEY[:3]
# Count 1 (target 10): margin 10 on 108 contracts at 20x. The maintenance buys 108 more; OKX
# adds the fill's initial margin (216 x 10 x 0.095 / 20 / 2 = 5.13 ... here 10.3).
BEFORE = {"pos": D("108"), "margin": D("10"), "lever": D("20"), "mmr": D("0.41"), "upl": D("0")}
AFTER = {"pos": D("216"), "margin": D("20.3"), "lever": D("20"), "mmr": D("0.82"), "upl": D("0")}


def order(**kw: Any) -> OrderUpdate:
    raw = {
        "instId": "CRO-USDT-SWAP",
        "ordId": "m-1",
        "tag": "maint",
        "state": "filled",
        "side": "buy",
        "posSide": "long",
        "tdMode": "isolated",
        "fillSz": "108",
        "accFillSz": "108",
        "fillTime": str(T0 + 5_000),
    }
    raw.update(kw)
    return parse_order("sub1", raw)


@dataclass
class FillDriver(Driver):
    written: list[RecordMaintenance] = field(default_factory=list)
    recoveries: list[RecoverFills] = field(default_factory=list)
    ledger_error: str | None = None

    def _execute(self, cmd: Command) -> list[Command]:
        if isinstance(cmd, WriteMaintenance):
            if self.ledger_error:
                return self.core.on_maintenance_failed(cmd.record, self.ledger_error, now=self.now)
            self.written.append(cmd.record)
            self.counts.counts[POS3] = self.counts.counts.get(POS3, 0) + 1
            return self.core.on_maintenance_written(cmd.record, len(self.written), now=self.now)
        if isinstance(cmd, RecoverFills):
            self.recoveries.append(cmd)
            return []
        return super()._execute(cmd)

    def orders(self, *orders: OrderUpdate) -> None:
        self.feed(self.core.on_orders("sub1", list(orders), now=self.now))
        self.run_due()


def fill_driver(*, grace_ms: int = 300, count: int = 1) -> FillDriver:
    counts = FakeCounts()
    counts.counts[POS3] = count
    core = EngineCore(
        settings(),
        {"sub1": AccountState("sub1", "sub")},
        CT_VALS,
        counts,
        rand=lambda: 1.0,
        fills=FillGate(DetectRule(tag="maint"), grace_ms=grace_ms),
    )
    d = FillDriver(core, counts)
    d.snapshot(cro(c_time=T0, **BEFORE))
    [rec] = d.recoveries
    assert rec.account == "sub1" and [p.pos for p in rec.positions] == [D("108")]
    assert d.control().reason == "recovering fills missed while away"
    d.feed(core.on_fills_recovered("sub1", (), now=d.now))
    d.advance(1.0)
    assert d.all_sent == [] and d.control().status == "ok"  # 10 in band 9.5-10.5
    return d


def after() -> Position:
    return cro(c_time=T0, u_time=T0 + 5_000, **AFTER)


@pytest.mark.parametrize("ordering", ["position_first", "order_first", "same_tick"])
def test_tagged_maintenance_moves_the_count_first(ordering: str) -> None:
    d = fill_driver()
    if ordering == "position_first":
        d.push(after())
        assert d.control().status == "adjusting" and d.all_sent == []
        d.advance(0.1)
        d.orders(order())
    elif ordering == "order_first":
        d.orders(order())
        d.advance(0.05)
        d.push(after())
    else:
        d.feed(d.core.on_update("sub1", [after()], now=d.now))
        d.feed(d.core.on_orders("sub1", [order()], now=d.now))
        d.run_due()
    d.advance(10.0)
    assert [r.ord_id for r in d.written] == ["m-1"] and d.written[0].c_time == T0
    assert d.all_sent == []  # 20.3 is inside 19-21: no transfer at all
    assert (d.control().count, d.control().target) == (2, D("20"))
    assert d.events("maintenance.recorded")[0]["source"] == "fill"
    assert d.events("maintenance.gate.expired") == []


def test_without_the_order_event_grace_ends_and_the_old_count_is_used() -> None:
    d = fill_driver()
    d.push(after())
    d.advance(0.299)
    assert d.all_sent == []
    d.advance(0.002)
    assert [c.action for c in d.all_sent] == ["reduce"]
    assert d.levels("maintenance.gate.expired") == ["warning"]


def test_untagged_buy_is_a_plain_fill_corrected_to_the_current_target() -> None:
    d = fill_driver()
    d.push(after())
    d.advance(0.05)
    d.orders(order(tag="", ordId="p-1"))
    [call] = d.all_sent
    assert call.action == "reduce" and d.written == []
    assert d.control().count == 1 and d.events("maintenance.gate.expired") == []


def test_same_fill_twice_counts_once() -> None:
    d = fill_driver()
    d.orders(order())
    d.orders(order())
    d.push(after())
    d.orders(order(state="filled"))
    d.advance(10.0)
    assert len(d.written) == 1 and d.counts.counts[POS3] == 2 and d.all_sent == []


def test_failed_ledger_write_still_counts_and_is_retried() -> None:
    d = fill_driver()
    d.ledger_error = "LedgerUnavailable: disk_full"
    d.push(after())
    d.orders(order())
    d.advance(0.5)
    assert d.all_sent == [] and d.control().count == 2  # counted in memory
    assert d.levels("maintenance.record.failed")[0] == "error"
    [problem] = d.core.view(d.now).problems
    assert "1 record(s) not in the ledger" in problem  # /healthz answers 503 meanwhile
    d.ledger_error = None
    d.advance(1.0)
    assert [r.ord_id for r in d.written] == ["m-1"] and d.counts.counts[POS3] == 2
    assert d.core.view(d.now).problems == ()
    d.advance(10.0)
    assert d.all_sent == [] and d.control().count == 2
    assert d.core.view(d.now).accounts[0].positions[0].sources == ()  # FakeCounts: no sources


def test_recovery_failure_never_blocks_for_good() -> None:
    counts = FakeCounts()
    counts.counts[POS3] = 1
    core = EngineCore(
        settings(),
        {"sub1": AccountState("sub1", "sub")},
        CT_VALS,
        counts,
        rand=lambda: 1.0,
        fills=FillGate(DetectRule(tag="maint")),
    )
    d = FillDriver(core, counts)
    d.snapshot(cro(c_time=T0, **AFTER))
    d.advance(5.0)
    assert d.all_sent == []  # nothing corrected before the missed fills are known
    d.feed(core.on_fills_recovery_failed("sub1", "OkxError 50026", now=d.now))
    d.advance(1.0)
    assert d.levels("maintenance.recovery.failed") == ["error"]
    assert d.core.view(d.now).problems == (
        "sub1: fills missed while away not recovered: OkxError 50026",
    )
    d.feed(core.on_fills_recovered("sub1", (), now=d.now))  # the next reconnect's recovery
    assert d.core.view(d.now).problems == ()
    assert [c.action for c in d.all_sent] == ["reduce"]


def test_recovered_fill_moves_the_target_before_any_call() -> None:
    counts = FakeCounts()
    counts.counts[POS3] = 1
    core = EngineCore(
        settings(),
        {"sub1": AccountState("sub1", "sub")},
        CT_VALS,
        counts,
        rand=lambda: 1.0,
        fills=FillGate(DetectRule(tag="maint")),
    )
    d = FillDriver(core, counts)
    d.snapshot(cro(c_time=T0, **AFTER))  # grew while we were away
    counts.counts[POS3] = 2  # the recovery wrote the missed maintenance
    d.feed(core.on_fills_recovered("sub1", {KEY}, now=d.now))
    d.advance(10.0)
    assert d.all_sent == [] and d.control().count == 2


def test_disconnect_releases_holds() -> None:
    d = fill_driver()
    d.push(after())
    d.feed(d.core.on_disconnected("sub1", "closed", now=d.now))
    assert d.events("maintenance.gate.released")[0]["reason"] == "reset"


def test_no_rule_no_gate_no_recovery() -> None:
    counts = FakeCounts()
    core = EngineCore(
        settings(), {"sub1": AccountState("sub1", "sub")}, CT_VALS, counts, fills=FillGate(None)
    )
    d = FillDriver(core, counts)
    d.snapshot(cro(c_time=T0, **BEFORE))
    assert d.recoveries == [] and d.core.on_orders("sub1", [order()], now=0) == []


# -- any interleaving -----------------------------------------------------------------------

# 108 more contracts at 20x add 5.13: 15.13 with count 2 (target 20) -> one add of 4.87.
GROWN = {"pos": D("216"), "margin": D("15.13"), "lever": D("20"), "mmr": D("0.82"), "upl": D("0")}


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    order_first=st.booleans(),
    gap_ms=st.integers(0, 250),
    duplicates=st.lists(st.integers(0, 250), max_size=2),
    repeat_position=st.booleans(),
)
def test_any_interleaving_one_call_in_the_right_direction(
    order_first: bool, gap_ms: int, duplicates: list[int], repeat_position: bool
) -> None:
    """Within the grace window, whatever comes first, duplicated or not: the maintenance is
    counted once and the margin goes to the new target with one add, never a reduce."""
    d = fill_driver()
    grown = cro(c_time=T0, u_time=T0 + 5_000, **GROWN)
    events: list[tuple[int, str]] = [(0, "order" if order_first else "position")]
    events.append((gap_ms, "position" if order_first else "order"))
    events += [(t, "order") for t in duplicates]
    if repeat_position:
        events.append((gap_ms + 10, "position"))
    start = d.now
    for at, kind in sorted(events, key=lambda e: e[0]):
        d.advance(start + at / 1000 - d.now)
        if kind == "order":
            d.orders(order())
        else:
            d.push(grown)
    d.advance(10.0)
    assert len(d.written) == 1 and d.counts.counts[POS3] == 2
    assert [c.action for c in d.all_sent] == ["add"]
    assert d.all_sent[0].amount == D("4.87")
