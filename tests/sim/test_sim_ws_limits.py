"""OKX's WebSocket limits (DOC-WS; docs/spec/okx-fidelity.md §7.4) over real sockets: 3 connection
requests per second per IP, 480 login/subscribe/unsubscribe requests per connection per hour, 30
connections per channel per sub-account."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
import websockets
from okx.websocket.WsUtils import initLoginParams
from websockets.exceptions import ConnectionClosed, InvalidStatus

from reactor.sim.server import Simulator
from reactor.sim.ws_limits import ConnectLimiter, OpsWindow, WsLimits
from tests.conftest import SCENARIOS, SimFactory
from tests.sim.helpers import KEY, PASSPHRASE, SECRET

SUB = {"op": "subscribe", "args": [{"channel": "positions", "instType": "SWAP"}]}


def test_connect_limiter_is_a_sliding_second_per_ip() -> None:
    now = [0.0]
    limiter = ConnectLimiter(3, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")  # another IP has its own window
    now[0] = 0.999
    assert not limiter.allow("a")
    now[0] = 1.0  # the first three left the window
    assert limiter.allow("a") and limiter.refused == 2
    assert all(ConnectLimiter(0).allow("a") for _ in range(100))  # 0: off


def test_ops_window_is_an_hour() -> None:
    window = OpsWindow(2)
    assert [window.allow(0.0), window.allow(1.0), window.allow(2.0)] == [True, True, False]
    assert window.allow(3600.0)


async def try_connect(url: str) -> str:
    """ "open", "http 429" or "closed <code>" for one connection attempt."""
    try:
        async with websockets.connect(url, open_timeout=5) as ws:
            try:
                await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                return "open"
            except ConnectionClosed as exc:
                return f"closed {exc.rcvd.code if exc.rcvd else None}"
            return "open"
    except InvalidStatus as exc:
        return f"http {exc.response.status_code}"


@pytest.mark.parametrize(
    ("refusal", "refused"), [("http_429", "http 429"), ("close", "closed 1013")]
)
async def test_an_unpaced_client_is_refused(
    sim_factory: SimFactory, refusal: str, refused: str
) -> None:
    limits = WsLimits(refusal=refusal)  # type: ignore[arg-type]
    sim = await sim_factory(SCENARIOS / "cro.yaml", price_walk=False, ws_limits=limits)
    outcomes = await asyncio.gather(*(try_connect(sim.ws_url) for _ in range(10)))
    # ten at once from one IP: three get in within the second, the rest are refused
    assert outcomes.count("open") <= 6 and outcomes.count(refused) >= 4, outcomes
    assert set(outcomes) <= {"open", refused}
    assert sim.connects.refused == outcomes.count(refused)


async def test_no_limit_without_rate_limits(sim_factory: SimFactory) -> None:
    sim = await sim_factory(SCENARIOS / "cro.yaml", price_walk=False, rate_limits=False)
    outcomes = await asyncio.gather(*(try_connect(sim.ws_url) for _ in range(10)))
    assert outcomes == ["open"] * 10


async def recv_json(ws: Any) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def test_480_requests_per_connection_per_hour(sim_factory: SimFactory) -> None:
    # OKX: 480; 4 here so the test is quick
    sim = await sim_factory(
        SCENARIOS / "cro.yaml", price_walk=False, ws_limits=WsLimits(ops_per_hour=4)
    )
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(initLoginParams(False, KEY, PASSPHRASE, SECRET))
        assert (await recv_json(ws))["event"] == "login"
        unsub = {"op": "unsubscribe", "args": SUB["args"]}
        for n, msg in enumerate((SUB, unsub, {**SUB, "id": "4"})):
            await ws.send(json.dumps(msg))
            first = await recv_json(ws)
            assert first["event"] in ("subscribe", "unsubscribe"), (n, first)
            while True:  # channel-conn-count and the snapshot after a subscribe
                try:
                    await asyncio.wait_for(ws.recv(), 0.3)
                except TimeoutError:
                    break
        await ws.send(json.dumps({**SUB, "id": "5"}))
        over = await recv_json(ws)
    # ccxt's okx table: 60014 "Requests too frequent"; the request is not carried out
    assert (over["event"], over["code"], over["id"]) == ("error", "60014", "5")


async def subscribe(sim: Simulator) -> tuple[Any, list[Any]]:
    ws = await websockets.connect(sim.ws_url)
    await ws.send(initLoginParams(False, KEY, PASSPHRASE, SECRET))
    await recv_json(ws)
    await ws.send(json.dumps(SUB))
    frames = [await recv_json(ws), await recv_json(ws)]
    with contextlib.suppress(TimeoutError):  # the snapshot, unless the subscription ended
        frames.append(json.loads(await asyncio.wait_for(ws.recv(), 1.0)))
    return ws, frames


async def test_connections_per_channel_beyond_the_limit_get_the_error(
    sim_factory: SimFactory,
) -> None:
    # OKX: 30; 2 here
    limits = WsLimits(conns_per_channel=2)
    sim = await sim_factory(SCENARIOS / "cro.yaml", price_walk=False, ws_limits=limits)
    opened = []
    try:
        for expected in ("1", "2"):
            ws, frames = await subscribe(sim)
            opened.append(ws)
            assert frames[1] == {
                "event": "channel-conn-count",
                "channel": "positions",
                "connCount": expected,
                "connId": frames[0]["connId"],
            }
            assert frames[2]["eventType"] == "snapshot"
            await asyncio.sleep(0.4)  # OKX: 3 new connections per second
        ws, frames = await subscribe(sim)
        opened.append(ws)
        # DOC-WS: the usual acknowledgement, then the error; the subscription is terminated
        assert frames[0]["event"] == "subscribe"
        assert frames[1] == {
            "event": "channel-conn-count-error",
            "channel": "positions",
            "connCount": "2",
            "connId": frames[0]["connId"],
        }
        assert len(frames) == 2  # no snapshot
        assert sim.hub.connection_count("Wu666666", "positions") == 2
    finally:
        for ws in opened:
            await ws.close()
