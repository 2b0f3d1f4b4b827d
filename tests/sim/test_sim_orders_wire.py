"""Orders, bills, estimates and lifecycles over real sockets, with OKX's own python-okx SDK
where it can (python-okx 0.4.4 has no adjust-leverage-info method: its generic signed request
is used; its WsPrivateAsync always passes an SSL context, which ``websockets`` refuses for the
simulator's ws:// URL, so the ``orders`` channel is read here with python-okx's login frame
over a plain socket; with the simulator's TLS option the SDK's own client works unchanged:
``test_sim_tls.py``)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import okx.Account as Account
import okx.Trade as Trade
import pytest
import websockets
from okx.websocket.WsUtils import initLoginParams
from websockets.asyncio.client import ClientConnection

from reactor.okx.endpoints import ADJUST_LEVERAGE_INFO, BILLS, ORDER
from reactor.sim.server import Simulator
from tests.sim.helpers import KEY, MARGIN, PASSPHRASE, POSITIONS, SECRET, signed

CRO = "CRO-USDT-SWAP"

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


def trade_sdk(sim: Simulator) -> Trade.TradeAPI:
    return Trade.TradeAPI(KEY, SECRET, PASSPHRASE, False, "1", domain=sim.url, debug=False)


def account_sdk(sim: Simulator) -> Account.AccountAPI:
    return Account.AccountAPI(KEY, SECRET, PASSPHRASE, False, "1", domain=sim.url, debug=False)


async def place(sim: Simulator, **body: Any) -> dict[str, Any]:
    payload = {"instId": CRO, "tdMode": "isolated", "ordType": "market", **body}
    r = await signed(sim.url, "POST", ORDER, json.dumps(payload))
    out: dict[str, Any] = r.json()
    if out["code"] in ("0", "1"):
        assert r.status_code == 200  # a refused order is still HTTP 200, code "1"
    return out


async def test_python_okx_places_an_order_and_reads_bills(sim: Simulator) -> None:
    trade, acct = trade_sdk(sim), account_sdk(sim)
    res = await asyncio.to_thread(
        trade.place_order, CRO, "isolated", "buy", "market", "10", clOrdId="maint1", posSide="long"
    )
    assert res["code"] == "0", res
    [ack] = res["data"]
    assert ack["sCode"] == "0" and ack["clOrdId"] == "maint1" and ack["ordId"]
    got = await asyncio.to_thread(trade.get_order, CRO, clOrdId="maint1")
    [o] = got["data"]
    assert (o["ordId"], o["state"], o["fillSz"], o["fillPx"]) == (
        ack["ordId"],
        "filled",
        "10",
        "0.095",
    )
    assert Decimal(o["fee"]) == Decimal("-0.00475")

    res = await asyncio.to_thread(acct.get_positions, "SWAP")
    [p] = res["data"]
    assert p["pos"] == "118" and Decimal(p["margin"]) == Decimal("21.24")

    res = await asyncio.to_thread(acct.adjustment_margin, CRO, "long", "add", "1")
    assert res["code"] == "0"
    res = await asyncio.to_thread(acct.get_account_bills, instType="SWAP", type="6", subType="160")
    [transfer] = res["data"]
    assert (transfer["sz"], transfer["balChg"], transfer["posBalChg"]) == ("1", "-1", "1")
    assert Decimal(transfer["posBal"]) == Decimal("22.24")
    res = await asyncio.to_thread(acct.get_account_bills, instType="SWAP", type="2")
    [trade_bill] = res["data"]
    assert trade_bill["subType"] == "3" and trade_bill["ordId"] == ack["ordId"]
    assert trade_bill["clOrdId"] == "maint1"

    res = await asyncio.to_thread(acct.get_max_avail_size, CRO, "isolated")
    assert Decimal(res["data"][0]["availBuy"]) == Decimal(1000) - Decimal("0.95475") - 1

    params = {"instType": "SWAP", "mgnMode": "isolated", "lever": "10", "instId": CRO}
    params["posSide"] = "long"
    res = await asyncio.to_thread(acct._request_with_params, "GET", ADJUST_LEVERAGE_INFO, params)
    assert res["code"] == "0" and Decimal(res["data"][0]["estAvailTrans"]) > 0

    res = await asyncio.to_thread(
        trade.place_order, CRO, "isolated", "sell", "market", "118", posSide="long"
    )
    assert res["code"] == "0", res
    res = await asyncio.to_thread(acct.get_positions_history, "SWAP", CRO)
    [hist] = res["data"]
    assert hist["type"] == "2" and hist["closeTotalPos"] == "118" and hist["lever"] == "10.0"


async def test_refused_orders_answer_like_okx(sim: Simulator) -> None:
    r = await place(sim, side="buy", posSide="long", sz="1.5", clOrdId="x1")
    assert (r["code"], r["msg"]) == ("1", "All operations failed")
    [d] = r["data"]
    assert (d["sCode"], d["clOrdId"], d["ordId"]) == ("51121", "x1", "")
    assert d["sMsg"] == "Order quantity must be a multiple of the lot size."
    r = await place(sim, side="buy", posSide="long", sz="1", instId="NOPE-USDT-SWAP")
    assert r["code"] == "51001" and r["data"] == []
    assert (await place(sim, side="buy", posSide="long", sz="1", clOrdId="d1"))["code"] == "0"
    r = await place(sim, side="buy", posSide="long", sz="1", clOrdId="d1")
    assert r["data"][0]["sCode"] == "51016"
    r = await place(sim, side="buy", posSide="long", sz="1000000")
    assert r["data"][0]["sCode"] == "51008"
    r = await place(sim, side="buy", posSide="short", sz="1")
    assert r["data"][0]["sCode"] == "51169"
    r = await place(sim, side="buy", posSide="long")
    assert r["code"] == "50014"
    bad = await signed(sim.url, "POST", ORDER, "{nope")
    assert bad.json()["code"] == "50002"
    missing = await signed(sim.url, "GET", f"{ORDER}?instId={CRO}&ordId=123")
    assert missing.json()["code"] == "51603"


async def test_orders_channel_and_positions_event_for_a_fill(sim: Simulator) -> None:
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(initLoginParams(False, KEY, PASSPHRASE, SECRET))
        assert (await recv(ws))["event"] == "login"
        args = [
            {"channel": "orders", "instType": "SWAP", "instId": CRO},
            {"channel": "positions", "instType": "SWAP"},
        ]
        await ws.send(json.dumps({"op": "subscribe", "args": args}))
        await until(ws, lambda m: m.get("event") == "subscribe" and m["arg"]["channel"] == "orders")
        r = await place(sim, side="buy", posSide="long", sz="10", clOrdId="w1", tag="desk")
        ord_id = r["data"][0]["ordId"]
        push = await until(ws, lambda m: m.get("arg", {}).get("channel") == "orders")
        [o] = push["data"]
        assert push["arg"]["instId"] == CRO and push["arg"]["uid"]
        assert (o["ordId"], o["clOrdId"], o["tag"], o["state"]) == (ord_id, "w1", "desk", "filled")
        assert (o["fillSz"], o["accFillSz"], o["fillPx"], o["avgPx"]) == (
            "10",
            "10",
            "0.095",
            "0.095",
        )
        assert o["tradeId"] and o["fillTime"] == o["uTime"] and Decimal(o["fee"]) < 0
        pos = await until(
            ws,
            lambda m: (
                m.get("arg", {}).get("channel") == "positions"
                and m.get("eventType") == "event_update"
            ),
        )
        [p] = pos["data"]
        assert p["pos"] == "118" and p["tradeId"] == o["tradeId"]


async def test_close_leaves_a_pos_zero_record_for_inst_id_queries(sim: Simulator) -> None:
    before = (await signed(sim.url, "GET", f"{POSITIONS}?instId={CRO}")).json()["data"][0]
    assert (await place(sim, side="sell", posSide="long", sz="108"))["code"] == "0"
    assert (await signed(sim.url, "GET", POSITIONS)).json()["data"] == []
    [rec] = (await signed(sim.url, "GET", f"{POSITIONS}?instId={CRO}")).json()["data"]
    assert rec["pos"] == "0" and rec["posId"] == before["posId"] and rec["adl"] == ""
    assert (await place(sim, side="buy", posSide="long", sz="5"))["code"] == "0"
    [again] = (await signed(sim.url, "GET", f"{POSITIONS}?instId={CRO}")).json()["data"]
    assert again["pos"] == "5" and again["posId"] == before["posId"]
    assert int(again["cTime"]) > int(before["cTime"])  # new cTime on reopen: the default


async def test_est_avail_trans_is_the_59301_boundary_over_the_wire(sim: Simulator) -> None:
    path = (
        "/api/v5/account/adjust-leverage-info?instType=SWAP&mgnMode=isolated&lever=10"
        f"&instId={CRO}&posSide=long"
    )
    est = Decimal((await signed(sim.url, "GET", path)).json()["data"][0]["estAvailTrans"])
    assert est == Decimal("9.9787")  # 20.29 - 10.26 - 0.0513 (the default, strictest rule)
    over = {"instId": CRO, "posSide": "long", "type": "reduce", "amt": str(est + Decimal("0.01"))}
    assert (await signed(sim.url, "POST", MARGIN, json.dumps(over))).json()["code"] == "59301"
    exact = {**over, "amt": str(est)}
    assert (await signed(sim.url, "POST", MARGIN, json.dumps(exact))).json()["code"] == "0"
    bill = (await signed(sim.url, "GET", f"{BILLS}?type=6&subType=161")).json()["data"][0]
    assert Decimal(bill["sz"]) == est and Decimal(bill["posBal"]) == Decimal("10.3113")


async def test_bills_rate_limit_and_parameters(sim: Simulator) -> None:
    codes = [(await signed(sim.url, "GET", f"{BILLS}?limit=5")).json()["code"] for _ in range(6)]
    assert codes[:5] == ["0"] * 5 and codes[5] == "50011"  # DOC-TA: 5 requests per second
    await asyncio.sleep(1.05)
    assert (await signed(sim.url, "GET", f"{BILLS}?limit=500")).json()["code"] == "51000"


async def recv(ws: ClientConnection) -> Any:
    text = await asyncio.wait_for(ws.recv(), 5)
    return text if text == "pong" else json.loads(text)


async def until(ws: ClientConnection, pred: Any) -> dict[str, Any]:
    for _ in range(20):
        msg = await recv(ws)
        if isinstance(msg, dict) and pred(msg):
            return msg
    raise AssertionError("no matching frame")
