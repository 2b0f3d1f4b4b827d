"""The simulated desk's decisions and schedule (sans-I/O, fake clock), and its fills over the
wire: an ``orders`` push tagged ``maint`` and a ``positions`` event, like a REST order."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest
import websockets
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from okx.websocket.WsUtils import initLoginParams

from reactor.sim.desk import Desk
from reactor.sim.exchange import Exchange
from reactor.sim.scenario import DeskSpec, ScenarioError, scenario_from_dict
from tests.conftest import SCENARIOS, SimFactory

DEMO = yaml.safe_load((SCENARIOS / "demo.yaml").read_text())


def demo_exchange() -> Exchange:
    return Exchange.from_scenario(scenario_from_dict(DEMO))


def spec(**kw: Any) -> DeskSpec:
    return DeskSpec(**{"interval_s": 10.0, "seed": 7, **kw})


# ---- schedule ---------------------------------------------------------------------------------


def test_first_order_after_one_interval_then_one_per_interval() -> None:
    desk = Desk(demo_exchange(), spec(), now=100.0)
    assert desk.due_in(100.0) == 10.0
    assert desk.poll(109.99) is None
    assert desk.poll(110.0) is not None
    assert desk.poll(110.5) is None and desk.due_in(110.5) == pytest.approx(9.5)
    # A late loop (the process was stopped for a minute) places one order, not six.
    assert desk.poll(175.0) is not None
    assert desk.poll(175.0) is None and desk.next_at == 185.0


def test_first_after_overrides_the_first_wait() -> None:
    desk = Desk(demo_exchange(), spec(first_after_s=2.0), now=0.0)
    assert desk.poll(1.9) is None and desk.poll(2.0) is not None and desk.next_at == 12.0


# ---- decisions --------------------------------------------------------------------------------


def _run(desk: Desk, ex: Exchange, n: int) -> list[tuple[Any, Decimal, Decimal]]:
    """n decisions, each placed; (order, |pos| before, |pos| after)."""
    out = []
    for _ in range(n):
        order = desk.decide()
        assert order is not None
        req = order.request
        p = ex.accounts[order.account].positions[(req.inst_id, req.pos_side, "isolated")]
        before = abs(p.pos)
        try:
            ex.place_order(order.account, req)
        except Exception as exc:
            assert getattr(exc, "code", None) == "51008", exc
        out.append((order, before, abs(p.pos)))
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), share=st.floats(0, 1))
def test_every_order_is_a_fill_on_an_open_isolated_desk_position(seed: int, share: float) -> None:
    ex = demo_exchange()
    first = {(a.name, k): abs(p.pos) for a in ex.accounts.values() for k, p in a.positions.items()}
    desk = Desk(ex, spec(seed=seed, maint_share=share), now=0.0)
    ids = set()
    for order, before, after in _run(desk, ex, 40):
        req = order.request
        assert not ex.accounts[order.account].main
        assert (req.td_mode, req.ord_type, req.px) == ("isolated", "market", None)
        lot = ex.instruments[req.inst_id].lot_sz
        assert req.sz >= lot and req.sz % lot == 0
        increasing = (req.side == "buy") == (req.pos_side == "long")
        if order.maintenance:
            assert req.tag == "maint" and increasing
        else:
            assert req.tag == ""
            if not increasing:
                assert req.sz < before  # a plain reduce never closes the position
        assert after > 0
        # Bounded: a position past max_growth x its first size only shrinks.
        base = first[(order.account, (req.inst_id, req.pos_side, "isolated"))]
        assert after <= base * 3 + req.sz
        ids.add(req.cl_ord_id)
    assert len(ids) == 40  # clOrdId unique (OKX refuses a duplicate with 51016)


def test_maint_share_sets_how_many_are_tagged() -> None:
    for share, expect in ((1.0, 40), (0.0, 0)):
        ex = demo_exchange()
        orders = _run(Desk(ex, spec(maint_share=share), now=0.0), ex, 40)
        assert sum(o.maintenance for o, _, _ in orders) == expect
    ex = demo_exchange()
    orders = _run(Desk(ex, spec(maint_share=0.8, seed=3), now=0.0), ex, 200)
    tagged = sum(o.maintenance for o, _, _ in orders)
    assert 120 <= tagged <= 190  # mostly maintenance; grown positions get plain reduces


def test_same_seed_same_orders() -> None:
    def orders(seed: int) -> list[Any]:
        ex = demo_exchange()
        return [o.request for o, _, _ in _run(Desk(ex, spec(seed=seed), now=0.0), ex, 20)]

    assert orders(11) == orders(11)
    assert orders(11) != orders(12)


def test_accounts_limit_the_desk_and_no_open_position_means_no_order() -> None:
    ex = demo_exchange()
    desk = Desk(ex, spec(accounts=["Li888888"]), now=0.0)
    assert {o.account for o, _, _ in _run(desk, ex, 15)} == {"Li888888"}
    ex.accounts["Li888888"].positions.clear()
    assert desk.decide() is None


def test_sizes_are_a_share_of_the_first_seen_size() -> None:
    ex = demo_exchange()
    desk = Desk(ex, spec(accounts=["Wu666666"], size_pct=(20, 20), maint_share=1.0), now=0.0)
    cro = [o for o, _, _ in _run(desk, ex, 20) if o.request.inst_id == "CRO-USDT-SWAP"]
    assert cro and {o.request.sz for o in cro} == {Decimal(21)}  # 20 % of 108, whole lots


def test_scenario_desk_block_is_validated() -> None:
    with pytest.raises(ScenarioError, match=r"desk\.accounts"):
        scenario_from_dict({**DEMO, "desk": {"accounts": ["nobody"]}})
    with pytest.raises(ScenarioError, match="size_pct"):
        scenario_from_dict({**DEMO, "desk": {"size_pct": [30, 10]}})
    with pytest.raises(ScenarioError, match="tag"):
        scenario_from_dict({**DEMO, "desk": {"tag": "not a tag"}})
    assert scenario_from_dict(DEMO).desk is not None  # the demo book runs a desk


# ---- over the wire ----------------------------------------------------------------------------


async def test_desk_fill_pushes_orders_and_positions_event(sim_factory: SimFactory) -> None:
    raw = yaml.safe_load((SCENARIOS / "cro.yaml").read_text())
    raw["desk"] = {"interval_s": 600, "first_after_s": 1.0, "maint_share": 1, "seed": 1}
    sim = await sim_factory(raw, price_walk=False)
    acct = sim.exchange.accounts["Wu666666"]
    async with websockets.connect(sim.ws_url) as ws:
        await ws.send(initLoginParams(False, acct.api_key, acct.passphrase, acct.secret))
        args = [
            {"channel": "orders", "instType": "SWAP"},
            {"channel": "positions", "instType": "SWAP"},
        ]
        await ws.send(json.dumps({"op": "subscribe", "args": args}))
        orders = await _until(ws, lambda m: _channel(m) == "orders" and "data" in m)
        [o] = orders["data"]
        assert (o["tag"], o["state"], o["side"], o["posSide"]) == ("maint", "filled", "buy", "long")
        assert o["clOrdId"] == "desk1" and Decimal(o["fillSz"]) >= 1
        event = await _until(
            ws, lambda m: _channel(m) == "positions" and m.get("eventType") == "event_update"
        )
        [p] = event["data"]
        assert p["tradeId"] == o["tradeId"]
        assert Decimal(p["margin"]) > Decimal("20.29")  # the fill's initial margin was added
    bills = acct.bills.query({"type": "2"}, sim.exchange.now_ms())
    assert [b["tag"] for b in bills] == ["maint"]


def _channel(m: dict[str, Any]) -> str | None:
    arg = m.get("arg")
    return arg.get("channel") if isinstance(arg, dict) else None


async def _until(ws: Any, pred: Any) -> dict[str, Any]:
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if pred(m):
            return m  # type: ignore[no-any-return]


async def test_simulator_desk_switch(sim_factory: SimFactory) -> None:
    assert (await sim_factory(DEMO, price_walk=False)).desk is not None  # the scenario's
    assert (await sim_factory(DEMO, price_walk=False, desk=False)).desk is None
    cro = yaml.safe_load((SCENARIOS / "cro.yaml").read_text())
    assert (await sim_factory(cro, price_walk=False)).desk is None
    on = await sim_factory(cro, price_walk=False, desk=True)  # defaults without a section
    assert on.desk is not None and on.desk.spec == DeskSpec() and on.desk.accounts == ["Wu666666"]
