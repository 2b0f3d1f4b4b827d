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
    snap: dict[str, Any] = await recv(ws)
    return snap


async def test_login_subscribe_snapshot_and_push(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        snap = await login_and_subscribe(ws)
        assert snap["eventType"] == "snapshot" and snap["curPage"] == 1 and snap["lastPage"]
        assert snap["arg"] == {"channel": "positions", "instType": "SWAP", "uid": "448800000000001"}
        [p] = snap["data"]
        assert p["margin"] == "20.29" and all(isinstance(v, str) for v in p.values())

        await admin(sim.url, "/sim/mark-price", {"instId": "CRO-USDT-SWAP", "markPx": "0.0960"})
        push = await recv(ws)
        assert push["eventType"] == "event_update" and "curPage" not in push
        assert push["data"][0]["markPx"] == "0.096"
        assert int(push["data"][0]["uTime"]) > int(p["uTime"])

        body = '{"instId":"CRO-USDT-SWAP","posSide":"long","type":"add","amt":"1"}'
        assert (await signed(sim.url, "POST", MARGIN, body)).json()["code"] == "0"
        assert (await recv(ws))["data"][0]["margin"] == "21.29"

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

        await admin(sim.url, "/sim/mark-price", {"instId": "CRO-USDT-SWAP", "markPx": "0.05"})
        liq = await recv(ws)
        assert liq["data"][0]["pos"] == "0"  # liquidated


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
        await ws.send(initLoginParams(False, "k1", "p1", "s1"))
        await recv(ws)
        await ws.send(json.dumps(SUB))
        await recv(ws)
        snap = await recv(ws)
        assert (snap["data"], snap["curPage"], snap["lastPage"]) == ([], 1, True)
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(initLoginParams(False, "k2", "p2", "s2"))
        await recv(ws)
        await ws.send(json.dumps(SUB))
        await recv(ws)
        pages = [await recv(ws), await recv(ws)]
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
            json.dumps(
                {"op": "subscribe", "args": [{"channel": "orders-algo", "instType": "SWAP"}]}
            )
        )
        assert (await recv(ws))["code"] == "60012"
        await ws.send(json.dumps({"op": "fly", "args": []}))
        assert (await recv(ws))["code"] == "60012"


async def test_idle_connection_closed(sim_factory: Any) -> None:
    from tests.conftest import SCENARIOS

    sim = await sim_factory(SCENARIOS / "cro.yaml", idle_timeout=0.3)
    async with websockets.connect(sim.ws_url, ping_interval=None) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4004
        assert closed.value.rcvd.reason == "No data received in 30s"
