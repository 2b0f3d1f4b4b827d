"""The reactor against the simulator's default, strictest reduce rule (initial margin at
max(mark, avgPx) + the closing taker fee), and a maintenance bought with a real order.

These record how the reactor behaves once the simulator is faithful (calls, 59301s, time to
band; printed as FAULT-METRIC lines with ``pytest -s``). Since reduces are capped by OKX's
``estAvailTrans`` the acceptance cases get no 59301; and whatever the sizing, every
59301 is followed by a smaller reduce, money is conserved and nothing is applied twice.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from tests.engine.harness import running, wait_for
from tests.integration.faults.common import (
    Stopwatch,
    account,
    codes,
    cro,
    in_band,
    report,
    scenario,
    setup,
)
from tests.sim.helpers import signed

W = "Wu666666"
CRO_KEY = (W, "CRO-USDT-SWAP", "long")
STRICTEST = {"im_basis": "max", "fee_reserve": True}


def _halving_after_59301(calls: list[dict[str, str]]) -> None:
    amounts = [Decimal(json.loads(c["body"])["amt"]) for c in calls]
    pairs = zip(amounts, codes(calls), strict=True)
    for (prev, code), nxt in zip(pairs, amounts[1:], strict=False):
        if code == "59301":
            assert nxt < prev


async def test_seed_case_under_the_strictest_rule(tmp_path, monkeypatch, sim_factory):
    _, admin, cfg, tap = await setup(
        tmp_path,
        monkeypatch,
        sim_factory,
        scenario(account(W, 1, [cro()]), reduce_rule=STRICTEST),
    )
    clock = Stopwatch()
    async with running(cfg):
        await wait_for(lambda: in_band(tap.margin(*CRO_KEY)), timeout_s=30)
        report("strictest rule: seed case until in band", clock())
        await asyncio.sleep(0.5)
        calls = await admin.margin_calls()
    refused = codes(calls).count("59301")
    print(f"\nFAULT-METRIC strictest seed case: {len(calls)} calls, {refused} x 59301")
    # Sized by OKX's estAvailTrans (9.9787): one call of 9.97, no 59301 (before the cap:
    # 12 calls, 6 x 59301).
    assert [json.loads(c["body"])["amt"] for c in calls] == ["9.97"] and refused == 0
    _halving_after_59301(calls)
    assert tap.margin(*CRO_KEY) is not None
    tap.assert_conserved()


async def test_loss_case_under_the_strictest_rule(tmp_path, monkeypatch, sim_factory):
    scen = scenario(account(W, 1, [cro()]), reduce_rule=STRICTEST)
    scen["instruments"][0]["markPx"] = "0.0850"  # upl -5.94: the reactor's floor is 15.12
    _, admin, cfg, tap = await setup(tmp_path, monkeypatch, sim_factory, scen, cooldown_s=0.3)
    async with running(cfg) as (_, logs):
        await wait_for(lambda: logs.events("margin.target.blocked"), timeout_s=30)
        await asyncio.sleep(1.0)
        calls = await admin.margin_calls()
        margin = tap.margin(*CRO_KEY)
    refused = codes(calls).count("59301")
    reasons = sorted({e["reason"].split(":")[0] for e in logs.events("margin.target.blocked")})
    print(
        f"\nFAULT-METRIC strictest loss case: {len(calls)} calls, {refused} x 59301, "
        f"margin {margin}, blocked {reasons}"
    )
    # OKX allows 4.5301 where the reactor's floor would take 5.17: one call, no 59301 (before
    # the cap: 7 calls, 4 x 59301).
    assert refused == 0 and len(calls) == 1
    _halving_after_59301(calls)
    assert margin is not None and margin >= Decimal("15.12")
    tap.assert_conserved()


async def test_maintenance_bought_with_a_real_order(tmp_path, monkeypatch, sim_factory):
    """The desk's maintenance as OKX applies it: a market buy on the isolated position adds
    its initial margin, the reactor sees the event push and corrects (count 0: target 10)."""
    sim, admin, cfg, tap = await setup(
        tmp_path,
        monkeypatch,
        sim_factory,
        scenario(account(W, 1, [cro(margin="10.2")]), reduce_rule=STRICTEST),
    )
    acct = sim.exchange.accounts[W]
    body = {
        "instId": "CRO-USDT-SWAP",
        "tdMode": "isolated",
        "side": "buy",
        "posSide": "long",
        "ordType": "market",
        "sz": "108",
        "clOrdId": "maint1",
    }
    async with running(cfg) as (_, logs):
        await wait_for(lambda: logs.events("book.snapshot"))
        r = await signed(
            sim.url,
            "POST",
            "/api/v5/trade/order",
            json.dumps(body),
            key=acct.api_key,
            secret=acct.secret,
            passphrase=acct.passphrase,
        )
        assert r.json()["code"] == "0", r.json()
        [bill] = sim.exchange.bills(W, {"type": "2"})
        assert (bill["subType"], bill["posBalChg"], bill["posBal"]) == ("3", "10.26", "20.46")
        clock = Stopwatch()
        await wait_for(
            lambda: in_band(tap.margin(*CRO_KEY)) or logs.events("margin.target.blocked"),
            timeout_s=30,
        )
        report("strictest rule: maintenance fill until settled", clock())
        await asyncio.sleep(0.5)
        calls = await admin.margin_calls()
        margin = tap.margin(*CRO_KEY)
    refused = codes(calls).count("59301")
    blocked = [e["reason"] for e in logs.events("margin.target.blocked")]
    print(
        f"\nFAULT-METRIC strictest maintenance fill: {len(calls)} calls, {refused} x 59301, "
        f"margin {margin}, blocked {blocked}"
    )
    _halving_after_59301(calls)
    assert margin is not None
    tap.assert_conserved()
