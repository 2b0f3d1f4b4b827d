"""Bills, positions-history and money conservation (no sockets; hypothesis where natural)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactor.sim.bills import BILL_FIELDS
from reactor.sim.errors import ExchangeError
from reactor.sim.exchange import Exchange
from tests.sim.test_sim_orders import CRO, W, make, order

# CCXT-BILL (docs/spec/okx-fidelity.md §5.2): a captured type-6 bill's field set.
CCXT_BILL = {
    "bal": "67621.4325135010619812",
    "balChg": "-10.0000000000000000",
    "billId": "691293628710342659",
    "ccy": "USDT",
    "clOrdId": "",
    "execType": "",
    "fee": "0",
    "fillTime": "1711089244850",
    "from": "",
    "instId": "XRP-USDT-SWAP",
    "instType": "SWAP",
    "interest": "0",
    "mgnMode": "isolated",
    "notes": "",
    "ordId": "",
    "pnl": "0",
    "posBal": "73.12",
    "posBalChg": "10.00",
    "px": "",
    "subType": "160",
    "sz": "10",
    "tag": "",
    "to": "",
    "tradeId": "0",
    "ts": "1711089244699",
    "type": "6",
}


def margin_of(ex: Exchange) -> D:
    p = ex.accounts[W].isolated(CRO, "long")
    assert p is not None
    return p.margin


def test_margin_transfer_bills_have_the_captured_shape() -> None:
    ex, _ = make()
    ex.margin_balance(W, CRO, "long", "add", D(10))
    ex.margin_balance(W, CRO, "long", "reduce", D("2.5"))
    reduce_bill, add_bill = ex.bills(W, {})
    assert set(CCXT_BILL) <= set(add_bill) and set(add_bill) == set(BILL_FIELDS)
    assert all(isinstance(v, str) for v in add_bill.values())
    assert (add_bill["type"], add_bill["subType"]) == ("6", "160")
    assert (add_bill["balChg"], add_bill["posBalChg"], add_bill["sz"]) == ("-10", "10", "10")
    assert add_bill["posBal"] == "30.29" and add_bill["bal"] == "990"
    assert (add_bill["tradeId"], add_bill["px"], add_bill["ordId"]) == ("0", "", "")
    assert (reduce_bill["subType"], reduce_bill["balChg"], reduce_bill["posBalChg"]) == (
        "161",
        "2.5",
        "-2.5",
    )
    assert reduce_bill["posBal"] == "27.79" and reduce_bill["bal"] == "992.5"
    assert int(reduce_bill["billId"]) > int(add_bill["billId"])


def test_refused_transfers_write_no_bill() -> None:
    ex, _ = make()
    for kind, amt, code in (("add", "5000", "59200"), ("reduce", "15", "59301")):
        with pytest.raises(ExchangeError) as e:
            ex.margin_balance(W, CRO, "long", kind, D(amt))  # type: ignore[arg-type]
        assert e.value.code == code
    assert ex.bills(W, {}) == []


def test_fill_bills_name_open_and_close() -> None:
    ex, _ = make()
    buy = ex.place_order(W, order(side="buy", posSide="long", sz="10", clOrdId="b1", tag="t"))
    ex.place_order(W, order(side="sell", posSide="long", sz="118"))
    ex.place_order(W, order(side="sell", posSide="short", sz="4"))
    open_short, long_close, long_open = ex.bills(W, {"type": "2"})  # newest first
    assert ex.bills(W, {"subType": "3"}) == [long_open]
    assert long_open["ordId"] == buy.order["ordId"] and long_open["clOrdId"] == "b1"
    assert long_open["tag"] == "t" and long_open["execType"] == "T"
    assert long_open["sz"] == "10" and long_open["px"] == "0.095"
    assert D(long_open["posBalChg"]) == D("0.95") and D(long_open["fee"]) == D("-0.00475")
    assert D(long_open["balChg"]) == D("-0.95475")
    assert long_close["subType"] == "5" and long_close["posBal"] == "0"
    assert open_short["subType"] == "4"
    for b in ex.bills(W, {}):
        assert D(b["balChg"]) + D(b["posBalChg"]) == D(b["pnl"]) + D(b["fee"])


def test_bills_filters_and_paging() -> None:
    ex, clock = make()
    for _ in range(5):
        ex.margin_balance(W, CRO, "long", "add", D(1))
    ex.place_order(W, order(side="buy", posSide="long", sz="1"))
    all_bills = ex.bills(W, {})
    ids = [int(b["billId"]) for b in all_bills]
    assert ids == sorted(ids, reverse=True) and len(ids) == 6
    assert len(ex.bills(W, {"type": "6", "subType": "160"})) == 5
    assert ex.bills(W, {"instId": "BTC-USDT-SWAP"}) == []
    assert ex.bills(W, {"mgnMode": "cross"}) == []
    page = ex.bills(W, {"limit": "2"})
    assert page == all_bills[:2]
    older = ex.bills(W, {"after": page[-1]["billId"], "limit": "2"})
    assert older == all_bills[2:4]
    newer = ex.bills(W, {"before": all_bills[2]["billId"]})
    assert newer == all_bills[:2]
    ts = [int(b["ts"]) for b in all_bills]
    assert ex.bills(W, {"begin": str(ts[2]), "end": str(ts[1])}) == all_bills[1:3]
    for bad in ({"limit": "101"}, {"limit": "0"}, {"after": "x"}):
        with pytest.raises(ExchangeError) as e:
            ex.bills(W, bad)
        assert e.value.code == "51000"
    clock.now += 7 * 24 * 3600 * 1000 + 10  # DOC-TA: the last 7 days
    assert ex.bills(W, {}) == []


def test_positions_history_partial_then_full_close() -> None:
    ex, _ = make()
    ex.place_order(W, order(side="buy", posSide="long", sz="12"))
    assert ex.positions_history(W, {}) == []
    ex.place_order(W, order(side="sell", posSide="long", sz="20"))
    [rec] = ex.positions_history(W, {})
    assert rec["type"] == "1" and rec["closeTotalPos"] == "20" and rec["openMaxPos"] == "120"
    ex.place_order(W, order(side="sell", posSide="long", sz="100"))
    [rec] = ex.positions_history(W, {"instId": CRO})
    assert rec["type"] == "2" and rec["closeTotalPos"] == "120" and rec["lever"] == "10.0"
    assert rec["direction"] == "long" and rec["triggerPx"] == "" and rec["mgnMode"] == "isolated"
    open_avg = (108 * D("0.0905") + 12 * D("0.095")) / 120
    assert abs(D(rec["openAvgPx"]) - open_avg) < D("1e-20") and rec["closeAvgPx"] == "0.095"
    assert D(rec["realizedPnl"]) == D(rec["pnl"]) + D(rec["fee"])
    basis = 120 * 10 * D(rec["openAvgPx"]) / 10
    assert abs(D(rec["pnlRatio"]) - D(rec["realizedPnl"]) / basis) < D("1e-20")
    assert ex.positions_history(W, {"type": "1"}) == []
    # reopen within 30 days: same posId, a second lifecycle record once it closes
    ex.place_order(W, order(side="buy", posSide="long", sz="3"))
    ex.place_order(W, order(side="sell", posSide="long", sz="3"))
    newest, oldest = ex.positions_history(W, {})
    assert newest["posId"] == oldest["posId"] and newest["cTime"] != oldest["cTime"]
    assert ex.positions_history(W, {"after": newest["uTime"]}) == [oldest]
    assert ex.positions_history(W, {"limit": "1"}) == [newest]


def test_partial_liquidation_in_a_higher_tier() -> None:
    tiers = [
        {"maxSz": "100", "mmr": "0.004", "maxLever": "75"},
        {"maxSz": "1000", "mmr": "0.01", "maxLever": "50"},
    ]
    ex, _ = make(mechanics={"tiers": {CRO: tiers}})
    p = ex.accounts[W].isolated(CRO, "long")
    assert p is not None
    assert D(ex.position_dict(W, p)["mmr"]) == 108 * 10 * D("0.095") * D("0.01")
    # margin + upl = 20.29 - 19.548 = 0.742 <= mm 0.78192 (tier 2); after: 0.687 > 0.2896
    changes = ex.set_mark_price(CRO, D("0.0724"))
    q = ex.accounts[W].isolated(CRO, "long")
    assert q is not None and q.pos == 100  # down to the first tier, not closed
    assert abs(q.margin - D("20.29") * 100 / 108) < D("1e-15")
    assert [c.position["pos"] for c in changes] == ["100"]
    [liq] = ex.bills(W, {"type": "5"})
    assert liq["subType"] == "100" and liq["sz"] == "8" and liq["balChg"] == "0"
    [rec] = ex.positions_history(W, {})
    assert rec["type"] == "4" and rec["triggerPx"] == "0.0724"
    ex.set_mark_price(CRO, D("0.0700"))
    assert ex.accounts[W].isolated(CRO, "long") is None
    assert ex.bills(W, {"type": "5"})[0]["subType"] == "104"
    assert ex.positions_history(W, {})[0]["type"] == "3"
    assert ex.accounts[W].balance == 1000  # the margin is lost, the balance untouched


def test_tier_limits_refuse_an_oversized_open() -> None:
    tiers = [{"maxSz": "200", "mmr": "0.004", "maxLever": "75"}]
    ex, _ = make(mechanics={"tiers": {CRO: tiers}})
    with pytest.raises(ExchangeError) as e:
        ex.place_order(W, order(side="buy", posSide="long", sz="93"))
    assert e.value.code == "51004"
    ex.place_order(W, order(side="buy", posSide="long", sz="92"))


# ---- conservation over random sequences ---------------------------------------------------
ops = st.lists(
    st.tuples(
        st.sampled_from(
            ["add", "reduce", "mark", "buy_long", "sell_long", "sell_short", "buy_short", "cross"]
        ),
        st.integers(min_value=1, max_value=60),
    ),
    max_size=30,
)
rules = st.sampled_from(
    [
        {},
        {"reduce_rule": {"im_basis": "mark", "fee_reserve": False}},
        {"reduce_rule": {"im_basis": "avgPx"}},
        {"reduce_rule": {"im_basis": "max", "extra": "2"}},
        {"taker_fee_rate": "0.002"},
    ]
)


@settings(max_examples=150, deadline=None)
@given(ops, rules)
def test_money_is_conserved_and_bills_explain_it(
    seq: list[tuple[str, int]], mechanics: dict[str, object]
) -> None:
    ex, _ = make(balance="300", mechanics=mechanics)
    acct = ex.accounts[W]

    def held() -> D:
        return sum((p.margin for p in acct.positions.values()), D(0))

    start = acct.balance + held()
    for kind, n in seq:
        amt = D(n) / 4
        before = acct.balance + held()
        try:
            if kind == "mark":
                ex.set_mark_price(CRO, (D("0.08") + D(n) / 2000).quantize(D("0.0001")))
            elif kind in ("add", "reduce"):
                p = acct.isolated(CRO, "long")
                est = ex.est_avail_trans(p) if p is not None else None
                ex.margin_balance(W, CRO, "long", kind, amt)  # type: ignore[arg-type]
                # transfers move money between balance and margin, nothing else
                assert acct.balance + held() == before
                if kind == "reduce":
                    assert est is not None and amt <= est
            else:
                side, pos_side = kind.split("_") if kind != "cross" else ("buy", "long")
                td = "cross" if kind == "cross" else "isolated"
                ex.place_order(W, order(side=side, posSide=pos_side, sz=str(n), tdMode=td))
        except ExchangeError as e:
            assert e.code in ("59200", "59300", "59301", "51008", "51169", "51000")
            assert acct.balance + held() == before
            if e.code == "59301":
                p = acct.isolated(CRO, "long")
                assert p is not None and amt > ex.est_avail_trans(p)
        f = acct.flows
        assert acct.balance + held() == start + f.pnl + f.fee
        bills = ex.bills(W, {})
        assert sum((D(b["balChg"]) + D(b["posBalChg"]) for b in bills), D(0)) == f.pnl + f.fee
        if bills:
            assert D(bills[0]["bal"]) == acct.balance
        for p in acct.positions.values():
            if p.mgn_mode == "isolated":
                m = ex.metrics(p)
                assert p.margin + m.upl > m.mm  # nothing liquidatable stays open
