"""The reduce limit (59301) as a scenario setting, and estAvailTrans as its exact boundary."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactor.sim.errors import ExchangeError
from reactor.sim.reduce_rule import PositionFacts, ReduceRule, est_avail_trans, required_margin
from tests.sim.test_sim_orders import CRO, W, make

# The seed case: 108 CRO at 10x, avgPx 0.0905, margin 20.29, taker fee 0.05 %.
SEED = {"mark": "0.0950"}


def facts(**kw: str) -> PositionFacts:
    base = {
        "margin": "20",
        "im_mark": "10",
        "im_avg": "9",
        "upl": "0",
        "mm": "0.4",
        "close_fee": "0.05",
    }
    base.update(kw)
    return PositionFacts(**{k: D(v) for k, v in base.items()})


@pytest.mark.parametrize(
    ("rule", "upl", "expected"),
    [
        (ReduceRule.lenient(), "0", "10"),
        (ReduceRule("avgPx", False), "0", "11"),
        (ReduceRule("max", False), "0", "10"),
        (ReduceRule("max", True), "0", "9.95"),  # the default: strictest
        (ReduceRule("max", True, D(3)), "0", "6.95"),
        (ReduceRule.lenient(), "-2", "8"),  # the loss counts
        (ReduceRule.lenient(), "5", "10"),  # profit does not
    ],
)
def test_variants(rule: ReduceRule, upl: str, expected: str) -> None:
    assert est_avail_trans(rule, facts(upl=upl)) == D(expected)


def test_never_into_liquidation_with_a_high_maintenance_tier() -> None:
    # mm above the initial margin (75x, tier mmr 2 %): the mm floor decides
    f = facts(im_mark="1", im_avg="1", mm="2", upl="-0.5", close_fee="0")
    assert required_margin(ReduceRule.lenient(), f) == D("2.5")
    assert est_avail_trans(ReduceRule.lenient(), facts(margin="2", mm="5")) == 0


def test_default_rule_on_the_seed_case() -> None:
    ex, _ = make()
    p = ex.accounts[W].isolated(CRO, "long")
    assert p is not None
    # im at mark 10.26 > at avgPx 9.774; closing fee 102.6 x 0.0005 = 0.0513
    assert ex.est_avail_trans(p) == D("20.29") - D("10.26") - D("0.0513")
    lenient, _ = make(mechanics={"reduce_rule": {"im_basis": "mark", "fee_reserve": False}})
    q = lenient.accounts[W].isolated(CRO, "long")
    assert q is not None and lenient.est_avail_trans(q) == D("10.03")


def test_a_long_in_loss_is_stricter_at_avg_px() -> None:
    kw: dict[str, Any] = {"reduce_rule": {"im_basis": "avgPx", "fee_reserve": False}}
    ex_avg, _ = make(mechanics=kw)
    ex_mark, _ = make(mechanics={"reduce_rule": {"im_basis": "mark", "fee_reserve": False}})
    for ex in (ex_avg, ex_mark):
        ex.set_mark_price(CRO, D("0.0880"))
    pa, pm = ex_avg.accounts[W].isolated(CRO, "long"), ex_mark.accounts[W].isolated(CRO, "long")
    assert pa is not None and pm is not None
    assert ex_avg.est_avail_trans(pa) < ex_mark.est_avail_trans(pm)


@settings(max_examples=300, deadline=None)
@given(
    mark=st.decimals(min_value=D("0.080"), max_value=D("0.110"), places=4),
    basis=st.sampled_from(["mark", "avgPx", "max"]),
    fee_reserve=st.booleans(),
    extra=st.sampled_from(["0", "1.5"]),
    amt=st.decimals(min_value=D("0.01"), max_value=D("25"), places=2),
    side=st.sampled_from(["long", "short"]),
)
def test_est_avail_trans_is_exactly_the_boundary(
    mark: D, basis: str, fee_reserve: bool, extra: str, amt: D, side: str
) -> None:
    rule = {"im_basis": basis, "fee_reserve": fee_reserve, "extra": extra}
    positions = [
        {
            "instId": CRO,
            "posSide": side,
            "pos": "108",
            "avgPx": "0.0905",
            "lever": "10",
            "margin": "20.29",
        }
    ]
    ex, _ = make(mechanics={"reduce_rule": rule}, positions=positions)
    ex.set_mark_price(CRO, mark)
    p = ex.accounts[W].isolated(CRO, side)
    if p is None:
        return  # liquidated by the move
    est = ex.est_avail_trans(p)
    info = ex.adjust_leverage_info(W, CRO, "isolated", p.lever, side)
    assert D(info["estAvailTrans"]) == est
    for probe in (est, est + D("0.00000001")):
        if probe <= 0:
            continue
        fresh, _ = make(mechanics={"reduce_rule": rule}, positions=positions)
        fresh.set_mark_price(CRO, mark)
        try:
            fresh.margin_balance(W, CRO, side, "reduce", probe)
            accepted = True
        except ExchangeError as e:
            assert e.code == "59301"
            accepted = False
        assert accepted == (probe <= est)
    try:
        ex.margin_balance(W, CRO, side, "reduce", amt)
    except ExchangeError as e:
        assert e.code == "59301" and amt > est
    else:
        assert amt <= est
        q = ex.accounts[W].isolated(CRO, side)
        assert q is not None
        assert q.margin >= required_margin(ex.mechanics.rule, ex.facts(q))


def test_adjust_leverage_info_fields() -> None:
    ex, _ = make()
    p = ex.accounts[W].isolated(CRO, "long")
    assert p is not None
    info = ex.adjust_leverage_info(W, CRO, "isolated", D(10), "long")
    assert set(info) == {
        "estAvailQuoteTrans",
        "estAvailTrans",
        "estLiqPx",
        "estMaxAmt",
        "estMgn",
        "estQuoteMaxAmt",
        "estQuoteMgn",
        "existOrd",
        "maxLever",
        "minLever",
    }
    assert info["estMgn"] == "10.26" and info["existOrd"] is False
    assert info["estLiqPx"] == ex.position_dict(W, p)["liqPx"]
    # estMaxAmt: contracts the balance opens at 10x with the fee: 1000 / (0.95 x 0.1005)
    assert info["estMaxAmt"] == "10473"
    # a lower leverage needs more margin: less can leave
    assert D(ex.adjust_leverage_info(W, CRO, "isolated", D(5), "long")["estAvailTrans"]) == 0
    # raising the leverage of an isolated position: "not applicable" (DOC-TA)
    assert ex.adjust_leverage_info(W, CRO, "isolated", D(20), "long")["estAvailTrans"] == ""
    assert ex.adjust_leverage_info(W, CRO, "cross", D(10), "long")["estAvailTrans"] == "1000"
    for args, code in (
        (("NOPE", "isolated", D(10), "long"), "51001"),
        ((CRO, "isolated", D(0), "long"), "51000"),
    ):
        with pytest.raises(ExchangeError) as e:
            ex.adjust_leverage_info(W, *args)  # type: ignore[arg-type]
        assert e.value.code == code
