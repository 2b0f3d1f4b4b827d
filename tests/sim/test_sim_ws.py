"""The private WebSocket over a real socket: login, subscribe, snapshot, pushes, idle close."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import websockets
from okx.websocket.WsUtils import initLoginParams
from websockets.asyncio.client import ClientConnection

from reactor.okx.signing import ws_login_sign
from reactor.sim.server import Simulator
from tests.sim.helpers import KEY, MARGIN, PASSPHRASE, SECRET, admin, signed

SUB = {"op": "subscribe", "args": [{"channel": "positions", "instType": "SWAP"}]}


async def recv(ws: ClientConnection) -> Any:
    text = await asyncio.wait_for(ws.recv(), 5)
    return text if text == "pong" else json.loads(text)


async def login_and_subscribe(ws: ClientConnection) -> dict[str, Any]:
    await ws.send(initLoginParams(False, KEY, PASSPHRASE, SECRET))
    assert (await recv(ws))["event"] == "login"
    await ws.send(json.dumps(SUB))
    ack = await recv(ws)
    assert ack["event"] == "subscribe" and ack["arg"] == SUB["args"][0]
    count = await recv(ws)
    assert count["event"] == "channel-conn-count"
    snap: dict[str, Any] = await recv(ws)
    return snap


def sub(interval: str | None = None, **extra: str) -> str:
    arg = {"channel": "positions", "instType": "SWAP", **extra}
    if interval is not None:
        arg["extraParams"] = json.dumps({"updateInterval": interval})
    return json.dumps({"op": "subscribe", "args": [arg]})


async def login(ws: ClientConnection, key: str = KEY, phrase: str = PASSPHRASE,
                secret: str = SECRET) -> None:  # fmt: skip
    await ws.send(initLoginParams(False, key, phrase, secret))
    assert (await recv(ws))["event"] == "login"


async def subscribed(ws: ClientConnection, frame: str) -> dict[str, Any]:
    """Send a subscribe; skip the ack and channel-conn-count; return the first snapshot page."""
    await ws.send(frame)
    assert (await recv(ws))["event"] == "subscribe"
    assert (await recv(ws))["event"] == "channel-conn-count"
    first: dict[str, Any] = await recv(ws)
    return first


async def next_push(ws: ClientConnection, event: str) -> dict[str, Any]:
    """The next push with ``eventType`` ``event``, skipping the other kind."""
    while True:
        msg = await recv(ws)
        if isinstance(msg, dict) and msg.get("eventType") == event:
            return msg


ADD_1 = '{"instId":"CRO-USDT-SWAP","posSide":"long","type":"add","amt":"1"}'


async def test_login_subscribe_snapshot_and_push(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        snap = await login_and_subscribe(ws)
        assert snap["eventType"] == "snapshot" and snap["curPage"] == 1 and snap["lastPage"]
        assert snap["arg"] == {"channel": "positions", "instType": "SWAP", "uid": "448800000000001"}
        [p] = snap["data"]
        assert p["margin"] == "20.29" and p["closeOrderAlgo"] == []
        assert all(isinstance(v, str) for k, v in p.items() if k != "closeOrderAlgo")
        assert p["pTime"]

        # A mark move is silent (DOC-POS, docs/spec/okx-fidelity.md §1.1): the next frame is the
        # margin call's event push, which already shows the new mark.
        await admin(sim.url, "/sim/mark-price", {"instId": "CRO-USDT-SWAP", "markPx": "0.0960"})
        assert (await signed(sim.url, "POST", MARGIN, ADD_1)).json()["code"] == "0"
        push = await recv(ws)
        assert push["eventType"] == "event_update" and "curPage" not in push
        [q] = push["data"]
        assert (q["margin"], q["markPx"]) == ("21.29", "0.096")
        assert int(q["uTime"]) > int(p["uTime"]) and int(q["pTime"]) >= int(q["uTime"])

        fill = {
            "account": "Wu666666",
            "instId": "CRO-USDT-SWAP",
            "posSide": "long",
            "pos": "200",
            "avgPx": "0.093",
            "lever": "10",
            "margin": "30",
        }
        await admin(sim.url, "/sim/positions", fill)
        assert (await recv(ws))["data"][0]["pos"] == "200"

        # A liquidation is a position event: pushed, pos "0".
        await admin(sim.url, "/sim/mark-price", {"instId": "CRO-USDT-SWAP", "markPx": "0.05"})
        liq = await recv(ws)
        assert liq["eventType"] == "event_update" and liq["data"][0]["pos"] == "0"


async def test_regular_snapshot_shows_mark_with_unchanged_utime(sim_factory: Any) -> None:
    """Regular snapshots carry the silent mark move; ``uTime`` stays (CCXT-POS), ``pTime`` is
    the push time."""
    from tests.conftest import SCENARIOS

    sim = await sim_factory(SCENARIOS / "cro.yaml", time_scale=0.05)  # 2000 ms -> 100 ms
    async with websockets.connect(sim.ws_url) as ws:
        await login(ws)
        [p] = (await subscribed(ws, sub("2000")))["data"]
        await admin(sim.url, "/sim/mark-price", {"instId": "CRO-USDT-SWAP", "markPx": "0.0960"})
        while True:
            snap = await next_push(ws, "snapshot")
            [q] = snap["data"]
            if q["markPx"] == "0.096":
                break
        assert (snap["curPage"], snap["lastPage"]) == (1, True)
        assert q["uTime"] == p["uTime"] and q["upl"] != p["upl"]
        assert int(q["pTime"]) > int(p["uTime"])


@pytest.mark.parametrize("interval", ["2000", "3000", "4000", None, "1000", "junk"])
async def test_regular_snapshots_keep_coming(sim_factory: Any, interval: str | None) -> None:
    """Every interval but "0" sends regular snapshots (the spacing is unit-tested with a fake
    clock in test_ws_api.py)."""
    from tests.conftest import SCENARIOS

    sim = await sim_factory(SCENARIOS / "cro.yaml", time_scale=0.01)
    async with websockets.connect(sim.ws_url) as ws:
        await login(ws)
        await subscribed(ws, sub(interval))
        for _ in range(2):
            assert (await next_push(ws, "snapshot"))["data"][0]["pos"] == "108"


async def test_update_interval_zero_sends_events_only(sim_factory: Any) -> None:
    from tests.conftest import SCENARIOS

    sim = await sim_factory(SCENARIOS / "cro.yaml", time_scale=0.001)  # default: 5 ms
    async with websockets.connect(sim.ws_url) as ws:
        await login(ws)
        first = await subscribed(ws, sub("0"))
        assert first["eventType"] == "snapshot"  # the subscribe snapshot still comes (#23704)
        await asyncio.sleep(0.2)  # 40 default intervals
        assert (await signed(sim.url, "POST", MARGIN, ADD_1)).json()["code"] == "0"
        assert (await recv(ws))["eventType"] == "event_update"  # no snapshot came before it
        await ws.send("ping")
        assert await recv(ws) == "pong"


async def test_events_in_one_window_are_one_push(sim_factory: Any) -> None:
    """DOC-POS: event pushes are aggregated over ~50 ms; the latest record per position."""
    from tests.conftest import SCENARIOS

    sim = await sim_factory(SCENARIOS / "cro.yaml", time_scale=10)  # a 0.5 s window
    async with websockets.connect(sim.ws_url) as ws:
        await login(ws)
        await subscribed(ws, sub("0"))
        for _ in range(3):
            assert (await signed(sim.url, "POST", MARGIN, ADD_1)).json()["code"] == "0"
        push = await recv(ws)
        assert push["eventType"] == "event_update"
        assert [p["margin"] for p in push["data"]] == ["23.29"]


async def test_snapshot_pages_follow_the_page_size(sim_factory: Any) -> None:
    sim = await sim_factory(many_positions_scenario(5), page_size=2, time_scale=0.02)
    async with websockets.connect(sim.ws_url) as ws:
        await login(ws, "k2", "p2", "s2")
        pages = [await subscribed(ws, sub("2000")), await recv(ws), await recv(ws)]
        shape = [(len(p["data"]), p["curPage"], p["lastPage"]) for p in pages]
        assert shape == [(2, 1, False), (2, 2, False), (2, 3, True)]
        regular = [await next_push(ws, "snapshot") for _ in range(3)]
        assert [(p["curPage"], p["lastPage"]) for p in regular] == [
            (1, False),
            (2, False),
            (3, True),
        ]
        ids = {(q["instId"], q["posSide"]) for p in regular for q in p["data"]}
        assert len(ids) == 6


async def test_closed_positions_leave_the_snapshot(sim_factory: Any) -> None:
    from tests.conftest import SCENARIOS

    sim = await sim_factory(SCENARIOS / "cro.yaml", time_scale=0.02)
    close = {"account": "Wu666666", "instId": "CRO-USDT-SWAP", "posSide": "long", "pos": "0"}
    async with websockets.connect(sim.ws_url) as ws:
        await login(ws)
        await subscribed(ws, sub("2000"))
        await admin(sim.url, "/sim/positions", close)
        assert (await next_push(ws, "event_update"))["data"][0]["pos"] == "0"
        snap = await next_push(ws, "snapshot")
        assert (snap["data"], snap["curPage"], snap["lastPage"]) == ([], 1, True)


async def test_legacy_push_fields_switch(sim_factory: Any) -> None:
    """Older OKX clusters sent no eventType/curPage/lastPage (CCXT-21565, 2024-03-28)."""
    from tests.conftest import SCENARIOS

    sim = await sim_factory(SCENARIOS / "cro.yaml", legacy_push_fields=True, time_scale=0.02)
    async with websockets.connect(sim.ws_url) as ws:
        await login(ws)
        first = await subscribed(ws, sub("2000"))
        assert set(first) == {"arg", "data"} and first["data"][0]["pos"] == "108"
        assert (await signed(sim.url, "POST", MARGIN, ADD_1)).json()["code"] == "0"
        while True:
            msg = await recv(ws)
            assert set(msg) == {"arg", "data"}
            if msg["data"][0]["margin"] == "21.29":
                break


async def test_ack_echoes_id_and_arg_and_counts_connections(sim: Simulator) -> None:
    async with (
        websockets.connect(sim.ws_url) as one,
        websockets.connect(sim.ws_url) as two,
    ):
        await login(one)
        await login(two)
        await subscribed(one, sub())
        frame = json.dumps(
            {
                "id": "1512",
                "op": "subscribe",
                "args": [
                    {
                        "channel": "positions",
                        "instType": "SWAP",
                        "extraParams": '{"updateInterval": "0"}',
                    }
                ],
            }
        )
        await two.send(frame)
        ack = await recv(two)
        # DOC-POS: the ack echoes id and arg (without extraParams, ccxt #23704) and connId.
        assert ack["id"] == "1512" and ack["event"] == "subscribe" and ack["connId"]
        assert ack["arg"] == {"channel": "positions", "instType": "SWAP"}
        count = await recv(two)
        assert count == {
            "event": "channel-conn-count",
            "channel": "positions",
            "connCount": "2",
            "connId": ack["connId"],
        }
        assert (await recv(two))["eventType"] == "snapshot"
        await two.send(json.dumps({"id": "77", "op": "subscribe", "args": [{"channel": "x"}]}))
        err = await recv(two)
        assert (err["id"], err["event"], err["code"]) == ("77", "error", "60012")


async def test_empty_book_snapshot_and_paging(sim_factory: Any) -> None:
    positions = [
        {
            "instId": "CRO-USDT-SWAP",
            "posSide": "net",
            "pos": "1",
            "avgPx": "0.09",
            "lever": "3",
            "margin": "5",
        }
    ]
    many = [{"instId": f"I{n}-USDT-SWAP", "ctVal": "1", "markPx": "1"} for n in range(150)]
    scenario = {
        "instruments": [{"instId": "CRO-USDT-SWAP", "ctVal": "10", "markPx": "0.095"}, *many],
        "accounts": [
            {
                "name": "empty",
                "apiKey": "k1",
                "secretKey": "s1",
                "passphrase": "p1",
                "balance": "0",
            },
            {
                "name": "big",
                "apiKey": "k2",
                "secretKey": "s2",
                "passphrase": "p2",
                "balance": "0",
                "positions": positions
                + [
                    {
                        "instId": f"I{n}-USDT-SWAP",
                        "posSide": "long",
                        "pos": "1",
                        "avgPx": "1",
                        "lever": "2",
                        "margin": "1",
                    }
                    for n in range(150)
                ],
            },
        ],
    }
    sim = await sim_factory(scenario)
    async with websockets.connect(sim.ws_url) as ws:
        await login(ws, "k1", "p1", "s1")
        snap = await subscribed(ws, json.dumps(SUB))
        assert (snap["data"], snap["curPage"], snap["lastPage"]) == ([], 1, True)
    async with websockets.connect(sim.ws_url) as ws:
        await login(ws, "k2", "p2", "s2")
        pages = [await subscribed(ws, json.dumps(SUB)), await recv(ws)]
        assert [(len(p["data"]), p["curPage"], p["lastPage"]) for p in pages] == [
            (100, 1, False),
            (51, 2, True),
        ]


def login_frame(**override: Any) -> str:
    ts = str(int(time.time()))
    arg = {
        "apiKey": KEY,
        "passphrase": PASSPHRASE,
        "timestamp": ts,
        "sign": ws_login_sign(SECRET, ts),
    }
    arg.update(override)
    return json.dumps({"op": "login", "args": [arg]})


# Frames are built when the test runs, not at collection: a long suite must not expire them.
@pytest.mark.parametrize(
    ("make_frame", "code"),
    [
        (lambda: login_frame(apiKey="nobody"), "60005"),
        (lambda: login_frame(sign="bm9wZQ=="), "60007"),
        (lambda: login_frame(passphrase="wrong"), "60024"),
        (lambda: login_frame(timestamp=str(int(time.time()) - 120)), "60006"),
        (lambda: json.dumps({"op": "login", "args": [{"apiKey": KEY}]}), "60009"),
    ],
)
async def test_login_failures(sim: Simulator, make_frame: Callable[[], str], code: str) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(make_frame())
        err = await recv(ws)
        assert err["event"] == "error" and err["code"] == code and err["connId"]
        # DOC-WS close codes: 4001 "Login Failed" (docs/spec/okx-fidelity.md §7.7).
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "Login Failed")


async def test_login_failure_without_close_switch(sim_factory: Any) -> None:
    from tests.conftest import SCENARIOS

    sim = await sim_factory(SCENARIOS / "cro.yaml", close_on_login_failure=False)
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(login_frame(passphrase="wrong"))
        assert (await recv(ws))["code"] == "60024"
        await ws.send(login_frame())
        assert (await recv(ws))["event"] == "login"


async def test_string_timestamp_login_and_errors_before_login(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(json.dumps(SUB))
        assert (await recv(ws))["code"] == "60011"
        await ws.send("ping")
        assert await recv(ws) == "pong"
        await ws.send("{bad json")
        assert (await recv(ws))["code"] == "60012"
        await ws.send(login_frame())
        assert (await recv(ws))["code"] == "0"
        await ws.send(
            json.dumps({"op": "subscribe", "args": [{"channel": "nope", "instType": "SWAP"}]})
        )
        assert (await recv(ws))["code"] == "60012"
        await ws.send(json.dumps({"op": "fly", "args": []}))
        assert (await recv(ws))["code"] == "60012"


async def closed_with(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_no_subscription_within_the_idle_time_closes(sim_factory: Any) -> None:
    """DOC-WS: "The connection will break automatically if the subscription is not
    established ... for more than 30 seconds" (here 0.3 s)."""
    from tests.conftest import SCENARIOS

    sim = await sim_factory(SCENARIOS / "cro.yaml", idle_timeout=0.3)
    async with websockets.connect(sim.ws_url, ping_interval=None) as ws:
        await login(ws)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            for _ in range(50):  # traffic alone does not keep an unsubscribed connection
                await ws.send("ping")
                assert await recv(ws) == "pong"
                await asyncio.sleep(0.05)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            4004,
            "No data received in 30s",
        )


async def test_no_frame_either_way_closes(sim_factory: Any) -> None:
    from tests.conftest import SCENARIOS

    sim = await sim_factory(SCENARIOS / "cro.yaml", idle_timeout=0.3)
    async with websockets.connect(sim.ws_url, ping_interval=None) as ws:
        await login(ws)
        await subscribed(ws, sub("0"))  # events only, and no events come
        assert await closed_with(ws) == (4004, "No data received in 30s")


async def test_pushes_keep_a_quiet_client_open(sim_factory: Any) -> None:
    """docs/spec/okx-fidelity.md §2: OKX closes only when no data went either way; a client that
    never sends while regular snapshots flow stays connected (the old simulator dropped it)."""
    from tests.conftest import SCENARIOS

    sim = await sim_factory(SCENARIOS / "cro.yaml", idle_timeout=0.3, time_scale=0.025)
    async with websockets.connect(sim.ws_url, ping_interval=None) as ws:
        await login(ws)
        await subscribed(ws, sub("2000"))  # a snapshot every 50 ms
        deadline = asyncio.get_running_loop().time() + 1.0  # > 3 idle times, client silent
        while asyncio.get_running_loop().time() < deadline:
            assert (await recv(ws))["eventType"] == "snapshot"
        await ws.send("ping")
        while (await recv(ws)) != "pong":
            pass


async def test_quiet_client_fault_closes_a_client_that_sends_nothing(sim_factory: Any) -> None:
    """The stricter reading stays testable: close when the client sent nothing for N s."""
    from tests.conftest import SCENARIOS

    sim = await sim_factory(SCENARIOS / "cro.yaml", time_scale=0.025)
    fault = {"kind": "ws_quiet_close", "account": "Wu666666", "seconds": 0.3}
    await admin(sim.url, "/sim/faults", fault)
    async with websockets.connect(sim.ws_url, ping_interval=None) as ws:
        await login(ws)
        await subscribed(ws, sub("2000"))
        assert await closed_with(ws) == (4004, "No data received in 30s")
    await admin(sim.url, "/sim/faults", {**fault, "seconds": None})
    async with websockets.connect(sim.ws_url, ping_interval=None) as ws:
        await login(ws)
        await subscribed(ws, sub("2000"))
        for _ in range(20):  # 0.5 s of snapshots without sending
            await next_push(ws, "snapshot")


def many_positions_scenario(n: int) -> dict[str, Any]:
    instruments = [{"instId": f"I{k}-USDT-SWAP", "ctVal": "1", "markPx": "1"} for k in range(n)]
    positions = [
        {
            "instId": f"I{k}-USDT-SWAP",
            "posSide": "long",
            "pos": "1",
            "avgPx": "1",
            "lever": "2",
            "margin": "1",
        }
        for k in range(n)
    ]
    positions.append(
        {
            "instId": "I0-USDT-SWAP",
            "posSide": "short",
            "pos": "1",
            "avgPx": "1",
            "lever": "2",
            "margin": "1",
        }
    )
    return {
        "instruments": instruments,
        "accounts": [
            {
                "name": "big",
                "apiKey": "k2",
                "secretKey": "s2",
                "passphrase": "p2",
                "balance": "10",
                "positions": positions,
            }
        ],
    }
