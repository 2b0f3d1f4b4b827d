"""``reactor plan``'s pure core: its rows are the engine's decision (``decide``) and gates."""

from __future__ import annotations

import io
from decimal import Decimal

from hypothesis import given, settings

from reactor.cli.plan import plan_rows, render
from reactor.domain.policy import ActionKind, PolicyConfig, decide
from reactor.okx.models import Position
from tests.domain.factories import CFG, D, position
from tests.domain.test_policy_properties import configs, counts, states


@settings(max_examples=200, deadline=None)
@given(states(), configs, counts)
def test_a_managed_row_is_decide_itself(
    state: tuple[Position, Decimal], cfg: PolicyConfig, count: int
) -> None:
    pos, ct_val = state
    (row,) = plan_rows([pos], {pos.account: "sub"}, {pos.inst_id: ct_val}, lambda p: count, cfg)
    action = decide(pos, ct_val, count, cfg)
    assert (row.action, row.reason, row.count) == (action.kind.value, action.reason, count)
    assert (row.target, row.band, row.floor) == (action.target, action.band, action.floor)
    moving = action.kind in (ActionKind.ADD, ActionKind.REDUCE)
    assert row.amount == (action.amount if moving else None)


def test_gates_before_the_decision() -> None:
    sub = position(account="s")
    main = position(account="m")
    cross = position(account="s", inst_id="DOGE-USDT-SWAP", mgn_mode="cross")
    paused = position(account="s", inst_id="BTC-USDT-SWAP")
    unlisted = position(account="s", inst_id="NEW-USDT-SWAP")
    ct = {p.inst_id: D("10") for p in (sub, cross, paused)}
    rows = plan_rows(
        [unlisted, paused, cross, main, sub],
        {"s": "sub", "m": "main"},
        ct,
        lambda p: 0,
        CFG,
        lambda a, i, s: "desk" if i == "BTC-USDT-SWAP" else None,
    )
    got = {(r.account, r.inst_id): (r.action, r.reason) for r in rows}
    assert got[("m", sub.inst_id)] == ("skip", "read-only account")
    assert got[("s", "DOGE-USDT-SWAP")] == ("skip", "cross DOGE-USDT-SWAP")
    assert got[("s", "BTC-USDT-SWAP")] == ("paused", "paused: desk")
    assert got[("s", "NEW-USDT-SWAP")] == ("skip", "instrument not listed (no ctVal)")
    assert got[("s", sub.inst_id)][0] == "reduce"
    out = io.StringIO()
    render(rows, out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == [
        *("account", "instId", "posSide", "pos", "margin", "count"),
        *("target", "band", "floor", "action", "amount", "reason"),
    ]
    assert lines[-1] == "5 positions, 1 would be corrected now"


def test_exchange_limit_caps_a_reduce_like_the_engine() -> None:
    from reactor.cli.plan import apply_exchange_limit

    (row,) = plan_rows([position()], {"sub1": "sub"}, {"CRO-USDT-SWAP": D("10")}, lambda p: 0, CFG)
    assert (row.action, row.amount) == ("reduce", D("10.03"))
    assert apply_exchange_limit(row, D("20"), CFG) == row
    capped = apply_exchange_limit(row, D("7.129"), CFG)
    assert (capped.action, capped.amount) == ("reduce", D("7.12"))
    assert capped.reason.endswith("capped by estAvailTrans 7.129")
    tiny = apply_exchange_limit(row, D("0.05"), CFG)
    assert (tiny.action, tiny.amount) == ("blocked", None)
    assert tiny.reason == "exchange_limit: estAvailTrans 0.05 < min_action"
    unknown = apply_exchange_limit(row, None, CFG)
    assert (unknown.action, unknown.reason) == ("blocked", "estAvailTrans unreadable")
