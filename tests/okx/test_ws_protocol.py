"""PrivateChannelProtocol against OKX's real payload shapes (see docs/spec/okx-v5.md)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from reactor.okx.credentials import Credentials
from reactor.okx.signing import ws_login_sign
from reactor.okx.ws_protocol import (
    Ignored,
    InvalidFrame,
    LoginFailed,
    LoginOk,
    Notice,
    OrdersUpdate,
    Pong,
    PrivateChannelProtocol,
    ServerError,
    SnapshotPage,
    Subscribed,
    SubscribeFailed,
    Update,
)
from tests.paths import FIXTURES

CREDS = Credentials("key-1", "secret-1", "pass-1")

# Captured live shape (ccxt's okx watchPositions comments), adapted to an isolated USDT swap.
LIVE_POSITION: dict[str, Any] = {
    "adl": "1",
    "availPos": "108",
    "avgPx": "0.0905",
    "cTime": "1619507758793",
    "ccy": "USDT",
    "imr": "",
    "instId": "CRO-USDT-SWAP",
    "instType": "SWAP",
    "last": "0.0951",
    "lever": "10",
    "liqPx": "0.07164000000000001",
    "markPx": "0.095",
    "margin": "20.29",
    "mgnMode": "isolated",
    "mgnRatio": "11.731726509588816",
    "mmr": "0.41040000000000004",
    "notionalUsd": "102.60000000000001",
    "pTime": "1619507761462",
    "pos": "108",
    "posId": "307173036051017730",
    "posSide": "long",
    "tradeId": "109844",
    "uTime": "1619507761462",
    "upl": "4.859999999999999",
    "uplRatio": "0.4972375690607734",
}


def push(data: list[Any], event_type: str | None = "snapshot", **extra: Any) -> str:
    msg: dict[str, Any] = {"arg": {"channel": "positions", "uid": "779", "instType": "SWAP"}}
    if event_type is not None:
        msg["eventType"] = event_type
    msg.update(extra)
    msg["data"] = data
    return json.dumps(msg)


def subscribed() -> PrivateChannelProtocol:
    p = PrivateChannelProtocol("Wu666666", CREDS, clock=lambda: 1_700_000_000.9)
    p.login_frame()
    p.receive('{"event":"login","code":"0","msg":"","connId":"a4d3ae55"}')
    p.subscribe_frame()
    p.receive(
        '{"event":"subscribe","arg":{"channel":"positions","instType":"SWAP"},"connId":"a4d3ae55"}'
    )
    return p


def test_login_frame_is_signed_with_unix_seconds() -> None:
    p = PrivateChannelProtocol("A", CREDS, clock=lambda: 1_700_000_000.9)
    assert p.state == "new"
    frame = json.loads(p.login_frame())
    assert p.state == "logging_in"
    assert frame["op"] == "login"
    (arg,) = frame["args"]
    assert arg["apiKey"] == "key-1" and arg["passphrase"] == "pass-1"
    assert arg["timestamp"] == "1700000000"
    assert arg["sign"] == ws_login_sign("secret-1", "1700000000")


def test_login_then_subscribe_states() -> None:
    p = PrivateChannelProtocol("A", CREDS)
    p.login_frame()
    assert p.receive('{"event":"login","code":"0","msg":"","connId":"x1"}') == [LoginOk("x1")]
    assert p.state == "logged_in"
    assert json.loads(p.subscribe_frame()) == {
        "op": "subscribe",
        "args": [{"channel": "positions", "instType": "SWAP"}],
    }
    ack = '{"event":"subscribe","arg":{"channel":"positions","instType":"SWAP"},"connId":"x1"}'
    assert p.receive(ack) == [Subscribed("x1")]
    assert p.state == "subscribed"


@pytest.mark.parametrize(
    ("code", "auth"),
    [("60009", True), ("60005", True), ("60007", True), ("60024", True), ("60006", False)],
)
def test_login_errors(code: str, auth: bool) -> None:
    p = PrivateChannelProtocol("A", CREDS)
    p.login_frame()
    (ev,) = p.receive(json.dumps({"event": "error", "code": code, "msg": "Login failed."}))
    assert ev == LoginFailed(code, "Login failed.")
    assert isinstance(ev, LoginFailed) and ev.is_auth is auth
    assert ev.is_timestamp is (code == "60006")
    assert p.state == "failed"


def test_login_event_with_error_code() -> None:
    p = PrivateChannelProtocol("A", CREDS)
    p.login_frame()
    assert p.receive('{"event":"login","code":"60024","msg":"Wrong passphrase"}') == [
        LoginFailed("60024", "Wrong passphrase")
    ]


def test_subscribe_error_and_other_errors() -> None:
    p = PrivateChannelProtocol("A", CREDS)
    p.login_frame()
    p.receive('{"event":"login","code":"0","msg":""}')
    p.subscribe_frame()
    err = json.dumps({"event": "error", "code": "60012", "msg": 'Illegal request: {"op":"x"}'})
    assert p.receive(err) == [SubscribeFailed("60012", 'Illegal request: {"op":"x"}')]
    # The next error is not tied to any request we made.
    assert p.receive('{"event":"error","code":"60018","msg":"Wrong URL"}') == [
        ServerError("60018", "Wrong URL")
    ]


def test_pong_notice_and_channel_conn_count() -> None:
    p = subscribed()
    assert p.receive("pong") == [Pong()]
    notice = (
        '{"event":"notice","code":"64008","msg":"The connection will soon be closed for a '
        'service upgrade. Please reconnect.","connId":"a4d3ae55"}'
    )
    (ev,) = p.receive(notice)
    assert isinstance(ev, Notice) and ev.code == "64008"
    count = (
        '{"event":"channel-conn-count","channel":"positions","connCount":"2","connId":"a4d3ae55"}'
    )
    assert p.receive(count) == [Ignored("channel-conn-count")]


def test_snapshot_pages_with_live_shape() -> None:
    p = subscribed()
    second = dict(LIVE_POSITION, instId="DOGE-USDT-SWAP", posSide="short", pos="3")
    (page1,) = p.receive(push([LIVE_POSITION], curPage=1, lastPage=False))
    (page2,) = p.receive(push([second], curPage=2, lastPage=True))
    assert isinstance(page1, SnapshotPage) and isinstance(page2, SnapshotPage)
    assert (page1.cur_page, page1.last_page, page2.cur_page, page2.last_page) == (1, False, 2, True)
    pos = page1.positions[0]
    assert pos.key == ("Wu666666", "CRO-USDT-SWAP", "long", "isolated")
    assert pos.margin == Decimal("20.29") and pos.pos == Decimal("108")
    # Float tails survive exactly: parsed from the string, not through float.
    assert pos.notional_usd == Decimal("102.60000000000001")
    assert pos.mmr == Decimal("0.41040000000000004")
    assert pos.u_time == 1619507761462
    assert page2.positions[0].key == ("Wu666666", "DOGE-USDT-SWAP", "short", "isolated")
    assert page1.invalid == [] and page2.invalid == []


def test_empty_snapshot_and_snapshot_without_paging() -> None:
    p = subscribed()
    assert p.receive(push([])) == [SnapshotPage([], 1, True, [])]
    (ev,) = p.receive(push([LIVE_POSITION], curPage="1", lastPage="true"))
    assert isinstance(ev, SnapshotPage) and ev.last_page is True


def test_event_update_and_closed_position() -> None:
    p = subscribed()
    closed = dict(LIVE_POSITION, pos="0", margin="", markPx="", upl="", liqPx="")
    (ev,) = p.receive(push([LIVE_POSITION, closed], event_type="event_update"))
    assert isinstance(ev, Update)
    assert [x.pos for x in ev.positions] == [Decimal("108"), Decimal("0")]
    assert ev.positions[1].margin is None and ev.positions[1].mark_px is None
    assert not ev.positions[1].is_open
    # A push without eventType (older shape) after the first push is an update.
    (ev2,) = p.receive(push([LIVE_POSITION], event_type=None))
    assert isinstance(ev2, Update) and len(ev2.positions) == 1


def test_first_push_without_event_type_is_the_snapshot() -> None:
    """OKX in 2024 sent the subscribe snapshot with no eventType/curPage/lastPage
    (CCXT-21565): it must still count as the snapshot, or the account never becomes fresh."""
    p = subscribed()
    assert p.receive(push([], event_type=None)) == [SnapshotPage([], 1, True, [])]
    (ev,) = p.receive(push([LIVE_POSITION], event_type=None))
    assert isinstance(ev, Update)
    # A new subscribe ack (new connection state) expects a snapshot again.
    p.receive('{"event":"subscribe","arg":{"channel":"positions","instType":"SWAP"},"connId":"b1"}')
    (again,) = p.receive(push([LIVE_POSITION], event_type=None))
    assert isinstance(again, SnapshotPage) and again.last_page and again.cur_page == 1


def test_explicit_event_update_first_stays_an_update() -> None:
    p = subscribed()
    (ev,) = p.receive(push([LIVE_POSITION], event_type="event_update"))
    assert isinstance(ev, Update)


def test_empty_string_fields_do_not_crash() -> None:
    p = subscribed()
    blanks = {k: "" for k in LIVE_POSITION} | {
        "instId": "CRO-USDT-SWAP",
        "posSide": "long",
        "pos": "1",
        "mgnMode": "isolated",
    }
    (ev,) = p.receive(push([blanks], event_type="event_update"))
    assert isinstance(ev, Update) and ev.invalid == []
    (pos,) = ev.positions
    assert pos.mark_px is None and pos.margin is None and pos.lever is None and pos.u_time == 0


def test_malformed_elements_are_reported_and_valid_ones_kept() -> None:
    p = subscribed()
    bad_pos = dict(LIVE_POSITION, pos="abc")
    no_side = {k: v for k, v in LIVE_POSITION.items() if k != "posSide"}
    wrong_type = dict(LIVE_POSITION, margin=["1"])
    huge = dict(LIVE_POSITION, pos="x" * 5000)
    data = [bad_pos, LIVE_POSITION, no_side, 42, wrong_type, huge]
    (ev,) = p.receive(push(data, event_type="event_update"))
    assert isinstance(ev, Update)
    assert len(ev.positions) == 1
    assert len(ev.invalid) == 5
    reasons = [i.reason for i in ev.invalid]
    assert reasons[0].startswith("pos:") and reasons[1].startswith("posSide:")
    assert reasons[2].startswith("position:") and reasons[3].startswith("margin:")
    assert all(len(i.preview) <= 201 for i in ev.invalid)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("garbage{{", "not JSON"),
        ("", "not JSON"),
        ("[1,2]", "not an object"),
        ('"pong"', "not an object"),
        ("{}", "neither event nor push"),
        ('{"arg":{"channel":"orders","instType":"SWAP"},"data":[]}', "unknown channel"),
        ('{"arg":"positions","data":[]}', "arg is not an object"),
        ('{"arg":{"channel":"positions"},"data":{"pos":"1"}}', "data is not a list"),
        ('{"arg":{"channel":"positions"},"eventType":"weird","data":[]}', "unknown eventType"),
        (
            '{"arg":{"channel":"positions"},"eventType":"snapshot","curPage":"x","data":[]}',
            "bad curPage",
        ),
        ('{"event":"launch-missiles"}', "unknown event"),
        ("NaN", "not an object"),
    ],
)
def test_garbage_frames_are_invalid_not_exceptions(text: str, reason: str) -> None:
    p = subscribed()
    (ev,) = p.receive(text)
    assert isinstance(ev, InvalidFrame)
    assert ev.reason.startswith(reason)
    assert p.state == "subscribed"


def test_long_garbage_preview_is_truncated() -> None:
    p = subscribed()
    (ev,) = p.receive("x" * 100_000)
    assert isinstance(ev, InvalidFrame) and len(ev.preview) <= 201


def test_non_string_input_never_raises() -> None:
    p = subscribed()
    (ev,) = p.receive(b"\x00\x01")  # type: ignore[arg-type]
    assert isinstance(ev, InvalidFrame)


def test_credentials_never_in_repr() -> None:
    creds = Credentials("abcdef-key", "very-secret", "my-passphrase")
    text = f"{creds!r} {creds!s} {creds}"
    for secret in ("abcdef-key", "very-secret", "my-passphrase"):
        assert secret not in text
    assert repr(creds).startswith("Credentials(api_key='ab…'")
    p = PrivateChannelProtocol("A", creds)
    assert "secret" not in repr(p) and "passphrase" not in repr(p)


# -- OKX's captured payloads (tests/fixtures/okx/, sources in its README) -----------------------


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def replay(p: PrivateChannelProtocol, frames: list[Any]) -> list[list[Any]]:
    """Feed captured frames one by one, as the driver does, sending what the driver would send
    (the subscribe request after a login answer)."""
    out = []
    for frame in frames:
        events = p.receive(json.dumps(frame))
        out.append(events)
        if events and isinstance(events[0], LoginOk):
            p.subscribe_frame()
    return out


def test_captured_login_subscribe_and_untyped_first_push_ccxt_21565() -> None:
    """A 2024 cluster: login, ack, ``channel-conn-count``, then a first push of ``data: []``
    with no ``eventType``/``curPage``/``lastPage``: the subscribe snapshot, one empty page."""
    p = PrivateChannelProtocol("Wu666666", CREDS, clock=lambda: 1_711_600_000.0)
    p.login_frame()
    assert replay(p, fixture("ws_log_ccxt_21565.json")) == [
        [LoginOk("02ce4ffc")],
        [Subscribed("02ce4ffc")],
        [Ignored("channel-conn-count")],
        [SnapshotPage([], 1, True, [])],
    ]
    assert p.state == "subscribed"


def test_captured_demo_trading_ack_without_extra_params_ccxt_23704() -> None:
    """Demo trading (``wspap``): the ack's ``arg`` leaves ``extraParams`` out and still counts
    as the ``positions`` subscription."""
    p = PrivateChannelProtocol("Wu666666", CREDS, clock=lambda: 1_726_200_000.0)
    p.login_frame()
    assert replay(p, fixture("ws_log_ccxt_23704.json")) == [
        [LoginOk("eee8fd8f")],
        [Subscribed("eee8fd8f")],
        [Ignored("channel-conn-count")],
    ]
    assert p.state == "subscribed"


def test_captured_isolated_push_nt_first_as_snapshot_then_as_update() -> None:
    """NautilusTrader's ``positions`` push has no ``eventType``: the first after the ack is the
    subscribe snapshot, the same frame later an update; every value parses exactly."""
    p = subscribed()
    text = (FIXTURES / "ws_positions_nt.json").read_text()
    (first,) = p.receive(text)
    assert isinstance(first, SnapshotPage)
    assert (first.cur_page, first.last_page, first.invalid) == (1, True, [])
    (pos,) = first.positions
    assert pos.key == ("Wu666666", "BTC-USDT-SWAP", "long", "isolated")
    assert (pos.inst_type, pos.pos_id, pos.ccy) == ("SWAP", "12345", "BTC")
    assert pos.pos == Decimal("0.5") and pos.margin == Decimal("0.5")
    assert pos.avg_px == Decimal("10000") and pos.mark_px == Decimal("10000")
    assert pos.lever == Decimal("10.0") and pos.mmr == Decimal("0.1")
    assert pos.upl == Decimal("0") and pos.notional_usd == Decimal("5000")
    assert pos.liq_px == Decimal("9000")
    assert pos.c_time == pos.u_time == 1622559930237
    assert pos.p_time == 0  # the capture carries no pTime
    # Its ``ccy`` is BTC (a coin-margined value on a USDT contract): not a kind the reactor
    # adjusts, whatever the margin mode.
    assert not pos.is_managed_kind
    (second,) = p.receive(text)
    assert second == Update([pos], [])


def test_captured_live_cross_push_ccxt_pos_keeps_exact_decimals() -> None:
    """A live push (2023-08-27): cross, net, ``margin`` "" (not applicable), float tails, an
    array ``closeOrderAlgo``, ``uid`` in ``arg`` and ``uTime`` 462 s older than ``pTime``."""
    p = subscribed()
    raw = fixture("ws_positions_push_ccxt_pos.json")
    (page,) = p.receive(json.dumps({**raw, "eventType": "snapshot", "curPage": 1}))
    assert isinstance(page, SnapshotPage) and page.invalid == []
    (pos,) = page.positions
    assert pos.key == ("Wu666666", "XRP-USDT-SWAP", "net", "cross")
    assert pos.pos == Decimal("1") and pos.ccy == "USDT" and pos.lever == Decimal("3")
    assert pos.margin is None  # "" on a cross position
    assert pos.upl == Decimal("0.0240000000000018")  # float tails kept digit for digit
    assert pos.notional_usd == Decimal("52.68620388000001")
    assert pos.liq_px == Decimal("0.3287514731020614")
    assert pos.mmr == Decimal("0.26346") and pos.mark_px == Decimal("0.52692")
    assert pos.avg_px == Decimal("0.52668") and pos.pos_id == "616057041198907393"
    assert (pos.c_time, pos.u_time, pos.p_time) == (1693151444408, 1693151444408, 1693151906023)
    assert pos.p_time - pos.u_time == 461_615  # a quiet position's uTime lags its pushes
    assert not pos.is_managed_kind  # cross: reported, never adjusted


def test_captured_push_with_okx_2025_page_fields() -> None:
    """The same captured record in a typed frame: pages and event updates as OKX now sends."""
    p = subscribed()
    raw = fixture("ws_positions_nt.json")
    (page,) = p.receive(
        json.dumps({**raw, "eventType": "snapshot", "curPage": 2, "lastPage": False})
    )
    assert isinstance(page, SnapshotPage)
    assert (page.cur_page, page.last_page) == (2, False)
    assert [x.inst_id for x in page.positions] == ["BTC-USDT-SWAP"]
    (update,) = p.receive(json.dumps({**raw, "eventType": "event_update"}))
    assert isinstance(update, Update) and update.positions == page.positions


def test_captured_orders_pushes_on_creation_then_fill() -> None:
    """Two ``orders`` pushes of one LINK-USDT-SWAP order (ccxt's July 2025 capture): the
    creation push carries no fill, the next one the fill."""
    p = PrivateChannelProtocol("Wu666666", CREDS, clock=lambda: 1_751_705_800.0, orders=True)
    p.login_frame()
    p.receive('{"event":"login","code":"0","msg":"","connId":"a4d3ae55"}')
    p.subscribe_frame()
    for channel in ("positions", "orders"):
        ack = {"event": "subscribe", "arg": {"channel": channel, "instType": "SWAP"}}
        p.receive(json.dumps({**ack, "connId": "a4d3ae55"}))
    created, filled = fixture("ws_orders_swap_created_then_filled.json")
    (ev1,) = p.receive(json.dumps(created))
    (ev2,) = p.receive(json.dumps(filled))
    assert isinstance(ev1, OrdersUpdate) and isinstance(ev2, OrdersUpdate)
    assert ev1.invalid == [] and ev2.invalid == []
    (o1,), (o2,) = ev1.orders, ev2.orders
    assert o1.ord_id == o2.ord_id == "2657625147249614848"
    assert (o1.inst_id, o1.side, o1.pos_side, o1.td_mode) == (
        "LINK-USDT-SWAP",
        "sell",
        "net",
        "isolated",
    )
    assert o1.reduce_only and o1.sz == Decimal("0.1")
    assert (o1.state, o1.fill_sz, o1.acc_fill_sz, o1.fill_px, o1.trade_id, o1.fill_time) == (
        "live",
        Decimal("0"),
        Decimal("0"),
        None,
        "",
        0,
    )
    assert (o2.state, o2.fill_sz, o2.acc_fill_sz, o2.fill_px, o2.avg_px) == (
        "filled",
        Decimal("0.1"),
        Decimal("0.1"),
        Decimal("13.142"),
        Decimal("13.142"),
    )
    assert (o2.trade_id, o2.fee, o2.fill_time) == (
        "293429690",
        Decimal("-0.00026284"),
        1751705807467,
    )
    assert o1.c_time == o2.c_time == 1751705801423 and o2.u_time == 1751705807467


def test_captured_orders_push_nt_values() -> None:
    p = PrivateChannelProtocol("Wu666666", CREDS, clock=lambda: 1_746_947_317.0, orders=True)
    p.login_frame()
    p.receive('{"event":"login","code":"0","msg":"","connId":"a4d3ae55"}')
    (ev,) = p.receive((FIXTURES / "ws_orders_nt.json").read_text())
    assert isinstance(ev, OrdersUpdate) and ev.invalid == []
    (o,) = ev.orders
    assert (o.account, o.inst_id, o.ord_id, o.cl_ord_id, o.tag) == (
        "Wu666666",
        "BTC-USDT-SWAP",
        "2497956918703120384",
        "001BTCUSDT20250106001",
        "",
    )
    assert (o.side, o.pos_side, o.td_mode, o.reduce_only, o.state) == (
        "buy",
        "long",
        "isolated",
        False,
        "filled",
    )
    assert o.fill_sz == o.acc_fill_sz == o.sz == Decimal("0.03")
    assert o.fill_px == o.avg_px == Decimal("103698.9")
    assert o.fee == Decimal("-0.021776769") and o.trade_id == "1518905529"
    assert (o.c_time, o.fill_time, o.u_time) == (1746947317401, 1746947317402, 1746947317402)
