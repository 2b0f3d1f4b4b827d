"""The simulator's payloads against real OKX payloads (tests/fixtures/okx/, sources in its
README): no invented fields, the same JSON type for every common field, the same frame order."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from okx.websocket.WsUtils import initLoginParams

from reactor.sim.server import Simulator
from tests.conftest import SCENARIOS
from tests.paths import FIXTURES
from tests.sim.helpers import KEY, MARGIN, PASSPHRASE, POSITIONS, SECRET, admin, signed

SUB = json.dumps({"op": "subscribe", "args": [{"channel": "positions", "instType": "SWAP"}]})
ADD_1 = '{"instId":"CRO-USDT-SWAP","posSide":"long","type":"add","amt":"1"}'


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def real_position_records() -> list[dict[str, Any]]:
    return [
        *fixture("ws_positions_push_ccxt_pos.json")["data"],
        *fixture("ws_positions_nt.json")["data"],
        *fixture("http_get_positions_nt.json")["data"],
        *fixture("http_get_positions_isolated_2025.json")["data"],
    ]


def assert_same_fields_as_the_2025_capture(record: dict[str, Any]) -> None:
    """The live isolated USDT-swap record (2025) is the reference field set: nothing missing,
    nothing invented, same JSON types (``pTime`` is the push time, pushes only)."""
    [real] = fixture("http_get_positions_isolated_2025.json")["data"]
    mine = {k: type(v) for k, v in record.items() if k != "pTime"}
    assert mine == {k: type(v) for k, v in real.items()}


def assert_shape_within(sim: dict[str, Any], real: list[dict[str, Any]]) -> None:
    """Every field the simulator sends exists in a real payload, with the same JSON type."""
    known: dict[str, set[type]] = {}
    for record in real:
        for k, v in record.items():
            known.setdefault(k, set()).add(type(v))
    invented = set(sim) - set(known)
    assert not invented, f"fields OKX never sent: {sorted(invented)}"
    wrong = {k: type(v).__name__ for k, v in sim.items() if type(v) not in known[k]}
    assert not wrong, f"types differ from OKX: {wrong}"


def test_fixture_readme_lists_every_file() -> None:
    readme = (FIXTURES / "README.md").read_text()
    files = sorted(p.name for p in FIXTURES.glob("*.json"))
    assert files and all(f"`{f}`" in readme for f in files)


async def frames_after_subscribe(sim: Simulator, n: int) -> list[Any]:
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(initLoginParams(False, KEY, PASSPHRASE, SECRET))
        out = [json.loads(await asyncio.wait_for(ws.recv(), 5))]
        await ws.send(SUB)
        for _ in range(n - 1):
            out.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        return out


@pytest.mark.parametrize("legacy", [True, False])
async def test_connect_sequence_matches_the_ccxt_21565_log(sim_factory: Any, legacy: bool) -> None:
    """login, subscribe ack, channel-conn-count, first push: same order, same field sets; with
    the legacy switch the push envelope is exactly 2024's (no eventType/curPage/lastPage)."""
    sim = await sim_factory(SCENARIOS / "cro.yaml", legacy_push_fields=legacy)
    ours = await frames_after_subscribe(sim, 4)
    real = fixture("ws_log_ccxt_21565.json")
    for mine, theirs in zip(ours[:3], real[:3], strict=True):
        assert mine["event"] == theirs["event"]
        assert set(mine) == set(theirs)
        assert {k: type(v) for k, v in mine.items()} == {k: type(v) for k, v in theirs.items()}
    push, real_push = ours[3], real[3]
    assert set(push["arg"]) == set(real_push["arg"])
    extra = set(push) - set(real_push)
    assert extra == (set() if legacy else {"eventType", "curPage", "lastPage"})
    assert set(ours[1]) == set(fixture("ws_log_ccxt_23704.json")[1])


async def test_positions_push_records_match_real_pushes(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(initLoginParams(False, KEY, PASSPHRASE, SECRET))
        await ws.recv()
        await ws.send(SUB)
        for _ in range(2):
            await ws.recv()
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert (await signed(sim.url, "POST", MARGIN, ADD_1)).json()["code"] == "0"
        event = json.loads(await asyncio.wait_for(ws.recv(), 5))
    for push in (snapshot, event):
        [record] = push["data"]
        assert_shape_within(record, real_position_records())
        assert_same_fields_as_the_2025_capture(record)
        # The fields the reactor reads are all there.
        needed = {
            "instId",
            "posSide",
            "mgnMode",
            "pos",
            "avgPx",
            "markPx",
            "lever",
            "margin",
            "upl",
            "uTime",
            "cTime",
            "pTime",
            "posId",
        }
        assert needed <= set(record)


async def test_rest_positions_match_real_records(sim: Simulator) -> None:
    body = (await signed(sim.url, "GET", POSITIONS)).json()
    assert set(body) == set(fixture("http_get_positions_nt.json"))
    [record] = body["data"]
    assert_shape_within(record, real_position_records())
    assert_same_fields_as_the_2025_capture(record)


async def test_instruments_have_okx_field_set_and_types(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as c:
        body = (await c.get("/api/v5/public/instruments?instType=SWAP")).json()
    real = fixture("http_get_instruments_swap_nt.json")
    assert set(body) == set(real)
    [mine] = body["data"]
    theirs = real["data"][1]  # ETH-USDT-SWAP: a linear USDT swap like the simulator's
    assert {k: type(v) for k, v in mine.items()} == {k: type(v) for k, v in theirs.items()}


async def test_error_bodies_match_captured_ones(sim: Simulator) -> None:
    r = await signed(sim.url, "GET", "/api/v5/account/unknown")
    real = fixture("http_error_not_found_nt.json")
    assert r.status_code == 404 and r.json() == real
    r = await signed(sim.url, "GET", POSITIONS, key="no-such-key")
    assert r.status_code == 401 and r.json() == fixture("http_error_invalid_access_key_nt.json")
    await admin(
        sim.url,
        "/sim/faults",
        {"kind": "rest_error", "account": "Wu666666", "path": POSITIONS, "code": "50011"},
    )
    r = await signed(sim.url, "GET", POSITIONS)
    assert r.status_code == 429 and r.json() == fixture("http_error_rate_limit_nt.json")


async def test_currencies_have_the_documented_fields_and_types(sim: Simulator) -> None:
    doc = fixture("asset_currencies_doc_fields.json")
    py = {"String": str, "Boolean": bool}
    for record in (await signed(sim.url, "GET", "/api/v5/asset/currencies")).json()["data"]:
        assert set(record) == set(doc)
        assert {k: type(v) for k, v in record.items()} == {k: py[t] for k, t in doc.items()}
