"""One test per admin fault kind, plus the price walk."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets

from reactor.sim.server import Simulator
from tests.conftest import SCENARIOS
from tests.sim.helpers import MARGIN, POSITIONS, admin, signed
from tests.sim.test_sim_ws import login_and_subscribe, recv

WU = "Wu666666"


async def test_drop_ws(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await login_and_subscribe(ws)
        res = await admin(sim.url, "/sim/faults", {"kind": "drop_ws", "account": WU})
        assert res["connections"] == 1
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)


async def test_rest_error(sim: Simulator) -> None:
    fault = {"kind": "rest_error", "account": WU, "path": POSITIONS, "code": "50013", "count": 2}
    await admin(sim.url, "/sim/faults", fault)
    answers = [await signed(sim.url, "GET", POSITIONS + "?instType=SWAP") for _ in range(3)]
    assert [(r.status_code, r.json()["code"]) for r in answers] == [
        (429, "50013"),
        (429, "50013"),
        (200, "0"),
    ]
    log = await admin(sim.url, "/sim/requests")
    assert [e["code"] for e in log] == ["50013", "50013", "0"]


async def test_rest_delay_applies_at_once_answers_later(sim: Simulator) -> None:
    fault = {"kind": "rest_delay", "account": WU, "path": MARGIN, "delay_s": 0.3, "count": 1}
    await admin(sim.url, "/sim/faults", fault)
    body = '{"instId":"CRO-USDT-SWAP","posSide":"long","type":"add","amt":"1"}'
    call = asyncio.create_task(signed(sim.url, "POST", MARGIN, body))
    await asyncio.sleep(0.1)
    state = await admin(sim.url, "/sim/state")
    assert state["accounts"][0]["positions"][0]["margin"] == "21.29"  # applied already
    assert not call.done()
    assert (await call).json()["code"] == "0"


async def test_rest_delay_never_answered(sim: Simulator) -> None:
    fault = {"kind": "rest_delay", "account": WU, "path": MARGIN, "delay_s": None}
    await admin(sim.url, "/sim/faults", fault)
    body = '{"instId":"CRO-USDT-SWAP","posSide":"long","type":"add","amt":"2"}'
    with pytest.raises(httpx.ReadTimeout):
        await signed(sim.url, "POST", MARGIN, body, timeout=0.5)
    state = await admin(sim.url, "/sim/state")
    assert state["accounts"][0]["positions"][0]["margin"] == "22.29"


async def test_raw_frame(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await login_and_subscribe(ws)
        await admin(
            sim.url, "/sim/faults", {"kind": "raw_frame", "account": WU, "frame": '{"arg": garbage'}
        )
        assert await asyncio.wait_for(ws.recv(), 5) == '{"arg": garbage'


async def test_ws_notice(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await login_and_subscribe(ws)
        await admin(sim.url, "/sim/faults", {"kind": "ws_notice", "account": WU})
        notice = await recv(ws)
        assert (notice["event"], notice["code"]) == ("notice", "64008")


async def test_ws_silent(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await login_and_subscribe(ws)
        await admin(sim.url, "/sim/faults", {"kind": "ws_silent", "account": WU, "seconds": 0.4})
        await ws.send("ping")
        body = '{"instId":"CRO-USDT-SWAP","posSide":"long","type":"add","amt":"1"}'
        assert (await signed(sim.url, "POST", MARGIN, body)).json()["code"] == "0"  # an event
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.2)
        await asyncio.sleep(0.3)
        await ws.send("ping")
        assert await recv(ws) == "pong"


async def test_bad_admin_requests(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as c:
        r = await c.post("/sim/faults", json={"kind": "meteor", "account": WU})
        assert r.status_code == 400 and "meteor" in r.json()["error"]
        r = await c.post("/sim/mark-price", json={"instId": "NOPE", "markPx": "1"})
        assert r.status_code == 400


async def test_price_walk_moves_and_pushes(sim_factory: Any) -> None:
    import yaml

    raw = yaml.safe_load((SCENARIOS / "cro.yaml").read_text())
    raw["price_walk"] = {"interval_s": 0.05, "max_step_pct": "0.5", "seed": 7}
    sim = await sim_factory(raw, time_scale=0.02)  # regular snapshots every 100 ms
    async with websockets.connect(sim.ws_url) as ws:
        await login_and_subscribe(ws)
        # The walk is silent (no event push); the regular snapshots show the moving mark.
        while True:
            push = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert push["eventType"] == "snapshot"
            if push["data"][0]["markPx"] != "0.095":
                break
