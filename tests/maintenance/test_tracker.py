"""MaintenanceTracker: the gate's effects carried out on a real ledger, with a fake clock."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from reactor.ledger import Ledger, MaintenanceRecord
from reactor.maintenance import DetectRule, FillGate
from reactor.maintenance_tracker import MaintenanceTracker
from reactor.okx.orders import OrderUpdate, parse_order
from tests.core.factories import D, position

T0 = 1_700_000_000_000
NOW = T0 + 60_000
KEY = ("sub1", "CRO-USDT-SWAP", "long", "isolated")
POS = KEY[:3]


def order(**kw: Any) -> OrderUpdate:
    raw = {
        "instId": "CRO-USDT-SWAP",
        "ordId": "9001",
        "tag": "maint",
        "state": "filled",
        "side": "buy",
        "posSide": "long",
        "tdMode": "isolated",
        "fillSz": "10",
        "accFillSz": "10",
        "fillTime": str(NOW),
    }
    raw.update(kw)
    return parse_order("sub1", raw)


class FlakyLedger:
    """A ledger whose writes fail until ``healthy`` (a disk-full / locked episode)."""

    def __init__(self, inner: Ledger) -> None:
        self.inner, self.healthy, self.calls = inner, False, 0

    def record(self, *args: Any, **kw: Any) -> MaintenanceRecord | None:
        self.calls += 1
        if not self.healthy:
            raise sqlite3.OperationalError("database or disk is full")
        return self.inner.record(*args, **kw)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "reactor.sqlite") as led:
        yield led


def tracker(ledger: Any) -> MaintenanceTracker:
    t = MaintenanceTracker(FillGate(DetectRule(tag="maint")), ledger, retry_ms=1_000)
    t.on_position(position(), T0, baseline=True)
    return t


def test_position_first_then_order_records_and_releases(ledger: Ledger) -> None:
    t = tracker(ledger)
    grown = position(pos=D(118))
    assert t.on_position(grown, NOW) == set()
    assert t.held(grown, NOW) and t.next_deadline() == NOW + 300
    with capture_logs() as logs:
        touched = t.on_orders([order()], NOW + 50)
    assert touched == {KEY}
    assert not t.held(grown, NOW + 50)
    assert ledger.count(*POS, T0) == 1 and ledger.sources(*POS, T0) == {"fill": 1}
    [rec] = [e for e in logs if e["event"] == "maintenance.recorded"]
    assert rec["source"] == "fill" and rec["cTime"] == T0
    # The same fill again: nothing.
    assert t.on_orders([order()], NOW + 60) == set()
    assert ledger.count(*POS, T0) == 1


def test_grace_expiry_is_a_warning(ledger: Ledger) -> None:
    t = tracker(ledger)
    t.on_position(position(pos=D(118)), NOW)
    with capture_logs() as logs:
        assert t.tick(NOW + 300) == {KEY}
    assert [e["event"] for e in logs] == ["maintenance.gate.expired"]
    assert logs[0]["log_level"] == "warning" and logs[0]["waited_ms"] == 300


def test_skipped_and_plain_fills_are_logged(ledger: Ledger) -> None:
    t = tracker(ledger)
    with capture_logs() as logs:
        t.on_orders([order(tdMode="cross"), order(ordId="2", tag="")], NOW)
    assert [e["event"] for e in logs] == ["maintenance.fill.skipped", "maintenance.fill.plain"]
    assert ledger.list_maintenance() == []


def test_failed_write_is_counted_in_memory_and_retried(ledger: Ledger) -> None:
    flaky = FlakyLedger(ledger)
    t = tracker(flaky)
    grown = position(pos=D(118))
    t.on_position(grown, NOW)
    with capture_logs() as logs:
        touched = t.on_orders([order()], NOW + 10)
    assert touched == {KEY}
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["maintenance.record.failed"]
    assert t.unsaved == 1 and t.count_extra(grown) == 1  # the target moves anyway
    assert t.count_extra(position(c_time=T0 + 1)) == 0  # not another lifecycle's
    assert t.next_deadline() == NOW + 1_010
    t.tick(NOW + 500)
    assert flaky.calls == 1  # not before the retry time
    flaky.healthy = True
    t.tick(NOW + 1_010)
    assert t.unsaved == 0 and t.count_extra(grown) == 0 and t.next_deadline() is None
    assert ledger.count(*POS, T0) == 1


def test_invalid_record_is_dropped_not_retried_forever(ledger: Ledger) -> None:
    class Refusing:
        def record(self, *args: Any, **kw: Any) -> MaintenanceRecord | None:
            raise ValueError("key must not be empty")

    t = MaintenanceTracker(FillGate(DetectRule(tag="maint")), Refusing())
    t.on_position(position(), T0, baseline=True)
    with capture_logs() as logs:
        t.on_orders([order()], NOW)
    assert t.unsaved == 0 and t.next_deadline() is None
    failed = next(e for e in logs if e["event"] == "maintenance.record.failed")
    assert "invalid" in failed["error"]


def test_disabled_tracker(ledger: Ledger) -> None:
    t = MaintenanceTracker(FillGate(None), ledger)
    assert not t.enabled
    assert t.on_orders([order()], NOW) == set() and ledger.list_maintenance() == []
