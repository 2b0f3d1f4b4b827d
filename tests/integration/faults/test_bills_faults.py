"""Over real sockets: reduces capped by OKX's estAvailTrans, and ambiguous answers
resolved from the bills OKX booked (with the simulator's bills and adjust-leverage-info)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from reactor.okx.endpoints import ADJUST_LEVERAGE_INFO, BILLS, MARGIN_BALANCE
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

W = "Wu666666"
CRO_KEY = (W, "CRO-USDT-SWAP", "long")
MARGIN_PATH = MARGIN_BALANCE
BILLS_PATH = BILLS
ALI_PATH = ADJUST_LEVERAGE_INFO


async def test_a_504_after_the_exchange_applied_is_resolved_by_the_bill(
    tmp_path, monkeypatch, sim_factory
):
    """A bare gateway 504 on POST margin-balance after the backend moved the margin: ambiguous,
    never resent; the bill OKX booked says it was applied and is journalled with the call."""
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro()]))
    )
    await admin.fault(
        kind="rest_gateway", account=W, path=MARGIN_PATH, status=504, body="html", applied=True
    )
    clock = Stopwatch()
    async with running(cfg) as (rt, logs):
        await wait_for(lambda: logs.events("margin.adjust.resolved"), timeout_s=20)
        report("504 applied: to resolved by bill", clock())
        await asyncio.sleep(0.6)
        calls = await admin.margin_calls()
        journal = rt.ledger.journal()
    assert codes(calls) == ["504"]  # one call, never resent
    unknown = logs.events("margin.adjust.unknown")
    assert unknown and unknown[0]["code"] == "504"
    resolved = logs.events("margin.adjust.resolved")[0]
    assert (resolved["outcome"], resolved["resolved_by"]) == ("applied", "bill")
    [bill] = tap.sim.exchange.bills(W, {"type": "6"})
    assert resolved["bill_id"] == bill["billId"] and bill["sz"] == "9.97"
    assert [(e.status, e.bill_id) for e in journal] == [("ok", bill["billId"])]
    assert in_band(tap.margin(*CRO_KEY))
    tap.assert_no_double_application(logs)
    tap.assert_conserved()


async def test_a_502_that_moved_nothing_is_decided_by_the_margin_after_two_bill_reads(
    tmp_path, monkeypatch, sim_factory
):
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro()]))
    )
    await admin.fault(kind="rest_gateway", account=W, path=MARGIN_PATH, status=502, body="json")
    async with running(cfg) as (_, logs):
        await wait_for(lambda: in_band(tap.margin(*CRO_KEY)), timeout_s=20)
        await asyncio.sleep(0.6)
        calls = await admin.margin_calls()
        bill_reads = await admin.requests(BILLS_PATH)
    resolved = logs.events("margin.adjust.resolved")[0]
    assert (resolved["outcome"], resolved["resolved_by"]) == ("not_applied", "margin")
    assert "no matching bill" in resolved["bills"]
    assert len([r for r in bill_reads if "subType=161" in r["path"]]) == 2  # read, settle, read
    assert codes(calls) == ["502", "0"]  # corrected once it was known nothing moved
    assert len(tap.applied) == 1
    tap.assert_no_double_application(logs)
    tap.assert_conserved()


async def test_bills_unreadable_fall_back_to_the_margin_and_say_so(
    tmp_path, monkeypatch, sim_factory
):
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro()]))
    )
    await admin.fault(kind="rest_delay", account=W, path=MARGIN_PATH, delay_s=None)
    await admin.fault(kind="rest_error", account=W, path=BILLS_PATH, code="50011", count=20)
    async with running(cfg) as (_, logs):
        await wait_for(lambda: logs.events("margin.adjust.resolved"), timeout_s=20)
        await asyncio.sleep(0.6)
        calls = await admin.margin_calls()
    resolved = logs.events("margin.adjust.resolved")[0]
    assert (resolved["outcome"], resolved["resolved_by"]) == ("applied", "margin")
    assert resolved["bills"].startswith("bills unreadable")
    assert len(calls) == 1 and in_band(tap.margin(*CRO_KEY))
    tap.assert_no_double_application(logs)
    tap.assert_conserved()


async def test_no_reduce_while_est_avail_trans_cannot_be_read(tmp_path, monkeypatch, sim_factory):
    """adjust-leverage-info failing (50013 past the GET retries), then silent past the request
    timeout: nothing is sent; once it answers, one reduce of OKX's number."""
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro()]))
    )
    await admin.fault(kind="rest_error", account=W, path=ALI_PATH, code="50013", count=3)
    await admin.fault(kind="rest_delay", account=W, path=ALI_PATH, delay_s=None, count=3)
    async with running(cfg) as (_, logs):
        await wait_for(lambda: len(logs.events("margin.reduce.check_failed")) >= 2, timeout_s=30)
        assert await admin.margin_calls() == []
        await wait_for(lambda: in_band(tap.margin(*CRO_KEY)), timeout_s=30)
        await asyncio.sleep(0.4)
        calls = await admin.margin_calls()
    assert [json.loads(c["body"])["amt"] for c in calls] == ["9.97"]
    assert codes(calls) == ["0"]
    assert logs.events("margin.adjust.retry")
    tap.assert_conserved()


async def test_est_avail_trans_below_min_action_blocks_without_a_call(
    tmp_path, monkeypatch, sim_factory
):
    # A long deep in loss (mark 0.0711 < avgPx 0.0905): the reactor's floor (im at mark 7.6788
    # + loss 20.952 = 28.6308) allows 2.16 of 30.80 - at least min_blocked_reduce, so the
    # policy asks; OKX's strictest rule (im at avgPx 9.774 + loss + the closing fee 0.038394 =
    # 30.764394) allows 0.035606, less than min_action 0.1.
    scen = scenario(account(W, 1, [cro(margin="30.80")]))
    scen["instruments"][0]["markPx"] = "0.0711"
    _, admin, cfg, tap = await setup(tmp_path, monkeypatch, sim_factory, scen)
    async with running(cfg) as (rt, logs):
        control = lambda: rt.engine.core.control((*CRO_KEY, "isolated"))  # noqa: E731
        await wait_for(lambda: control() and control().reason.startswith("exchange_limit"))
        await asyncio.sleep(1.0)
        calls = await admin.margin_calls()
        assert control().status == "blocked"
        rows = rt.engine.view().accounts[0].positions
    assert [(r.status, r.reason.split(":")[0]) for r in rows] == [("blocked", "exchange_limit")]
    assert calls == []
    capped = logs.events("margin.adjust.capped")
    assert capped and Decimal(capped[0]["capped"]) < Decimal("0.1")
    assert Decimal(capped[0]["est_avail"]) == Decimal("0.035606")
    assert tap.margin(*CRO_KEY) == Decimal("30.80")
