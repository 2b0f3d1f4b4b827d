"""Funding moves isolated margin (docs/spec/okx-fidelity.md §11.2.2): the settlement arithmetic,
the type-8 bill, the fields it accumulates, the clock, and the push and admin trigger over real
sockets."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
import websockets

from reactor.sim.bills import BILL_FIELDS
from reactor.sim.exchange import Exchange
from reactor.sim.funding import FundingClock, FundingTerms, next_settlement
from reactor.sim.position_record import breakeven_px
from reactor.sim.scenario import ScenarioError, scenario_from_dict
from reactor.sim.server import Simulator
from tests.sim.helpers import admin, signed
from tests.sim.test_sim_orders import CRO, Clock, W, make, order
from tests.sim.test_sim_ws import login_and_subscribe, next_push

BTC = "BTC-USDT-SWAP"
SHORT = {"instId": CRO, "posSide": "short", "pos": "100", "avgPx": "0.1", "lever": "10",
         "margin": "10"}  # fmt: skip
LONG = {"instId": CRO, "posSide": "long", "pos": "108", "avgPx": "0.0905", "lever": "10",
        "margin": "20.29"}  # fmt: skip
CROSS = {"instId": BTC, "posSide": "long", "pos": "1", "avgPx": "50000", "lever": "5",
         "mgnMode": "cross"}  # fmt: skip


def account(name: str, key: str, balance: str, positions: Any) -> dict[str, Any]:
    return {
        "name": name,
        "apiKey": key,
        "secretKey": "s",
        "passphrase": "p",
        "balance": balance,
        "positions": positions,
    }


def funded(rate: str = "0.0001", **extra: Any) -> Exchange:
    positions = extra.pop("positions", [LONG, SHORT, CROSS])
    raw = {
        "instruments": [
            {"instId": CRO, "ctVal": "10", "markPx": "0.0950", "fundingRate": rate},
            {"instId": BTC, "ctVal": "0.01", "markPx": "50000", "fundingRate": rate},
        ],
        "accounts": [
            {
                "name": W,
                "apiKey": "k",
                "secretKey": "s",
                "passphrase": "p",
                "balance": "1000",
                "positions": positions,
            },
            {
                "name": "Other",
                "apiKey": "k2",
                "secretKey": "s",
                "passphrase": "p",
                "balance": "50",
                "positions": [LONG],
            },
        ],
        **extra,
    }
    return Exchange.from_scenario(scenario_from_dict(raw), clock_ms=Clock())


def test_positive_rate_longs_pay_shorts_from_isolated_margin() -> None:
    ex = funded("0.0001")
    acct = ex.accounts[W]
    balance = acct.balance
    changes = ex.settle_funding(CRO)
    long_, short = acct.isolated(CRO, "long"), acct.isolated(CRO, "short")
    assert long_ is not None and short is not None
    pay_long = D(108) * 10 * D("0.095") * D("0.0001")  # position value at mark x rate
    pay_short = D(100) * 10 * D("0.095") * D("0.0001")
    assert long_.margin == D("20.29") - pay_long
    assert short.margin == D(10) + pay_short
    assert acct.balance == balance  # isolated: the margin moves, not the balance
    # every position of every account on the instrument, one push each
    assert sorted((c.account, c.position["posSide"]) for c in changes) == [
        ("Other", "long"),
        (W, "long"),
        (W, "short"),
    ]
    rec = next(c.position for c in changes if c.account == W and c.position["posSide"] == "long")
    assert D(rec["fundingFee"]) == -pay_long
    assert D(rec["margin"]) == long_.margin
    assert D(rec["realizedPnl"]) == -pay_long  # pnl 0 + fee 0 + fundingFee
    assert ex.settle_funding(CRO, D("-0.0001"))  # a negative rate: shorts pay
    assert short.margin == D(10)


def test_cross_positions_pay_from_the_balance() -> None:
    ex = funded("0.0002")
    acct = ex.accounts[W]
    balance = acct.balance
    [change] = ex.settle_funding(BTC)
    paid = D(1) * D("0.01") * 50000 * D("0.0002")
    assert acct.balance == balance - paid
    assert D(change.position["fundingFee"]) == -paid
    [bill] = ex.bills(W, {"type": "8"})
    assert D(bill["balChg"]) == -paid
    assert (bill["posBalChg"], bill["mgnMode"]) == ("0", "cross")


def test_funding_bill_type_8_with_pos_bal_chg() -> None:
    ex = funded("0.0001")
    ex.settle_funding(CRO)
    bills = ex.bills(W, {"type": "8"})
    assert len(bills) == 2
    assert all(set(b) == set(BILL_FIELDS) for b in bills)
    by_side = {b["subType"]: b for b in bills}
    expense, income = by_side["173"], by_side["174"]  # DOC-TA: 173 expense, 174 income
    p = ex.accounts[W].isolated(CRO, "long")
    assert p is not None
    assert D(expense["posBalChg"]) == D(expense["pnl"]) == p.funding < 0
    assert expense["balChg"] == "0"
    assert D(expense["posBal"]) == p.margin
    assert (expense["instId"], expense["mgnMode"], expense["sz"]) == (CRO, "isolated", "108")
    assert D(income["pnl"]) > 0
    # one settlement, one timestamp, across accounts (docs/spec/okx-fidelity.md §11.2.2)
    stamps = {b["ts"] for b in ex.bills(W, {"type": "8"}) + ex.bills("Other", {"type": "8"})}
    assert len(stamps) == 1
    # the position's uTime moved to the settlement
    assert str(p.u_time) in stamps


def test_be_px_includes_funding_to_the_last_digit() -> None:
    # CCXT-STATIC LTC (docs/spec/okx-fidelity.md §11.2.2): fee -0.000082675, fundingFee
    # -0.0154171409554622
    paid = D("-0.000082675") + D("-0.0154171409554622")
    be = breakeven_px(D("0.002"), D("82.675"), paid, D("0.0005"), short=False)
    assert be.quantize(D("1e-14")) == D("90.47014304925573")  # the pushed value


def test_funding_accumulates_into_be_px_and_positions_history() -> None:
    ex = funded("0.001", positions=[LONG])
    p = ex.accounts[W].isolated(CRO, "long")
    assert p is not None
    before = ex.position_dict(W, p)["bePx"]
    ex.settle_funding(CRO)
    ex.settle_funding(CRO)
    rec = ex.position_dict(W, p)
    assert D(rec["bePx"]) > D(before)  # paid funding raises a long's break-even
    assert D(rec["fundingFee"]) == p.funding == 2 * (-D(108) * 10 * D("0.095") * D("0.001"))
    ex.place_order(W, order(side="sell", posSide="long", sz="108"))
    [hist] = ex.positions_history(W, {})
    assert D(hist["fundingFee"]) == p.funding
    assert D(hist["realizedPnl"]) == D(hist["pnl"]) + D(hist["fee"]) + p.funding


def test_funding_that_eats_the_margin_liquidates() -> None:
    ex = funded("0.05", positions=[LONG])  # 5 %: 5.13 of funding
    p = ex.accounts[W].isolated(CRO, "long")
    assert p is not None
    p.margin = D("0.5")  # + upl 4.86: safe before, 0.23 after, below mm 0.41
    changes = ex.settle_funding(CRO)
    mine = [c.position for c in changes if c.account == W]
    assert [r["pos"] for r in mine] == ["0"]  # one push: the liquidation close
    assert ex.accounts[W].isolated(CRO, "long") is None


def test_money_is_conserved_through_funding() -> None:
    ex, _ = make(balance="300")
    acct = ex.accounts[W]
    start = acct.balance + sum((p.margin for p in acct.positions.values()), D(0))
    ex.place_order(W, order(side="buy", posSide="long", sz="20"))
    for rate in ("0.0003", "-0.0007", "0.0001"):
        ex.settle_funding(CRO, D(rate))
    held = sum((p.margin for p in acct.positions.values()), D(0))
    assert acct.balance + held == start + acct.flows.pnl + acct.flows.fee
    bills = ex.bills(W, {})
    assert sum((D(b["balChg"]) + D(b["posBalChg"]) for b in bills), D(0)) == (
        acct.flows.pnl + acct.flows.fee
    )


def test_zero_rate_settles_nothing() -> None:
    ex = funded("0")
    assert ex.settle_funding(CRO) == []
    assert ex.bills(W, {"type": "8"}) == []


def test_clock_is_epoch_aligned_and_skips_zero_rates() -> None:
    assert next_settlement(28799.0, 28800) == 28800.0  # 08:00 UTC on day 0
    assert next_settlement(28800.0, 28800) == 57600.0
    clock = FundingClock(
        {
            "A": FundingTerms(D("0.0001"), 10.0),
            "B": FundingTerms(D("-0.0002"), 10.0),
            "C": FundingTerms(D(0), 10.0),
            "D": FundingTerms(D("0.0001"), 4.0),
        },
        now_s=101.0,
    )
    assert clock.due_at() == 104.0
    assert clock.take_due(104.0) == ["D"]
    assert clock.due_at() == 108.0
    assert clock.take_due(110.5) == ["A", "B", "D"]  # same interval: the same instant
    assert sorted(clock.instruments()) == ["A", "B", "D"]


@pytest.mark.parametrize(
    ("field", "value"), [("fundingIntervalS", 0), ("fundingRate", "1"), ("fundingRate", "x")]
)
def test_scenario_rejects_bad_funding(field: str, value: Any) -> None:
    inst = {"instId": CRO, "ctVal": "10", "markPx": "0.1", field: value}
    acct = {"name": W, "apiKey": "k", "secretKey": "s", "passphrase": "p", "balance": "1"}
    with pytest.raises(ScenarioError, match=field):
        scenario_from_dict({"instruments": [inst], "accounts": [acct]})


def cro_scenario(**inst: Any) -> dict[str, Any]:
    return {
        "instruments": [{"instId": CRO, "ctVal": "10", "markPx": "0.0950", "lotSz": "1", **inst}],
        "accounts": [
            {
                "name": W,
                "uid": "448800000000001",
                "apiKey": "sim-key-wu666666",
                "secretKey": "sim-secret-wu666666",
                "passphrase": "sim-pass-wu666666",
                "balance": "1000",
                "positions": [LONG],
            }
        ],
    }


async def test_funding_clock_pushes_an_event_update_and_books_a_bill(sim_factory: Any) -> None:
    sim: Simulator = await sim_factory(
        cro_scenario(fundingRate="0.0001", fundingIntervalS=0.5), price_walk=False
    )
    async with websockets.connect(sim.ws_url) as ws:
        await login_and_subscribe(ws)
        push = await asyncio.wait_for(next_push(ws, "event_update"), 5)
        [rec] = push["data"]
        assert D(rec["fundingFee"]) < 0
        assert D(rec["margin"]) < D("20.29")
        assert "pTime" in rec  # pushes carry the push time
    res = await signed(sim.url, "GET", "/api/v5/account/bills?type=8")
    bills = res.json()["data"]
    assert bills and all(b["type"] == "8" and b["subType"] == "173" for b in bills)


async def test_admin_funding_settles_now(sim_factory: Any) -> None:
    sim: Simulator = await sim_factory(cro_scenario(), price_walk=False)  # rate 0: no clock
    async with websockets.connect(sim.ws_url) as ws:
        await login_and_subscribe(ws)
        res = await admin(sim.url, "/sim/funding", {"instId": CRO, "fundingRate": "-0.001"})
        assert res == {"ok": True, "instIds": [CRO], "changed": 1}
        push = await asyncio.wait_for(next_push(ws, "event_update"), 5)
        [rec] = push["data"]
        received = D(108) * 10 * D("0.095") * D("0.001")  # a negative rate: longs receive
        assert D(rec["fundingFee"]) == received
        assert D(rec["margin"]) == D("20.29") + received
    # no instId, no rate: the instruments with a funding rate (none here)
    assert (await admin(sim.url, "/sim/funding", {}))["instIds"] == []
    async with httpx.AsyncClient() as client:
        bad = await client.post(sim.url + "/sim/funding", content=json.dumps({"instId": "X"}))
    assert bad.status_code == 400
