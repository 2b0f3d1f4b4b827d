"""PrivateChannelProtocol with the ``orders`` channel (counts from fills)."""

from __future__ import annotations

import json

from reactor.okx.credentials import Credentials
from reactor.okx.ws_protocol import (
    Ignored,
    InvalidFrame,
    OrdersUpdate,
    PrivateChannelProtocol,
    Subscribed,
    SubscribeFailed,
)
from tests.paths import FIXTURES

CREDS = Credentials("key-1", "secret-1", "pass-1")
ACK = '{{"event":"subscribe","arg":{{"channel":"{}","instType":"SWAP"}},"connId":"a4d3ae55"}}'


def logged_in(orders: bool) -> PrivateChannelProtocol:
    p = PrivateChannelProtocol("Wu666666", CREDS, clock=lambda: 1_700_000_000.9, orders=orders)
    p.login_frame()
    p.receive('{"event":"login","code":"0","msg":"","connId":"a4d3ae55"}')
    return p


def test_subscribe_frame_asks_for_orders_only_when_enabled() -> None:
    assert json.loads(logged_in(False).subscribe_frame())["args"] == [
        {"channel": "positions", "instType": "SWAP"}
    ]
    assert json.loads(logged_in(True).subscribe_frame()) == {
        "op": "subscribe",
        "args": [
            {"channel": "positions", "instType": "SWAP"},
            {"channel": "orders", "instType": "SWAP"},
        ],
    }


def test_acks_in_either_order() -> None:
    p = logged_in(True)
    p.subscribe_frame()
    assert p.receive(ACK.format("orders")) == [Ignored("orders subscribed")]
    assert p.orders_subscribed and p.state != "subscribed"
    assert p.receive(ACK.format("positions")) == [Subscribed("a4d3ae55")]
    q = logged_in(True)
    q.subscribe_frame()
    assert q.receive(ACK.format("positions")) == [Subscribed("a4d3ae55")]
    # The orders ack is still awaited: an error now is that subscription failing.
    [failed] = q.receive('{"event":"error","code":"60012","msg":"Illegal request"}')
    assert isinstance(failed, SubscribeFailed) and failed.code == "60012"


def test_orders_push_from_a_capture() -> None:
    p = logged_in(True)
    p.subscribe_frame()
    p.receive(ACK.format("positions"))
    p.receive(ACK.format("orders"))
    text = (FIXTURES / "ws_orders_nt.json").read_text()
    [event] = p.receive(text)
    assert isinstance(event, OrdersUpdate) and event.invalid == []
    [o] = event.orders
    assert (o.account, o.ord_id, o.state, o.acc_fill_sz) == (
        "Wu666666",
        "2497956918703120384",
        "filled",
        o.fill_sz,
    )


def test_bad_order_items_are_reported_not_fatal() -> None:
    p = logged_in(True)
    msg = {
        "arg": {"channel": "orders", "instType": "SWAP"},
        "data": [{"ordId": "1", "instId": "A-USDT-SWAP"}, {"instId": "no ordId"}],
    }
    [event] = p.receive(json.dumps(msg))
    assert isinstance(event, OrdersUpdate)
    assert [o.ord_id for o in event.orders] == ["1"]
    assert [i.reason for i in event.invalid] == ["ordId: missing"]
    [bad] = p.receive('{"arg":{"channel":"orders"},"data":{}}')
    assert isinstance(bad, InvalidFrame) and "data" in bad.reason


def test_orders_push_without_the_subscription_is_unknown() -> None:
    p = logged_in(False)
    text = (FIXTURES / "ws_orders_nt.json").read_text()
    [event] = p.receive(text)
    assert isinstance(event, InvalidFrame) and "unknown channel" in event.reason
