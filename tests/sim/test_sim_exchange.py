"""Mechanics of the simulated exchange: margin rules, liquidation, OKX-shaped dicts."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactor.sim.exchange import Exchange, ExchangeError, fmt
from reactor.sim.scenario import scenario_from_dict

CRO = {"instId": "CRO-USDT-SWAP", "ctVal": "10", "markPx": "0.0950", "mmrRate": "0.004"}


LENIENT = {"reduce_rule": {"im_basis": "mark", "fee_reserve": False}}


def cro_exchange(
    balance: str = "1000",
    margin: str = "20.29",
    side: str = "long",
    mechanics: dict[str, Any] | None = None,
) -> Exchange:
    ticks = iter(range(1_700_000_000_000, 1_800_000_000_000))
    sc = scenario_from_dict(
        {
            "mechanics": mechanics or {},
            "instruments": [CRO],
            "accounts": [
                {
                    "name": "Wu666666",
                    "apiKey": "k",
                    "secretKey": "s",
                    "passphrase": "p",
                    "balance": balance,
                    "positions": [
                        {
                            "instId": "CRO-USDT-SWAP",
                            "posSide": side,
                            "pos": "108",
                            "avgPx": "0.0905",
                            "lever": "10",
                            "margin": margin,
                        }
                    ],
                }
            ],
        }
    )
    return Exchange.from_scenario(sc, clock_ms=lambda: next(ticks))


def the_position(ex: Exchange) -> dict[str, Any]:
    [p] = ex.positions("Wu666666")
    return p


def test_cro_position_fields_are_okx_strings() -> None:
    ex = cro_exchange()
    p = the_position(ex)
    # every field a string but closeOrderAlgo, an array (CCXT-POS, the 2025 capture)
    assert all(isinstance(v, str) for k, v in p.items() if k != "closeOrderAlgo")
    assert p["closeOrderAlgo"] == []
    assert p["notionalUsd"] == "102.6"  # 108 * 10 * 0.095
    assert p["upl"] == "4.86"  # 1080 * (0.095 - 0.0905)
    assert p["mmr"] == "0.4104"
    assert p["margin"] == "20.29" and p["imr"] == ""
    # CCXT-POS: over the initial margin at avgPx, 108 * 10 * 0.0905 / 10 = 9.774
    assert abs(D(p["uplRatio"]) - D("4.86") / D("9.774")) < D("1e-17")
    assert p["mgnMode"] == "isolated" and p["instType"] == "SWAP" and p["ccy"] == "USDT"
    # liquidation price: margin + upl == mm + the closing fee (HELP-LIQ, docs/spec/okx-fidelity.md
    # §11.2.3)
    liq = D(p["liqPx"])
    line = 1080 * liq * D("0.004") + 1080 * liq * D("0.0005")
    assert abs(D("20.29") + 1080 * (liq - D("0.0905")) - line) < D("1e-12")
    assert liq.quantize(D("0.0000001")) == D("0.0720371")  # §11.2.3: OKX's formula, 0.0720370
    # mgnRatio = (margin + upl) / (mm + fee) = 25.15 / 0.4617 (§11.2.3: OKX's formula 54.47)
    assert D(p["mgnRatio"]).quantize(D("0.01")) == D("54.47")


def test_reduce_limit_and_codes() -> None:
    ex = cro_exchange(mechanics=LENIENT)
    # im = 10.26; upl positive: at most 20.29 - 10.26 = 10.03 can go
    with pytest.raises(ExchangeError) as e:
        ex.margin_balance("Wu666666", "CRO-USDT-SWAP", "long", "reduce", D("10.04"))
    assert e.value.code == "59301"
    result, changes = ex.margin_balance("Wu666666", "CRO-USDT-SWAP", "long", "reduce", D("10.03"))
    assert result["amt"] == "10.03" and result["type"] == "reduce"
    assert changes[0].position["margin"] == "10.26"
    assert ex.accounts["Wu666666"].balance == D("1010.03")
    with pytest.raises(ExchangeError) as e:
        ex.margin_balance("Wu666666", "CRO-USDT-SWAP", "short", "add", D("1"))
    assert e.value.code == "59300"
    with pytest.raises(ExchangeError) as e:
        ex.margin_balance("Wu666666", "CRO-USDT-SWAP", "long", "add", D("5000"))
    assert e.value.code == "59200"


def test_loss_counts_against_the_reduce_limit() -> None:
    ex = cro_exchange(mechanics=LENIENT)
    ex.set_mark_price("CRO-USDT-SWAP", D("0.0880"))  # upl = 1080 * -0.0025 = -2.7
    p = the_position(ex)
    im = D(p["notionalUsd"]) / 10
    allowed = D("20.29") - im - D("2.7")
    with pytest.raises(ExchangeError):
        ex.margin_balance("Wu666666", "CRO-USDT-SWAP", "long", "reduce", allowed + D("0.01"))
    ex.margin_balance("Wu666666", "CRO-USDT-SWAP", "long", "reduce", allowed)


def test_utime_strictly_increases() -> None:
    ex = cro_exchange()
    ex._clock_ms = lambda: 5  # a clock that stands still
    before = int(the_position(ex)["uTime"])
    ex.margin_balance("Wu666666", "CRO-USDT-SWAP", "long", "add", D("1"))
    ex.margin_balance("Wu666666", "CRO-USDT-SWAP", "long", "reduce", D("1"))
    assert int(the_position(ex)["uTime"]) == before + 2


def test_mark_move_is_silent_and_keeps_utime() -> None:
    """OKX: no push and no uTime change on a mark move (DOC-POS; CCXT-POS: uTime 462 s older
    than pTime while markPx != avgPx)."""
    ex = cro_exchange()
    before = the_position(ex)
    assert ex.set_mark_price("CRO-USDT-SWAP", D("0.0951")) == []
    after = the_position(ex)
    assert after["uTime"] == before["uTime"] and after["markPx"] == "0.0951"
    assert after["upl"] != before["upl"]


def test_liquidation_closes_and_loses_margin() -> None:
    ex = cro_exchange()
    liq = D(the_position(ex)["liqPx"])
    changes = ex.set_mark_price("CRO-USDT-SWAP", liq.quantize(D("0.0001")) + D("0.0001"))
    assert changes == [] and the_position(ex)["pos"] == "108"
    changes = ex.set_mark_price("CRO-USDT-SWAP", liq.quantize(D("0.0001")))
    assert len(changes) == 1 and changes[0].position["pos"] == "0"
    assert ex.positions("Wu666666") == []
    assert ex.accounts["Wu666666"].balance == D("1000")


def test_short_liquidates_when_price_rises() -> None:
    ex = cro_exchange(side="short")
    assert D(the_position(ex)["upl"]) == D("-4.86")
    liq = D(the_position(ex)["liqPx"])
    assert liq > D("0.095")
    [c] = ex.set_mark_price("CRO-USDT-SWAP", liq + D("0.0001"))
    assert c.position["pos"] == "0"


def test_set_position_open_replace_close() -> None:
    ex = cro_exchange()
    [c] = ex.set_position(
        "Wu666666",
        "CRO-USDT-SWAP",
        "short",
        pos=D("5"),
        avg_px=D("0.1"),
        lever=D("5"),
        margin=D("2"),
    )
    assert c.position["posSide"] == "short" and c.position["pos"] == "5"
    [c2] = ex.set_position(
        "Wu666666",
        "CRO-USDT-SWAP",
        "short",
        pos=D("7"),
        avg_px=D("0.1"),
        lever=D("5"),
        margin=D("3"),
    )
    assert c2.position["posId"] == c.position["posId"] and c2.position["pos"] == "7"
    [c3] = ex.set_position(
        "Wu666666", "CRO-USDT-SWAP", "short", pos=D(0), avg_px=D("0.1"), lever=D("5"), margin=D(0)
    )
    assert c3.position["pos"] == "0"
    assert len(ex.positions("Wu666666")) == 1


def test_fmt_never_uses_exponent() -> None:
    assert fmt(D("1E+2")) == "100"
    assert fmt(D("0.00000001")) == "0.00000001"
    assert fmt(D("20.2900")) == "20.29"
    assert fmt(D("-0")) == "0"


ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "reduce", "mark"]),
        st.decimals(min_value=D("0.01"), max_value=D("50"), places=2),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_margin_conserved_and_reduce_rule_holds(seq: list[tuple[str, D]]) -> None:
    ex = cro_exchange(balance="100", mechanics=LENIENT)
    acct = ex.accounts["Wu666666"]
    total = acct.balance + D("20.29")
    for kind, amt in seq:
        if kind == "mark":
            ex.set_mark_price("CRO-USDT-SWAP", (D("0.07") + amt / 1000).quantize(D("0.0001")))
            if not acct.positions:
                return  # liquidated: margin is lost, nothing left to conserve
            continue
        if not acct.positions:
            return
        try:
            ex.margin_balance("Wu666666", "CRO-USDT-SWAP", "long", kind, amt)  # type: ignore[arg-type]
        except ExchangeError as e:
            assert e.code in ("59301", "59200")
            continue
        [p] = acct.positions.values()
        assert acct.balance + p.margin == total
        assert acct.balance >= 0
        if kind == "reduce":
            m = ex.metrics(p)
            assert p.margin >= m.im + max(D(0), -m.upl)


@settings(max_examples=200, deadline=None)
@given(
    st.decimals(min_value=D("0.01"), max_value=D("0.3"), places=4),
    st.decimals(min_value=D("0.5"), max_value=D("40"), places=2),
    st.sampled_from(["long", "short"]),
)
def test_liquidation_rule(mark: D, margin: D, side: str) -> None:
    ex = cro_exchange(margin=str(margin), side=side)
    if not ex.accounts["Wu666666"].positions:
        return  # seeded already under water
    ex.set_mark_price("CRO-USDT-SWAP", mark)
    qty = D(1080)
    upl = qty * (mark - D("0.0905")) * (1 if side == "long" else -1)
    should_liquidate = margin + upl <= qty * mark * D("0.004")
    assert (not ex.accounts["Wu666666"].positions) == should_liquidate


def test_liquidation_line_includes_the_closing_fee() -> None:
    """Between mm and mm + fee the position is liquidated (it survived there before)."""
    ex = cro_exchange()
    p = ex.accounts["Wu666666"].isolated("CRO-USDT-SWAP", "long")
    assert p is not None
    m = ex.metrics(p)
    assert m.close_fee == D("102.6") * D("0.0005") and m.liq_line == m.mm + m.close_fee
    p.margin = m.mm - m.upl + m.close_fee / 2  # above mm, below mm + fee
    [c] = ex.set_position_state("Wu666666", "CRO-USDT-SWAP", "long", "isolated", close_orders=0)
    assert D(c.position["mgnRatio"]) < 1
    assert ex._liquidate() and ex.positions("Wu666666") == []


def test_mgn_ratio_matches_the_live_eth_record() -> None:
    """JAVA-2025 ETH (docs/spec/okx-fidelity.md §11.2.3): margin 30.11, upl -0.046, mm 1.204216 at
    a 301.054 notional: pushed mgnRatio 22.191662920568692."""
    ex = Exchange.from_scenario(
        scenario_from_dict(
            {
                "instruments": [{"instId": "ETH-USDT-SWAP", "ctVal": "0.1", "markPx": "3010.54"}],
                "accounts": [
                    {
                        "name": "A",
                        "apiKey": "k",
                        "secretKey": "s",
                        "passphrase": "p",
                        "balance": "100",
                        "positions": [
                            {
                                "instId": "ETH-USDT-SWAP",
                                "posSide": "net",
                                "pos": "1",
                                "avgPx": "3011",
                                "lever": "10",
                                "margin": "30.11",
                            }
                        ],
                    }
                ],
            }
        )
    )
    [rec] = ex.positions("A")
    assert (rec["upl"], rec["mmr"]) == ("-0.046", "1.204216")
    assert abs(D(rec["mgnRatio"]) - D("22.191662920568692")) < D("1e-13")  # a double's digits
