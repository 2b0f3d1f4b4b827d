"""The simulator's order, bill, estimate and lifecycle payloads against real OKX payloads
(tests/fixtures/okx/README.md): same field names, same value types."""

from __future__ import annotations

import json
from decimal import Decimal as D
from typing import Any

from reactor.sim.server import Simulator
from tests.paths import FIXTURES
from tests.sim.helpers import MARGIN, POSITIONS, admin, signed

CRO = "CRO-USDT-SWAP"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def same_types(real: dict[str, Any], sim: dict[str, Any], keys: set[str]) -> None:
    for k in keys:
        assert type(sim[k]) is type(real[k]), (k, sim[k], real[k])


async def get(sim: Simulator, path: str) -> Any:
    r = await signed(sim.url, "GET", path)
    body = r.json()
    assert body["code"] == "0", body
    return body["data"]


async def order(sim: Simulator, **body: Any) -> Any:
    payload = {"instId": CRO, "tdMode": "isolated", "ordType": "market", **body}
    r = await signed(sim.url, "POST", "/api/v5/trade/order", json.dumps(payload))
    return r.json()


async def test_bills_have_okx_fields(sim: Simulator) -> None:
    body = '{"instId":"CRO-USDT-SWAP","posSide":"long","type":"add","amt":"10"}'
    assert (await signed(sim.url, "POST", MARGIN, body)).json()["code"] == "0"
    assert (await order(sim, side="buy", posSide="long", sz="1"))["code"] == "0"
    trade, transfer = await get(sim, "/api/v5/account/bills")
    captured = fixture("bill_margin_transfer_ccxt.json")
    assert set(captured) <= set(transfer)
    same_types(captured, transfer, set(captured))
    [doc] = fixture("bills_doc.json")["data"]
    assert set(doc) == set(trade) == set(transfer)
    same_types(doc, trade, set(doc))


async def test_orders_and_failed_order_have_okx_fields(sim: Simulator) -> None:
    ack = await order(sim, side="buy", posSide="long", sz="1", clOrdId="f1")
    [o] = await get(sim, f"/api/v5/trade/order?instId={CRO}&ordId={ack['data'][0]['ordId']}")
    [real] = fixture("ws_orders_nt.json")["data"]
    assert set(real) == set(o)
    same_types(real, o, set(real))
    failed = await order(sim, side="buy", posSide="long", sz="0.5")
    captured = fixture("place_order_failed_go_okx.json")
    assert set(failed["data"][0]) == set(captured["data"][0])
    assert (failed["code"], failed["msg"]) == (captured["code"], captured["msg"])
    # OKX's trade answers also carry inTime/outTime; the simulator's envelope does not.
    assert set(failed) | {"inTime", "outTime"} == set(captured)


async def test_positions_history_has_okx_fields(sim: Simulator) -> None:
    assert (await order(sim, side="sell", posSide="long", sz="108"))["code"] == "0"
    [rec] = await get(sim, "/api/v5/account/positions-history")
    for name in ("positions_history_nt.json", "positions_history_doc.json"):
        [real] = fixture(name)["data"]
        assert set(real) <= set(rec), set(real) - set(rec)
        same_types(real, rec, set(real))
    nt = fixture("positions_history_nt.json")["data"][0]
    assert set(rec) - set(nt) == {"nonSettleAvgPx", "settledPnl"}  # in the DOC example


async def test_pos_zero_record_matches_the_captured_one(sim: Simulator) -> None:
    assert (await order(sim, side="sell", posSide="long", sz="108"))["code"] == "0"
    [rec] = await get(sim, f"{POSITIONS}?instId={CRO}")
    real = fixture("positions_pos0_ccxt16166.json")
    shared = set(real) & set(rec)
    assert len(shared) >= 15
    for k in shared - {"instId", "ccy", "mgnMode"}:
        assert (rec[k] == "") == (real[k] == ""), (k, rec[k], real[k])
    assert rec["pos"] == "0" and rec["mmr"] == "0"


async def test_estimates_have_okx_fields(sim: Simulator) -> None:
    q = f"instType=SWAP&mgnMode=isolated&lever=10&instId={CRO}&posSide=long"
    [info] = await get(sim, f"/api/v5/account/adjust-leverage-info?{q}")
    [real] = fixture("adjust_leverage_info_doc.json")["data"]
    assert set(real) == set(info)
    same_types(real, info, set(real))
    assert D(info["estAvailTrans"]) > 0
    [avail] = await get(sim, f"/api/v5/account/max-avail-size?instId={CRO}&tdMode=isolated")
    [real] = fixture("max_avail_size_doc.json")["data"]
    assert set(real) == set(avail)
    same_types(real, avail, set(real))


async def test_funding_bill_has_okx_fields(sim: Simulator) -> None:
    """A funding bill (type 8, docs/spec/okx-fidelity.md §11.2.2) carries the documented bill
    fields with the example's types (no live funding bill is public)."""
    await admin(sim.url, "/sim/funding", {"instId": CRO, "fundingRate": "0.0001"})
    [bill] = await get(sim, "/api/v5/account/bills?type=8")
    [real] = fixture("bills_doc.json")["data"]
    assert set(real) <= set(bill)
    same_types(real, bill, set(real))
    assert (bill["type"], bill["subType"]) == ("8", "173")
    assert D(bill["posBalChg"]) == D(bill["pnl"]) < 0


async def test_position_tiers_have_okx_fields(sim: Simulator) -> None:
    r = await signed(
        sim.url,
        "GET",
        "/api/v5/public/position-tiers?instType=SWAP&tdMode=isolated&instFamily=CRO-USDT",
    )
    [tier] = r.json()["data"]
    [real] = fixture("http_get_position_tiers_nt.json")["data"]
    assert set(real) == set(tier)
    same_types(real, tier, set(real))
    assert (tier["tier"], tier["mmr"], tier["maxLever"], tier["minSz"]) == ("1", "0.004", "75", "0")
