"""Service upgrades (docs/spec/okx-fidelity.md §11.2.4): the 64008 notice to every connection of
the node, the close about ``close_after_s`` later, and an abrupt close without a close frame
(EOF)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from reactor.sim.server import Simulator
from reactor.sim.ws_api import Close, WsHub
from tests.sim.helpers import admin
from tests.sim.test_sim_ws import login_and_subscribe, recv

WU = "Wu666666"


async def closed(ws: ClientConnection, within: float = 5) -> websockets.ConnectionClosed:
    """Read until the connection ends; the exception says whether a close frame came."""
    try:
        async with asyncio.timeout(within):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed as exc:
        return exc
    raise AssertionError("unreachable")


async def notice(ws: ClientConnection) -> dict[str, Any]:
    while True:
        msg = await recv(ws)
        if isinstance(msg, dict) and msg.get("event") == "notice":
            return msg


async def test_fleet_wide_notice_then_eof_after_close_after_s(sim: Simulator) -> None:
    async with (
        websockets.connect(sim.ws_url) as a,
        websockets.connect(sim.ws_url) as b,
        websockets.connect(sim.ws_url) as anon,  # not logged in: on the node all the same
    ):
        await login_and_subscribe(a)
        await login_and_subscribe(b)
        res = await admin(
            sim.url, "/sim/faults", {"kind": "ws_notice", "account": "*", "close_after_s": 0.4}
        )
        assert res["connections"] == 3
        sent = time.monotonic()
        for ws in (a, b, anon):
            msg = await notice(ws)
            assert (msg["event"], msg["code"]) == ("notice", "64008")
        for ws in (a, b, anon):
            exc = await closed(ws)
            assert exc.rcvd is None  # no close frame: 1006, as seen live (ISS-TG90)
        assert time.monotonic() - sent >= 0.35


async def test_notice_close_with_a_frame(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await login_and_subscribe(ws)
        await admin(
            sim.url,
            "/sim/faults",
            {"kind": "ws_notice", "account": WU, "close_after_s": 0.1, "close": "frame"},
        )
        await notice(ws)
        exc = await closed(ws)
        assert exc.rcvd is not None and exc.rcvd.code == 1001


async def test_notice_without_a_close(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await login_and_subscribe(ws)
        await admin(
            sim.url, "/sim/faults", {"kind": "ws_notice", "account": WU, "close_after_s": None}
        )
        await notice(ws)
        await ws.send("ping")
        assert await recv(ws) == "pong"


async def test_drop_ws_eof_cuts_without_a_close_frame(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await login_and_subscribe(ws)
        res = await admin(sim.url, "/sim/faults", {"kind": "drop_ws", "account": "*", "eof": True})
        assert res["connections"] == 1
        exc = await closed(ws)
        assert exc.rcvd is None


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "ws_notice", "account": WU, "close_after_s": -1},
        {"kind": "ws_notice", "account": WU, "close": "bang"},
        {"kind": "drop_ws", "account": WU, "eof": "yes"},
        {"kind": "rest_error", "account": "*", "path": "/api/v5/account/positions"},
    ],
)
async def test_bad_upgrade_faults(sim: Simulator, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as c:
        r = await c.post("/sim/faults", json=body)
    assert r.status_code == 400


def test_scheduled_close_is_sans_io(sim: Simulator) -> None:
    hub: WsHub = sim.hub
    session = hub.open("c1")
    session.schedule_close(at=hub.clock() + 10, abrupt=True)
    due = session.due()
    assert due is not None and due <= hub.clock() + 10
    assert session.poll(hub.clock()) == []
    [out] = session.poll(hub.clock() + 10)
    assert isinstance(out, Close) and out.abrupt and out.code == 1006
    hub.discard(session)
