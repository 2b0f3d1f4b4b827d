"""The simulator's private WebSocket core without sockets: exact timing on a fake clock."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from okx.websocket.WsUtils import initLoginParams

from reactor.sim.exchange import Exchange
from reactor.sim.faults import FaultPlan
from reactor.sim.scenario import load_scenario
from reactor.sim.ws_api import (
    EVENT_WINDOW_S,
    Channel,
    Close,
    Out,
    WsHub,
    WsOptions,
    WsSession,
    regular_interval_s,
)
from tests.conftest import SCENARIOS
from tests.sim.helpers import KEY, PASSPHRASE, SECRET

WU = "Wu666666"
SUB = json.dumps({"op": "subscribe", "args": [{"channel": "positions", "instType": "SWAP"}]})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_hub(
    wall_clock: Callable[[], float] = time.time, **options: Any
) -> tuple[WsHub, Clock, Exchange]:
    clock = Clock()
    ex = Exchange.from_scenario(load_scenario(SCENARIOS / "cro.yaml"))
    faults = FaultPlan(clock)
    hub = WsHub(ex, faults, WsOptions(**options), clock=clock, wall_clock=wall_clock)
    return hub, clock, ex


def frames(out: list[Out]) -> list[Any]:
    return [o if isinstance(o, Close) or o == "pong" else json.loads(o) for o in out]


def subscribed(hub: WsHub, clock: Clock, interval: str | None = None) -> WsSession:
    s = hub.open("c0ffee00")
    s.receive(initLoginParams(False, KEY, PASSPHRASE, SECRET), clock.now)
    arg: dict[str, str] = {"channel": "positions", "instType": "SWAP"}
    if interval is not None:
        arg["extraParams"] = json.dumps({"updateInterval": interval})
    s.receive(json.dumps({"op": "subscribe", "args": [arg]}), clock.now)
    out = frames(s.poll(clock.now))
    assert [f.get("event", f.get("eventType")) for f in out] == [
        "login",
        "subscribe",
        "channel-conn-count",
        "snapshot",
    ]
    return s


@pytest.mark.parametrize(
    ("extra", "seconds"),
    [
        (None, 5.0),
        ('{"updateInterval": "0"}', None),
        ('{"updateInterval": "2000"}', 2.0),
        ('{"updateInterval": "3000"}', 3.0),
        ('{"updateInterval": "4000"}', 4.0),
        ('{"updateInterval": "1000"}', 5.0),  # any other value: ~5 s (DOC-POS)
        ('{"updateInterval": 2000}', 5.0),
        ("not json", 5.0),
    ],
)
def test_update_interval_table(extra: str | None, seconds: float | None) -> None:
    assert regular_interval_s(extra) == seconds
    assert regular_interval_s(extra, 0.1) == (None if seconds is None else seconds * 0.1)


@pytest.mark.parametrize(("interval", "period"), [("2000", 2.0), (None, 5.0), ("4000", 4.0)])
def test_regular_snapshots_come_every_interval(interval: str | None, period: float) -> None:
    hub, clock, _ = make_hub()
    s = subscribed(hub, clock, interval)
    start = clock.now
    assert s.due() == start + period
    clock.now = start + period - 0.001
    assert s.poll(clock.now) == []
    clock.now = start + period
    [snap] = frames(s.poll(clock.now))
    assert (snap["eventType"], snap["curPage"], snap["lastPage"]) == ("snapshot", 1, True)
    assert s.due() == start + 2 * period


def test_events_only_sends_no_regular_snapshot() -> None:
    hub, clock, _ = make_hub()
    s = subscribed(hub, clock, "0")
    clock.now += 29
    assert s.poll(clock.now) == []
    assert s.due() == clock.now + 1  # only the idle rule is left


def test_event_window_aggregates_and_keeps_the_latest_record() -> None:
    wall = time.time()  # frozen: pTime is compared with it below (a ticking clock can differ)
    hub, clock, ex = make_hub(wall_clock=lambda: wall)
    s = subscribed(hub, clock, "0")
    _, changes = ex.margin_balance(WU, "CRO-USDT-SWAP", "long", "add", Decimal(1))
    hub.changes(changes)
    assert s.poll(clock.now) == []  # held for the window
    assert s.due() == pytest.approx(clock.now + EVENT_WINDOW_S)
    clock.now += 0.02
    _, changes = ex.margin_balance(WU, "CRO-USDT-SWAP", "long", "add", Decimal(1))
    hub.changes(changes)
    clock.now += EVENT_WINDOW_S - 0.02
    [push] = frames(s.poll(clock.now))
    assert push["eventType"] == "event_update" and "curPage" not in push
    assert [p["margin"] for p in push["data"]] == ["22.29"]
    assert push["data"][0]["pTime"] == str(int(wall * 1000))


def test_event_push_goes_before_a_coincident_regular_push() -> None:
    """DOC-POS: "If an event push and a regular push happen at the same time, the system will
    send the event push first, followed by the regular push"."""
    hub, clock, ex = make_hub()
    s = subscribed(hub, clock, "2000")
    clock.now += 2.0 - EVENT_WINDOW_S
    _, changes = ex.margin_balance(WU, "CRO-USDT-SWAP", "long", "add", Decimal(1))
    hub.changes(changes)
    clock.now += EVENT_WINDOW_S
    out = frames(s.poll(clock.now))
    assert [f["eventType"] for f in out] == ["event_update", "snapshot"]


def test_mark_move_reaches_only_the_regular_snapshot() -> None:
    hub, clock, ex = make_hub()
    s = subscribed(hub, clock, "2000")
    before = ex.positions(WU)[0]
    hub.changes(ex.set_mark_price("CRO-USDT-SWAP", Decimal("0.0960")))
    clock.now += 1.0
    assert s.poll(clock.now) == []
    clock.now += 1.0
    [snap] = frames(s.poll(clock.now))
    [p] = snap["data"]
    assert p["markPx"] == "0.096" and p["uTime"] == before["uTime"]


@given(st.integers(min_value=0, max_value=12), st.integers(min_value=1, max_value=5))
def test_snapshot_pages_cover_every_open_position_once(n: int, size: int) -> None:
    hub, clock, ex = make_hub(page_size=size)
    for k in range(n):
        ex.set_position(
            WU, "CRO-USDT-SWAP", f"net{k}", pos=Decimal(1), avg_px=Decimal("0.09"),
            lever=Decimal(3), margin=Decimal(5),
        )  # fmt: skip
    s = hub.open()
    s.receive(initLoginParams(False, KEY, PASSPHRASE, SECRET), clock.now)
    s.receive(SUB, clock.now)
    pages = [f for f in frames(s.poll(clock.now)) if f.get("eventType") == "snapshot"]
    total = n + 1
    assert len(pages) == max(1, -(-total // size))
    assert [p["curPage"] for p in pages] == list(range(1, len(pages) + 1))
    assert [p["lastPage"] for p in pages] == [False] * (len(pages) - 1) + [True]
    ids = [q["posId"] for p in pages for q in p["data"]]
    assert len(ids) == len(set(ids)) == total
    assert all(len(p["data"]) <= size for p in pages)


def test_legacy_push_fields_switch() -> None:
    hub, clock, _ = make_hub(legacy_push_fields=True)
    s = hub.open()
    s.receive(initLoginParams(False, KEY, PASSPHRASE, SECRET), clock.now)
    s.receive(SUB, clock.now)
    snap = frames(s.poll(clock.now))[-1]
    assert set(snap) == {"arg", "data"}


def test_idle_rules() -> None:
    hub, clock, _ = make_hub()
    # No subscription within 30 s closes even with traffic.
    s = hub.open()
    for _ in range(2):
        clock.now += 10
        s.receive("ping", clock.now)
        assert frames(s.poll(clock.now)) == ["pong"]
    clock.now += 10
    assert s.poll(clock.now) == [Close(4004, "No data received in 30s")]
    # Subscribed, events only, nothing either way for 30 s: closed.
    s = subscribed(hub, clock, "0")
    clock.now += 29.9
    assert s.poll(clock.now) == []
    clock.now += 0.1
    assert s.poll(clock.now) == [Close(4004, "No data received in 30s")]
    # Subscribed with regular snapshots: a client that never sends stays open.
    s = subscribed(hub, clock)
    for _ in range(20):
        clock.now += 5
        assert [f["eventType"] for f in frames(s.poll(clock.now))] == ["snapshot"]


def test_quiet_client_fault() -> None:
    hub, clock, _ = make_hub()
    s = subscribed(hub, clock)
    hub.faults.set_quiet_close(WU, 12.0)
    assert s.due() == clock.now + 5
    clock.now += 10
    s.poll(clock.now)
    clock.now += 2
    assert frames(s.poll(clock.now))[-1] == Close(4004, "No data received in 30s")


def test_silence_swallows_pings_and_counts_them() -> None:
    hub, clock, _ = make_hub()
    s = subscribed(hub, clock)
    hub.faults.silence(WU, 1.0)
    s.receive("ping", clock.now)
    assert s.poll(clock.now) == [] and s.pings_unanswered == 1
    clock.now += 1.0
    s.receive("ping", clock.now)
    assert frames(s.poll(clock.now)) == ["pong"] and s.pings_unanswered == 1


def test_login_failure_closes_4001_or_not() -> None:
    for close, expect in ((True, [Close(4001, "Login Failed")]), (False, [])):
        hub, clock, _ = make_hub(close_on_login_failure=close)
        s = hub.open()
        s.receive(initLoginParams(False, KEY, "wrong", SECRET), clock.now)
        out = frames(s.poll(clock.now))
        assert out[0]["code"] == "60024" and out[1:] == expect


def test_a_second_channel_registers_and_pushes_events() -> None:
    """How sim-trade adds ``orders``: register, subscribe, publish."""
    hub, clock, _ = make_hub()
    hub.add_channel(Channel("orders"))
    s = hub.open()
    s.receive(initLoginParams(False, KEY, PASSPHRASE, SECRET), clock.now)
    s.receive(SUB.replace("positions", "orders"), clock.now)
    out = frames(s.poll(clock.now))
    assert [f["event"] for f in out] == ["login", "subscribe"]  # no snapshot, no count
    hub.publish("orders", WU, [{"instId": "CRO-USDT-SWAP", "ordId": "1"}])
    clock.now += EVENT_WINDOW_S
    [push] = frames(s.poll(clock.now))
    assert push == {
        "arg": {"channel": "orders", "instType": "SWAP", "uid": "448800000000001"},
        "data": [{"instId": "CRO-USDT-SWAP", "ordId": "1"}],
    }
