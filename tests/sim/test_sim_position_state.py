"""Margin calls against positions OKX holds back, over real sockets: pending close orders
(59302, docs/spec/okx-fidelity.md §7.15), frozen positions (50020/50017, §6), no matching isolated
position (§7.16, a switch per case), and ``lever`` after a margin call (§7.14, a switch)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from reactor.sim.server import Simulator
from tests.conftest import SimFactory
from tests.sim.helpers import MARGIN, POSITIONS, admin, signed

CRO = "CRO-USDT-SWAP"
W = "Wu666666"


def scenario(positions: list[dict[str, Any]] | None = None, **mechanics: Any) -> dict[str, Any]:
    long = {
        "instId": CRO,
        "posSide": "long",
        "pos": "108",
        "avgPx": "0.0905",
        "lever": "10",
        "margin": "20.29",
    }
    return {
        "instruments": [{"instId": CRO, "ctVal": "10", "markPx": "0.0950"}],
        "accounts": [
            {
                "name": W,
                "apiKey": "sim-key-wu666666",
                "secretKey": "sim-secret-wu666666",
                "passphrase": "sim-pass-wu666666",
                "balance": "1000",
                "positions": [long] if positions is None else positions,
            }
        ],
        "mechanics": {"reduce_rule": {"im_basis": "mark", "fee_reserve": False}, **mechanics},
    }


async def margin_call(sim: Simulator, kind: str, amt: str, side: str = "long") -> Any:
    body = json.dumps({"instId": CRO, "posSide": side, "type": kind, "amt": amt})
    r = await signed(sim.url, "POST", MARGIN, body)
    answer = r.json()
    # DOC error table: HTTP 200 for every code here but 51000 (400)
    assert r.status_code == (400 if answer["code"] == "51000" else 200)
    return answer


async def margin_of(sim: Simulator) -> Decimal:
    body = (await signed(sim.url, "GET", POSITIONS)).json()
    [p] = [p for p in body["data"] if p["posSide"] == "long" and p["mgnMode"] == "isolated"]
    return Decimal(p["margin"])


async def state(sim: Simulator, **body: Any) -> Any:
    return await admin(
        sim.url, "/sim/position-state", {"account": W, "instId": CRO, "posSide": "long", **body}
    )


@pytest.mark.parametrize("block_add", [False, True])
async def test_pending_close_orders_refuse_reduces_with_59302(
    sim_factory: SimFactory, block_add: bool
) -> None:
    sim = await sim_factory(scenario(close_orders_block_add=block_add), price_walk=False)
    await state(sim, closeOrders=1)
    refused = await margin_call(sim, "reduce", "1")
    assert refused["code"] == "59302" and refused["data"] == []
    assert refused["msg"].startswith("Margin adjustment failed due to pending close order")
    add = await margin_call(sim, "add", "1")
    # whether adds are refused too is unknown: the switch close_orders_block_add
    assert add["code"] == ("59302" if block_add else "0")
    expected = Decimal("20.29") if block_add else Decimal("21.29")
    assert await margin_of(sim) == expected
    await state(sim, closeOrders=0)  # the desk cancels its TP/SL
    assert (await margin_call(sim, "reduce", "1"))["code"] == "0"


@pytest.mark.parametrize("code", ["50020", "50017"])
async def test_a_frozen_position_refuses_every_margin_call(
    sim_factory: SimFactory, code: str
) -> None:
    sim = await sim_factory(scenario(), price_walk=False)
    await state(sim, frozen=code)
    for kind in ("add", "reduce"):
        answer = await margin_call(sim, kind, "1")
        assert answer["code"] == code and "frozen" in answer["msg"]
    assert await margin_of(sim) == Decimal("20.29")
    await state(sim, frozen="")
    assert (await margin_call(sim, "reduce", "1"))["code"] == "0"


async def test_position_state_on_a_missing_position_is_a_400(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as c:
        r = await c.post(
            "/sim/position-state",
            json={"account": W, "instId": CRO, "posSide": "short", "closeOrders": 1},
        )
        assert r.status_code == 400
        r = await c.post(
            "/sim/position-state",
            json={"account": W, "instId": CRO, "posSide": "long", "frozen": "123"},
        )
        assert r.status_code == 400


CROSS = {"instId": CRO, "posSide": "long", "pos": "10", "avgPx": "0.095", "lever": "5"}


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        ({}, {"missing": "59300", "cross": "51000", "wrong_pos_side": "59300"}),
        (
            {"missing": "51023", "cross": "51043", "wrong_pos_side": "51000"},
            {"missing": "51023", "cross": "51043", "wrong_pos_side": "51000"},
        ),
    ],
)
async def test_margin_call_without_an_isolated_position_answers_the_switched_code(
    sim_factory: SimFactory, errors: dict[str, str], expected: dict[str, str]
) -> None:
    cross = {**CROSS, "mgnMode": "cross"}
    sim = await sim_factory(scenario([cross], position_errors=errors), price_walk=False)
    # only a cross long on CRO
    assert (await margin_call(sim, "add", "1"))["code"] == expected["cross"]
    other = await sim_factory(scenario(position_errors=errors), price_walk=False)
    # an isolated long exists; the call names the short side
    assert (await margin_call(other, "add", "1", side="short"))["code"] == expected[
        "wrong_pos_side"
    ]
    empty = await sim_factory(scenario([], position_errors=errors), price_walk=False)
    answer = await margin_call(empty, "add", "1")
    assert answer["code"] == expected["missing"] and answer["data"] == []


@pytest.mark.parametrize("mode", ["keep", "real"])
async def test_lever_after_a_margin_call(sim_factory: SimFactory, mode: str) -> None:
    sim = await sim_factory(scenario(lever_after_margin_call=mode), price_walk=False)
    answer = await margin_call(sim, "add", "10")
    # DOC-TA: leverage = "Real leverage after the margin adjustment": 102.6 / 30.29
    assert answer["data"][0]["leverage"] == "3.39"
    body = (await signed(sim.url, "GET", POSITIONS)).json()
    [p] = body["data"]
    assert p["lever"] == ("3.39" if mode == "real" else "10")
    # The reduce limit keeps the set leverage either way (im 10.26 at 10x): 20 may go
    assert (await margin_call(sim, "reduce", "20"))["code"] == "0"
