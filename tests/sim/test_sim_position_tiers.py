"""``GET /api/v5/public/position-tiers`` serves the rates the simulator liquidates with
(docs/spec/okx-fidelity.md §11.2.8), and the demo book's rates are the live ones."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import httpx

from reactor.sim.scenario import load_scenario
from tests.conftest import SCENARIOS

PATH = "/api/v5/public/position-tiers"
TIERS = [
    {"maxSz": "100", "mmr": "0.005", "maxLever": "50"},
    {"maxSz": "500", "mmr": "0.01", "maxLever": "20"},
    {"maxSz": "2000", "mmr": "0.02", "maxLever": "10"},
]


def scenario() -> dict[str, Any]:
    return {
        "instruments": [
            {"instId": "XRP-USDT-SWAP", "ctVal": "100", "markPx": "0.52", "mmrRate": "0.005"},
            {"instId": "ETH-USDT-SWAP", "ctVal": "0.1", "markPx": "3200", "mmrRate": "0.004"},
        ],
        "accounts": [
            {"name": "A", "apiKey": "k", "secretKey": "s", "passphrase": "p", "balance": "1"}
        ],
        "mechanics": {"tiers": {"XRP-USDT-SWAP": TIERS}},
    }


async def get(url: str, query: str) -> Any:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{url}{PATH}?{query}")).json()


async def test_tiers_and_flat_rates_are_served(sim_factory: Any) -> None:
    sim = await sim_factory(scenario(), price_walk=False)
    body = await get(sim.url, "instType=SWAP&tdMode=isolated&instFamily=XRP-USDT,ETH-USDT")
    assert body["code"] == "0"
    rows = [(r["instFamily"], r["tier"], r["minSz"], r["maxSz"], r["mmr"], r["maxLever"], r["imr"])
            for r in body["data"]]  # fmt: skip
    assert rows == [
        ("XRP-USDT", "1", "0", "100", "0.005", "50", "0.02"),
        ("XRP-USDT", "2", "100", "500", "0.01", "20", "0.05"),
        ("XRP-USDT", "3", "500", "2000", "0.02", "10", "0.1"),
        ("ETH-USDT", "1", "0", "100000000", "0.004", "75", "0.0133333333"),
    ]
    one = await get(sim.url, "instType=SWAP&tdMode=cross&uly=XRP-USDT&tier=2")
    assert [r["mmr"] for r in one["data"]] == ["0.01"]
    assert (await get(sim.url, "instType=MARGIN&tdMode=cross&instFamily=XRP-USDT"))["data"] == []


async def test_parameter_errors(sim_factory: Any) -> None:
    sim = await sim_factory(scenario(), price_walk=False)
    assert (await get(sim.url, "tdMode=isolated&instFamily=XRP-USDT"))["code"] == "50014"
    assert (await get(sim.url, "instType=SWAP&instFamily=XRP-USDT"))["code"] == "50014"
    assert (await get(sim.url, "instType=SWAP&tdMode=isolated"))["code"] == "50014"
    assert (await get(sim.url, "instType=SWAP&tdMode=spot&instFamily=XRP-USDT"))["code"] == "51000"
    six = ",".join(f"F{i}-USDT" for i in range(6))
    assert (await get(sim.url, f"instType=SWAP&tdMode=isolated&instFamily={six}"))[
        "code"
    ] == "51000"


def test_demo_rates_are_the_live_tier_one_rates() -> None:
    rates = {i.instId: i.mmrRate for i in load_scenario(SCENARIOS / "demo.yaml").instruments}
    assert rates["XRP-USDT-SWAP"] == D("0.005")  # CCXT-POS
    assert rates["ETH-USDT-SWAP"] == D("0.004")  # JAVA-2025
    assert all(r >= D("0.004") for r in rates.values())
