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
    Pong,
    PrivateChannelProtocol,
    ServerError,
    SnapshotPage,
    Subscribed,
    SubscribeFailed,
    Update,
)

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
