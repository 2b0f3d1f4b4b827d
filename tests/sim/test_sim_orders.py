"""Exchange mechanics of orders and fills (no sockets): isolated fill arithmetic, positions keyed
by mgnMode, OKX's order error codes, the order record."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from reactor.sim.errors import ExchangeError
from reactor.sim.exchange import Exchange
from reactor.sim.orders import OrderRequest, parse_order
from reactor.sim.scenario import scenario_from_dict

W = "Wu666666"
CRO = "CRO-USDT-SWAP"


class Clock:
    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 1
        return self.now


def make(
    *, balance: str = "1000", mechanics: dict[str, Any] | None = None, positions: Any = None
) -> tuple[Exchange, Clock]:
    clock = Clock()
    sc = scenario_from_dict(
        {
            "mechanics": mechanics or {},
            "instruments": [
                {"instId": CRO, "ctVal": "10", "markPx": "0.0950", "mmrRate": "0.004"},
                {"instId": "BTC-USDT-SWAP", "ctVal": "0.01", "markPx": "50000", "lotSz": "0.1"},
            ],
            "accounts": [
                {
                    "name": W,
                    "apiKey": "k",
                    "secretKey": "s",
                    "passphrase": "p",
                    "balance": balance,
                    "positions": positions
                    if positions is not None
                    else [
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
        }
    )
    return Exchange.from_scenario(sc, clock_ms=clock), clock


def order(**kw: Any) -> OrderRequest:
    body = {"instId": CRO, "tdMode": "isolated", "ordType": "market", **kw}
    return parse_order(body)


def test_buy_more_adds_initial_margin_and_reaverages() -> None:
    ex, _ = make()
    acct = ex.accounts[W]
    p = acct.isolated(CRO, "long")
    assert p is not None
    pos_id, c_time, u_before = p.pos_id, p.c_time, p.u_time
    done = ex.place_order(W, order(side="buy", posSide="long", sz="10", clOrdId="m1", tag="desk"))
    im = D(10) * 10 * D("0.095") / 10  # sz x ctVal x fillPx / lever = 0.95
    fee = D(10) * 10 * D("0.095") * D("0.0005")  # 0.00475
    assert p.margin == D("20.29") + im
    assert p.avg_px == (108 * D("0.0905") + 10 * D("0.095")) / 118  # HELP formula
    assert acct.balance == 1000 - im - fee
    assert (p.pos_id, p.c_time) == (pos_id, c_time) and p.u_time > u_before
    [change] = done.changes
    pushed = change.position
    assert pushed["pos"] == "118" and pushed["tradeId"] == done.order["tradeId"]
    assert pushed["uTime"] == done.order["fillTime"]
    im_avg = 118 * 10 * p.avg_px / 10
    assert abs(D(pushed["uplRatio"]) - D(pushed["upl"]) / im_avg) < D("1e-17")
    o = done.order
    assert o["state"] == "filled" and o["fillSz"] == o["accFillSz"] == o["sz"] == "10"
    assert o["fillPx"] == o["avgPx"] == "0.095" and D(o["fee"]) == -fee
    assert (o["clOrdId"], o["tag"], o["tdMode"], o["posSide"]) == ("m1", "desk", "isolated", "long")
    assert done.ack["sCode"] == "0" and done.ack["ordId"] == o["ordId"]
    assert ex.order(W, CRO, "", "m1") == o == ex.order(W, CRO, o["ordId"], "")


def test_partial_close_releases_margin_pro_rata_and_realises_pnl() -> None:
    ex, _ = make()
    acct = ex.accounts[W]
    done = ex.place_order(W, order(side="sell", posSide="long", sz="54"))
    p = acct.isolated(CRO, "long")
    assert p is not None and p.pos == 54 and p.avg_px == D("0.0905")
    assert p.margin == D("20.29") / 2
    pnl = 540 * (D("0.095") - D("0.0905"))  # 2.43
    fee = 540 * D("0.095") * D("0.0005")
    assert acct.balance == 1000 + D("20.29") / 2 + pnl - fee
    assert D(done.order["pnl"]) == pnl
    assert D(done.changes[0].position["realizedPnl"]) == pnl - fee


def test_isolated_and_cross_positions_coexist() -> None:
    ex, _ = make()
    ex.place_order(W, order(side="buy", posSide="long", sz="20", tdMode="cross"))
    acct = ex.accounts[W]
    iso, cross = acct.isolated(CRO, "long"), acct.positions[(CRO, "long", "cross")]
    assert iso is not None and iso.pos == 108 and cross.pos == 20
    assert iso.pos_id != cross.pos_id
    d = ex.position_dict(W, cross)
    assert d["margin"] == "" and d["imr"] == "1.9" and d["mgnRatio"] == ""
    # margin-balance acts on the isolated one only
    ex.margin_balance(W, CRO, "long", "add", D(1))
    assert iso.margin == D("21.29")


def test_close_then_reopen_reuses_pos_id_with_a_new_ctime_by_default() -> None:
    ex, clock = make()
    p = ex.accounts[W].isolated(CRO, "long")
    assert p is not None
    pos_id, c_time = p.pos_id, p.c_time
    done = ex.place_order(W, order(side="sell", posSide="long", sz="108"))
    assert done.changes[0].position["pos"] == "0"
    assert ex.accounts[W].isolated(CRO, "long") is None
    [rec] = ex.closed_positions(W, {CRO})
    assert rec["pos"] == "0" and rec["posId"] == pos_id and rec["adl"] == ""
    assert rec["mgnMode"] == "isolated" and rec["cTime"] == str(c_time)
    assert ex.closed_positions(W, {"BTC-USDT-SWAP"}) == []
    ex.place_order(W, order(side="buy", posSide="long", sz="5"))
    q = ex.accounts[W].isolated(CRO, "long")
    assert q is not None and q.pos_id == pos_id and q.c_time > c_time
    assert ex.closed_positions(W, {CRO}) == []
    # 30 days after the last full close the posId expires (DOC-TA)
    ex.place_order(W, order(side="sell", posSide="long", sz="5"))
    clock.now += 30 * 24 * 3600 * 1000 + 10
    assert ex.closed_positions(W, {CRO}) == []
    ex.place_order(W, order(side="buy", posSide="long", sz="5"))
    r = ex.accounts[W].isolated(CRO, "long")
    assert r is not None and r.pos_id != pos_id


def test_reopen_keeps_ctime_when_the_switch_says_so() -> None:
    ex, _ = make(mechanics={"reopen_ctime": "keep"})
    p = ex.accounts[W].isolated(CRO, "long")
    assert p is not None
    c_time = p.c_time
    ex.place_order(W, order(side="sell", posSide="long", sz="108"))
    ex.place_order(W, order(side="buy", posSide="long", sz="5"))
    q = ex.accounts[W].isolated(CRO, "long")
    assert q is not None and q.c_time == c_time and q.pos_id == p.pos_id


def test_net_mode_fill_flips_through_zero() -> None:
    ex, _ = make(positions=[])
    ex.place_order(W, order(side="buy", posSide="net", sz="10"))
    done = ex.place_order(W, order(side="sell", posSide="net", sz="15"))
    p = ex.accounts[W].positions[(CRO, "net", "isolated")]
    assert p.pos == -5
    assert [c.position["pos"] for c in done.changes] == ["0", "-5"]
    with pytest.raises(ExchangeError) as e:
        ex.place_order(W, order(side="sell", posSide="net", sz="1", reduceOnly=True))
    assert e.value.code == "51169"


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"instId": "NOPE-USDT-SWAP", "side": "buy", "posSide": "long", "sz": "1"}, "51001"),
        ({"side": "buy", "posSide": "long", "sz": "1.5"}, "51121"),
        ({"side": "buy", "posSide": "long", "sz": "100000"}, "51008"),
        ({"side": "sell", "posSide": "short", "sz": "100000"}, "51008"),
        ({"side": "buy", "posSide": "short", "sz": "1"}, "51169"),
        ({"side": "sell", "posSide": "long", "sz": "109"}, "51000"),
        ({"side": "buy", "posSide": "long", "sz": "1", "ordType": "limit", "px": "0.09"}, "51000"),
    ],
)
def test_order_refusals(kw: dict[str, Any], code: str) -> None:
    ex, _ = make()
    acct = ex.accounts[W]
    before = (acct.balance, len(acct.bills.bills), len(acct.orders))
    with pytest.raises(ExchangeError) as e:
        ex.place_order(W, order(**kw))
    assert e.value.code == code
    assert (acct.balance, len(acct.bills.bills), len(acct.orders)) == before


def test_marketable_limit_fills_at_mark_and_duplicate_cl_ord_id_is_refused() -> None:
    ex, _ = make()
    done = ex.place_order(
        W, order(side="buy", posSide="long", sz="1", ordType="limit", px="0.1", clOrdId="a1")
    )
    assert done.order["fillPx"] == "0.095" and done.order["px"] == "0.1"
    with pytest.raises(ExchangeError) as e:
        ex.place_order(W, order(side="buy", posSide="long", sz="1", clOrdId="a1"))
    assert e.value.code == "51016"
    with pytest.raises(ExchangeError) as e:
        ex.order(W, CRO, "", "nope")
    assert e.value.code == "51603"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"tdMode": "isolated", "side": "buy", "ordType": "market", "sz": "1"}, "50014"),
        ({"instId": CRO, "tdMode": "cash", "side": "buy", "ordType": "market", "sz": "1"}, "51000"),
        ({"instId": CRO, "tdMode": "cross", "side": "up", "ordType": "market", "sz": "1"}, "51000"),
        (
            {"instId": CRO, "tdMode": "cross", "side": "buy", "ordType": "post_only", "sz": "1"},
            "51000",
        ),
        ({"instId": CRO, "tdMode": "cross", "side": "buy", "ordType": "limit", "sz": "1"}, "50014"),
        (
            {"instId": CRO, "tdMode": "cross", "side": "buy", "ordType": "market", "sz": "-1"},
            "51000",
        ),
        (
            {"instId": CRO, "tdMode": "cross", "side": "buy", "ordType": "market", "sz": "x"},
            "51000",
        ),
        (
            {
                "instId": CRO,
                "tdMode": "cross",
                "side": "buy",
                "ordType": "market",
                "sz": "1",
                "clOrdId": "has space",
            },
            "51000",
        ),
    ],
)
def test_parse_order_refusals(body: dict[str, Any], code: str) -> None:
    with pytest.raises(ExchangeError) as e:
        parse_order(body)
    assert e.value.code == code


def test_max_avail_size_and_cross_margin_in_use() -> None:
    ex, _ = make()
    assert ex.max_avail_size(W, CRO) == {"instId": CRO, "availBuy": "1000", "availSell": "1000"}
    ex.place_order(W, order(side="buy", posSide="long", sz="100", tdMode="cross"))
    fee = 1000 * D("0.095") * D("0.0005")
    expected = 1000 - fee - D("9.5")  # cross initial margin 1000 x 0.095 / 10
    assert D(ex.max_avail_size(W, CRO)["availBuy"]) == expected
    with pytest.raises(ExchangeError) as e:
        ex.max_avail_size(W, "NOPE")
    assert e.value.code == "51001"
