"""Smaller differences of docs/spec/okx-fidelity.md §11.2.5-§11.2.7 and §11.2.10: REST positions
without ``pTime``, ``channel-conn-count`` on orders, HTTP statuses of 50001/50005 and the 200 form
of
50011, 60031 on a repeated login, and ``posMode`` from the scenario."""

from __future__ import annotations

import json
from typing import Any

import websockets
from okx.websocket.WsUtils import initLoginParams

from reactor.sim.server import Simulator
from tests.sim.helpers import KEY, PASSPHRASE, POSITIONS, SECRET, admin, signed
from tests.sim.test_sim_ws import login, recv

WU = "Wu666666"


def sub(channel: str) -> str:
    return json.dumps({"op": "subscribe", "args": [{"channel": channel, "instType": "SWAP"}]})


SUB_POSITIONS, SUB_ORDERS = sub("positions"), sub("orders")


async def test_rest_positions_have_no_p_time_pushes_do(sim: Simulator) -> None:
    [rec] = (await signed(sim.url, "GET", POSITIONS)).json()["data"]
    assert "pTime" not in rec  # CCXT-STATIC, JAVA-2025, NT: REST records carry none
    async with websockets.connect(sim.ws_url) as ws:
        await login(ws)
        await ws.send(SUB_POSITIONS)
        while True:
            msg = await recv(ws)
            if isinstance(msg, dict) and "data" in msg:
                break
        assert msg["data"][0]["pTime"]


async def test_orders_subscribe_is_followed_by_channel_conn_count(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await login(ws)
        await ws.send(SUB_ORDERS)
        assert (await recv(ws))["event"] == "subscribe"
        count = await recv(ws)  # ORD-CC; DOC-WS: every connection-limited channel
        assert (count["event"], count["channel"], count["connCount"]) == (
            "channel-conn-count",
            "orders",
            "1",
        )


async def test_http_statuses_of_50001_50005_and_the_200_form_of_50011(sim: Simulator) -> None:
    for code, status in (("50001", 503), ("50005", 410), ("50011", 429)):
        fault = {"kind": "rest_error", "account": WU, "path": POSITIONS, "code": code}
        await admin(sim.url, "/sim/faults", fault)
        r = await signed(sim.url, "GET", POSITIONS)
        assert (r.status_code, r.json()["code"]) == (status, code)
    fault = {"kind": "rest_error", "account": WU, "path": POSITIONS, "code": "50011", "status": 200}
    await admin(sim.url, "/sim/faults", fault)
    r = await signed(sim.url, "GET", POSITIONS)
    body = r.json()
    # DOC-ERR: 50011 listed with HTTP 200, "Rate limit reached. Please refer to API ..."
    assert (r.status_code, body["code"]) == (200, "50011")
    assert body["msg"].startswith("Rate limit reached")


async def test_second_login_on_one_connection_gets_60031(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await login(ws)
        await ws.send(initLoginParams(False, KEY, PASSPHRASE, SECRET))
        err = await recv(ws)
        assert (err["event"], err["code"]) == ("error", "60031")
        assert err["msg"] == "The WebSocket endpoint does not allow multiple or repeated logins."
        await ws.send("ping")
        assert await recv(ws) == "pong"  # the connection and its login stay


POSITION = {"instId": "CRO-USDT-SWAP", "pos": "1", "avgPx": "0.1", "lever": "10", "margin": "1"}
SUB_POSITIONS = json.dumps(
    {"op": "subscribe", "args": [{"channel": "positions", "instType": "SWAP"}]}
)
SUB_ORDERS = json.dumps({"op": "subscribe", "args": [{"channel": "orders", "instType": "SWAP"}]})


def scenario(pos_mode: str | None, pos_side: str) -> dict[str, Any]:
    acct: dict[str, Any] = {
        "name": WU,
        "apiKey": KEY,
        "secretKey": SECRET,
        "passphrase": PASSPHRASE,
        "balance": "10",
        "positions": [
            {
                "instId": "CRO-USDT-SWAP",
                "posSide": pos_side,
                "pos": "1",
                "avgPx": "0.1",
                "lever": "10",
                "margin": "1",
            }
        ],
    }
    if pos_mode is not None:
        acct["posMode"] = pos_mode
    return {
        "instruments": [{"instId": "CRO-USDT-SWAP", "ctVal": "10", "markPx": "0.1"}],
        "accounts": [acct],
    }


async def test_account_config_pos_mode_comes_from_the_scenario(sim_factory: Any) -> None:
    for pos_mode, side, expected in (
        (None, "long", "long_short_mode"),
        (None, "net", "net_mode"),  # derived from the positions
        ("net_mode", "long", "net_mode"),  # as set
        ("long_short_mode", "net", "long_short_mode"),
    ):
        sim = await sim_factory(scenario(pos_mode, side), price_walk=False)
        [cfg] = (await signed(sim.url, "GET", "/api/v5/account/config")).json()["data"]
        assert cfg["posMode"] == expected, (pos_mode, side)
