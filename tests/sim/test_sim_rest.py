"""OKX v5 REST over a real socket: python-okx conformance and OKX's exact error codes."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import okx.Account as Account
import pytest

from reactor.okx.signing import iso_timestamp
from reactor.sim.server import Simulator
from tests.sim.helpers import KEY, MARGIN, PASSPHRASE, POSITIONS, SECRET, admin, signed


def sdk(sim: Simulator) -> Account.AccountAPI:
    return Account.AccountAPI(KEY, SECRET, PASSPHRASE, False, "1", domain=sim.url, debug=False)


@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")  # python-okx's data=
async def test_python_okx_reads_and_adjusts(sim: Simulator) -> None:
    api = sdk(sim)
    res = await asyncio.to_thread(api.get_positions, "SWAP")
    assert res["code"] == "0"
    [p] = res["data"]
    assert (p["instId"], p["pos"], p["margin"], p["lever"]) == (
        "CRO-USDT-SWAP",
        "108",
        "20.29",
        "10",
    )
    bal = await asyncio.to_thread(api.get_account_balance)
    assert bal["data"][0]["details"][0]["availBal"] == "1000"

    res = await asyncio.to_thread(api.adjustment_margin, "CRO-USDT-SWAP", "long", "add", "1.5")
    assert res["code"] == "0", res
    assert res["data"][0]["amt"] == "1.5" and res["data"][0]["type"] == "add"
    res = await asyncio.to_thread(api.adjustment_margin, "CRO-USDT-SWAP", "long", "reduce", "2")
    assert res["code"] == "0", res
    res = await asyncio.to_thread(api.adjustment_margin, "CRO-USDT-SWAP", "long", "reduce", "15")
    assert res["code"] == "59301"
    [p] = (await asyncio.to_thread(api.get_positions, "SWAP", "CRO-USDT-SWAP"))["data"]
    assert p["margin"] == "19.79"
    bal = await asyncio.to_thread(api.get_account_balance, "USDT")
    assert bal["data"][0]["details"][0]["availBal"] == "1000.5"

    log = await admin(sim.url, "/sim/requests")
    assert [e["code"] for e in log] == ["0", "0", "0", "0", "59301", "0", "0"]
    assert log[2]["account"] == "Wu666666" and log[2]["method"] == "POST" and log[2]["simulated"]
    assert json.loads(log[2]["body"])["loanTrans"] == ""
    await admin(sim.url, "/sim/reset-requests", {})
    assert await admin(sim.url, "/sim/requests") == []


async def test_public_endpoints(sim: Simulator) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=sim.url) as c:
        inst = (await c.get("/api/v5/public/instruments?instType=SWAP")).json()
        assert inst["code"] == "0"
        i = inst["data"][0]
        assert (i["instId"], i["ctVal"], i["settleCcy"], i["ctType"], i["state"]) == (
            "CRO-USDT-SWAP",
            "10",
            "USDT",
            "linear",
            "live",
        )
        r = await c.get("/api/v5/public/instruments")
        assert r.status_code == 400 and r.json()["code"] == "50014"
        ts = (await c.get("/api/v5/public/time")).json()["data"][0]["ts"]
        assert abs(int(ts) / 1000 - time.time()) < 60


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"sign": "bm90IGEgc2lnbg=="}, "50113"),
        ({"key": "nobody"}, "50111"),
        ({"passphrase": "wrong"}, "50105"),
        ({"ts": iso_timestamp(time.time() - 31)}, "50102"),
        ({"ts": "yesterday"}, "50112"),
        ({"drop": "OK-ACCESS-KEY"}, "50103"),
        ({"drop": "OK-ACCESS-SIGN"}, "50106"),
        ({"drop": "OK-ACCESS-TIMESTAMP"}, "50107"),
        ({"drop": "OK-ACCESS-PASSPHRASE"}, "50104"),
    ],
)
async def test_auth_failures(sim: Simulator, kwargs: dict[str, str], code: str) -> None:
    r = await signed(sim.url, "GET", POSITIONS, **kwargs)
    assert r.status_code == 401
    assert r.json()["code"] == code


async def test_signature_covers_query_as_sent(sim: Simulator) -> None:
    ok = await signed(sim.url, "GET", POSITIONS + "?instType=SWAP&instId=CRO-USDT-SWAP")
    assert ok.json()["code"] == "0" and len(ok.json()["data"]) == 1
    ts = iso_timestamp(time.time())
    from reactor.okx.signing import rest_sign

    wrong = rest_sign(SECRET, ts, "GET", POSITIONS, "")  # signed without the query
    r = await signed(sim.url, "GET", POSITIONS + "?instType=SWAP", ts=ts, sign=wrong)
    assert r.json()["code"] == "50113"


async def test_rate_limit_eleventh_call(sim: Simulator) -> None:
    codes = [(await signed(sim.url, "GET", POSITIONS)).json()["code"] for _ in range(10)]
    assert codes == ["0"] * 10
    r = await signed(sim.url, "GET", POSITIONS)
    assert r.status_code == 429 and r.json()["code"] == "50011"
    # balance has its own budget
    assert (await signed(sim.url, "GET", "/api/v5/account/balance")).json()["code"] == "0"


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [
        ("{not json", "50002", 400),
        ("", "50000", 400),
        ('{"instId":"CRO-USDT-SWAP","posSide":"long","type":"add","amt":"abc"}', "51000", 400),
        ('{"instId":"CRO-USDT-SWAP","posSide":"long","type":"sideways","amt":"1"}', "51000", 400),
        ('{"instId":"CRO-USDT-SWAP","posSide":"up","type":"add","amt":"1"}', "51000", 400),
        ('{"instId":"CRO-USDT-SWAP","posSide":"long","type":"add","amt":"-1"}', "51000", 400),
        ('{"posSide":"long","type":"add","amt":"1"}', "50014", 400),
        ('{"instId":"","posSide":"long","type":"add","amt":"1"}', "50014", 400),
        ('{"instId":"BTC-USDT-SWAP","posSide":"long","type":"add","amt":"1"}', "51001", 200),
        ('{"instId":"CRO-USDT-SWAP","posSide":"short","type":"add","amt":"1"}', "59300", 200),
        ('{"instId":"CRO-USDT-SWAP","posSide":"long","type":"add","amt":"1000.01"}', "59200", 200),
        ('{"instId":"CRO-USDT-SWAP","posSide":"long","type":"reduce","amt":"10.04"}', "59301", 200),
    ],
)
async def test_margin_balance_errors(sim: Simulator, body: str, code: str, status: int) -> None:
    r = await signed(sim.url, "POST", MARGIN, body)
    assert (r.json()["code"], r.status_code) == (code, status)
    if code == "50014":
        assert r.json()["msg"] == "Parameter instId cannot be empty."


async def test_ccxt_style_compact_body_with_numeric_amt(sim: Simulator) -> None:
    # 9.97 is within the default (strictest) reduce rule's estAvailTrans 9.9787
    body = '{"instId":"CRO-USDT-SWAP","posSide":"long","type":"reduce","amt":9.97,"ccy":"USDT"}'
    r = await signed(sim.url, "POST", MARGIN, body)
    assert r.json()["code"] == "0"
    p = sim.exchange.accounts["Wu666666"].isolated("CRO-USDT-SWAP", "long")
    assert p is not None and p.margin == Decimal("10.32")


async def test_unknown_path(sim: Simulator) -> None:
    """NT http_error_not_found.json (captured 2026-09-29): a numeric code, the gateway's body."""
    r = await signed(sim.url, "GET", "/api/v5/account/nothing-here")
    assert r.status_code == 404
    assert r.json() == {
        "code": 404,
        "data": {},
        "detailMsg": "",
        "error_code": "404",
        "error_message": "Not Found",
        "msg": "Not Found",
    }


async def test_demo_key_needs_the_simulated_trading_header(sim_factory: Any) -> None:
    """DOC: a demo key without x-simulated-trading: 1, or a live key with it, gets 50101
    (docs/spec/okx-fidelity.md §7.8); the scenario's keys are demo keys unless simulator.demo_keys
    is off."""
    from tests.conftest import SCENARIOS

    demo = await sim_factory(SCENARIOS / "cro.yaml")
    r = await signed(demo.url, "GET", POSITIONS, simulated=False)
    assert (r.status_code, r.json()["code"]) == (401, "50101")
    assert (await signed(demo.url, "GET", POSITIONS)).json()["code"] == "0"

    live = await sim_factory(SCENARIOS / "cro.yaml", demo_keys=False)
    r = await signed(live.url, "GET", POSITIONS)
    assert (r.status_code, r.json()["code"]) == (401, "50101")
    assert (await signed(live.url, "GET", POSITIONS, simulated=False)).json()["code"] == "0"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_gateway_fault_html(sim: Simulator, status: int) -> None:
    fault = {"kind": "rest_gateway", "account": "Wu666666", "path": MARGIN, "status": status}
    await admin(sim.url, "/sim/faults", fault)
    body = '{"instId":"CRO-USDT-SWAP","posSide":"long","type":"add","amt":"1"}'
    r = await signed(sim.url, "POST", MARGIN, body)
    assert r.status_code == status and r.headers["content-type"].startswith("text/html")
    assert f"<title>{status} " in r.text
    assert sim.exchange.accounts["Wu666666"].balance == 1000  # not applied
    assert (await signed(sim.url, "POST", MARGIN, body)).json()["code"] == "0"


async def test_gateway_fault_json(sim: Simulator) -> None:
    """docs/spec/okx-fidelity.md §7.9: ``{"code":500,"data":{},...,"error_code":"500",...}``."""
    fault = {
        "kind": "rest_gateway",
        "account": "Wu666666",
        "path": POSITIONS,
        "status": 500,
        "body": "json",
    }
    await admin(sim.url, "/sim/faults", fault)
    r = await signed(sim.url, "GET", POSITIONS)
    assert r.status_code == 500
    assert r.json() == {
        "code": 500,
        "data": {},
        "detailMsg": "",
        "error_code": "500",
        "error_message": "Internal Server Error",
        "msg": "Internal Server Error",
    }


async def test_asset_currencies(sim: Simulator) -> None:
    r = await signed(sim.url, "GET", "/api/v5/asset/currencies")
    data = r.json()["data"]
    assert [c["ccy"] for c in data] == ["USDT", "CRO"]
    assert data[0]["canWd"] is True and isinstance(data[0]["minWd"], str)
    one = await signed(sim.url, "GET", "/api/v5/asset/currencies?ccy=CRO")
    assert [c["ccy"] for c in one.json()["data"]] == ["CRO"]


async def test_python_okx_loads_currencies(sim: Simulator) -> None:
    import okx.Funding as Funding

    api = Funding.FundingAPI(KEY, SECRET, PASSPHRASE, False, "1", domain=sim.url, debug=False)
    res = await asyncio.to_thread(api.get_currencies)
    assert res["code"] == "0" and res["data"][0]["ccy"] == "USDT"


async def test_instruments_full_field_set_and_filters(sim: Simulator) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=sim.url) as c:
        [i] = (await c.get("/api/v5/public/instruments?instType=SWAP")).json()["data"]
        assert isinstance(i["instIdCode"], int) and i["futureSettlement"] is False
        assert i["tradeQuoteCcyList"] == [] and i["listTime"].isdigit()
        assert (i["ctVal"], i["minSz"], i["uly"]) == ("10", "1", "CRO-USDT")
        for query, n in [
            ("instType=SWAP&instFamily=CRO-USDT", 1),
            ("instType=SWAP&uly=BTC-USDT", 0),
            ("instType=SPOT", 0),
        ]:
            assert len((await c.get(f"/api/v5/public/instruments?{query}")).json()["data"]) == n


async def test_instrument_listed_while_running(sim: Simulator) -> None:
    import httpx

    new = {"instId": "PEPE-USDT-SWAP", "ctVal": "10000000", "markPx": "0.00001", "tickSz": "1e-9"}
    assert (await admin(sim.url, "/sim/instruments", new))["instId"] == "PEPE-USDT-SWAP"
    async with httpx.AsyncClient(base_url=sim.url) as c:
        q = "/api/v5/public/instruments?instType=SWAP&instId=PEPE-USDT-SWAP"
        [i] = (await c.get(q)).json()["data"]
        assert (i["ctVal"], i["ctValCcy"]) == ("10000000", "PEPE")
        again = await c.post("/sim/instruments", json=new)
        assert again.status_code == 400 and "already listed" in again.json()["error"]
        bad = await c.post("/sim/instruments", json={"instId": "X-USDT-SWAP", "ctVal": "0"})
        assert bad.status_code == 400 and "ctVal" in bad.json()["error"]
    pos = {
        "account": "Wu666666",
        "instId": "PEPE-USDT-SWAP",
        "posSide": "long",
        "pos": "1",
        "avgPx": "0.00001",
        "lever": "5",
        "margin": "30",
    }
    assert (await admin(sim.url, "/sim/positions", pos))["ok"]
