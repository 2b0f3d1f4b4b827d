"""The ``ws_channel_delay`` fault (for counts from fills): one channel's event pushes held back,
so a test can pick whether a fill's ``positions`` or ``orders`` push arrives first."""

from __future__ import annotations

import json

from okx.websocket.WsUtils import initLoginParams

from reactor.sim.ws_api import EVENT_WINDOW_S, Channel
from tests.sim.helpers import KEY, PASSPHRASE, SECRET
from tests.sim.test_ws_api import WU, frames, make_hub

BOTH = json.dumps(
    {
        "op": "subscribe",
        "args": [
            {"channel": "positions", "instType": "SWAP"},
            {"channel": "orders", "instType": "SWAP"},
        ],
    }
)


def session():  # type: ignore[no-untyped-def]
    hub, clock, _ = make_hub()
    hub.add_channel(Channel("orders"))
    s = hub.open()
    s.receive(initLoginParams(False, KEY, PASSPHRASE, SECRET), clock.now)
    s.receive(BOTH, clock.now)
    s.poll(clock.now)  # acks and the positions snapshot
    return hub, clock, s


def channels(out: list[object]) -> list[str]:
    return [f["arg"]["channel"] for f in frames(out)]  # type: ignore[arg-type]


def publish(hub) -> None:  # type: ignore[no-untyped-def]
    hub.publish("orders", WU, [{"instId": "CRO-USDT-SWAP", "ordId": "1"}])
    hub.publish("positions", WU, [{"instId": "CRO-USDT-SWAP", "posSide": "long", "pos": "9"}])


def test_without_the_fault_both_go_in_one_flush_positions_first() -> None:
    hub, clock, s = session()
    publish(hub)
    clock.now += EVENT_WINDOW_S
    assert channels(s.poll(clock.now)) == ["positions", "orders"]


def test_delayed_orders_come_after_the_position() -> None:
    hub, clock, s = session()
    hub.faults.set_channel_delay(WU, "orders", 0.2)
    publish(hub)
    clock.now += EVENT_WINDOW_S
    assert channels(s.poll(clock.now)) == ["positions"]
    assert s.due() is not None and abs(s.due() - (clock.now + 0.2)) < 1e-9
    clock.now += 0.19
    assert s.poll(clock.now) == []
    clock.now += 0.01
    assert channels(s.poll(clock.now)) == ["orders"]


def test_delayed_positions_come_after_the_order_and_keep_their_order() -> None:
    hub, clock, s = session()
    hub.faults.set_channel_delay(WU, "positions", 0.2)
    publish(hub)
    clock.now += EVENT_WINDOW_S
    assert channels(s.poll(clock.now)) == ["orders"]
    hub.faults.set_channel_delay(WU, "positions", None)  # off: a later push still queues behind
    hub.publish("positions", WU, [{"instId": "CRO-USDT-SWAP", "posSide": "long", "pos": "10"}])
    clock.now += EVENT_WINDOW_S
    assert s.poll(clock.now) == []
    clock.now += 0.2
    pushes = frames(s.poll(clock.now))
    assert [p["data"][0]["pos"] for p in pushes] == ["9", "10"]  # type: ignore[index]
