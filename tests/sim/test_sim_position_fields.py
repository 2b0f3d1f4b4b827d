"""The position record's values beyond what the reactor reads (docs/spec/okx-fidelity.md §7.13,
§3.1), over real sockets: fees and PnL accumulated from fills, ``availPos`` "" in net mode,
``notionalUsd`` in USD, ``bePx``, ``closeOrderAlgo`` as an array of OKX's entries."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from reactor.okx.endpoints import BILLS, ORDER
from reactor.sim.position_record import breakeven_px
from reactor.sim.server import Simulator
from tests.conftest import SCENARIOS, SimFactory
from tests.sim.helpers import POSITIONS, admin, signed

CRO = "CRO-USDT-SWAP"


async def place(sim: Simulator, **body: Any) -> None:
    payload = {"instId": CRO, "tdMode": "isolated", "ordType": "market", **body}
    r = await signed(sim.url, "POST", ORDER, json.dumps(payload))
    assert r.json()["code"] == "0", r.json()


async def rest_positions(sim: Simulator) -> dict[str, dict[str, Any]]:
    body = (await signed(sim.url, "GET", POSITIONS)).json()
    return {p["posSide"]: p for p in body["data"]}


def scenario(**mechanics: Any) -> dict[str, Any]:
    return {
        "instruments": [{"instId": CRO, "ctVal": "10", "markPx": "0.0950"}],
        "accounts": [
            {
                "name": "Wu666666",
                "apiKey": "sim-key-wu666666",
                "secretKey": "sim-secret-wu666666",
                "passphrase": "sim-pass-wu666666",
                "balance": "1000",
                "positions": [
                    {
                        "instId": CRO,
                        "posSide": "long",
                        "pos": "108",
                        "avgPx": "0.0905",
                        "lever": "10",
                        "margin": "20.29",
                    }
                ],
            }
        ],
        "mechanics": mechanics,
    }


def test_breakeven_reproduces_the_captured_record() -> None:
    # tests/fixtures/okx/http_get_positions_isolated_2025.json: 1 ETH-USDT-SWAP contract
    # (ctVal 0.1) long at 3011, entry fee -0.15055 -> bePx 3014.0125062531265
    rate = Decimal("0.0005")
    be = breakeven_px(Decimal("0.1"), Decimal("3011"), Decimal("-0.15055"), rate, False)
    # OKX's figure is a binary float's shortest repr: equal to 1e-12
    assert abs(be - Decimal("3014.0125062531265")) < Decimal("1e-12")
    short = breakeven_px(Decimal("1"), Decimal("100"), Decimal("-0.1"), Decimal("0.0005"), True)
    assert short < Decimal("100")  # a short breaks even below its entry


async def test_fills_accumulate_fee_and_pnl_as_the_bills_book_them(sim: Simulator) -> None:
    await place(sim, side="buy", posSide="long", sz="20")
    await admin(sim.url, "/sim/mark-price", {"instId": CRO, "markPx": "0.1"})
    await place(sim, side="sell", posSide="long", sz="30")
    [p] = (await rest_positions(sim)).values()
    bills = (await signed(sim.url, "GET", f"{BILLS}?instType=SWAP&type=2")).json()["data"]
    assert len(bills) == 2
    fee = sum((Decimal(b["fee"]) for b in bills), Decimal(0))
    pnl = sum((Decimal(b["pnl"]) for b in bills), Decimal(0))
    assert fee < 0 and pnl > 0
    assert (Decimal(p["fee"]), Decimal(p["pnl"])) == (fee, pnl)
    # DOC-TA: realizedPnl = pnl + fee + fundingFee + liqPenalty
    assert Decimal(p["realizedPnl"]) == pnl + fee
    assert (p["fundingFee"], p["liqPenalty"]) == ("0", "0")
    # bePx is above avgPx for a long that paid fees
    assert Decimal(p["bePx"]) > Decimal(p["avgPx"])


async def test_avail_pos_is_empty_in_net_mode(sim: Simulator) -> None:
    await place(sim, side="buy", posSide="net", sz="10")
    by_side = await rest_positions(sim)
    assert by_side["long"]["availPos"] == "108"  # long/short mode: the closable size
    # DOC-POS: availPos is for the long/short mode; CCXT-POS (net): ""
    assert by_side["net"]["availPos"] == "" and by_side["net"]["pos"] == "10"


async def test_notional_usd_is_the_notional_times_usdt_usd(sim_factory: SimFactory) -> None:
    # CCXT-POS: 52.68620388 = 52.692 x USDT/USD; the 2025 capture: usdPx "1.00021"
    sim = await sim_factory(scenario(usdt_usd="1.00021"), price_walk=False)
    p = (await rest_positions(sim))["long"]
    notional = Decimal(108) * 10 * Decimal("0.095")
    assert Decimal(p["notionalUsd"]) == notional * Decimal("1.00021")
    assert p["usdPx"] == "1.00021"
    default = await sim_factory(SCENARIOS / "cro.yaml", price_walk=False)
    p = (await rest_positions(default))["long"]
    assert Decimal(p["notionalUsd"]) == notional and p["usdPx"] == "1"


async def test_close_order_algo_lists_the_attached_orders(sim: Simulator) -> None:
    assert (await rest_positions(sim))["long"]["closeOrderAlgo"] == []
    body = {"account": "Wu666666", "instId": CRO, "posSide": "long", "closeOrders": 2}
    await admin(sim.url, "/sim/position-state", body)
    algos = (await rest_positions(sim))["long"]["closeOrderAlgo"]
    assert len(algos) == 2
    # DOC-POS example's entry fields
    keys = {"algoId", "slTriggerPx", "slTriggerPxType", "tpTriggerPx", "tpTriggerPxType"}
    assert all(set(a) == keys | {"closeFraction"} for a in algos)
    assert Decimal(algos[0]["slTriggerPx"]) < Decimal("0.095") < Decimal(algos[0]["tpTriggerPx"])
    await admin(sim.url, "/sim/position-state", {**body, "closeOrders": 0})
    assert (await rest_positions(sim))["long"]["closeOrderAlgo"] == []
