"""REST faults against the real reactor and the simulator: rate limits, timeouts, never
answered calls, a stricter exchange, and every OKX error class the engine reads."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from tests.engine.harness import running, wait_for
from tests.integration.faults.common import (
    MARGIN_PATH,
    POSITIONS_PATH,
    Stopwatch,
    account,
    codes,
    cro,
    doge,
    in_band,
    report,
    scenario,
    setup,
)

W = "Wu666666"
CRO_KEY = (W, "CRO-USDT-SWAP", "long")


async def test_50011_on_the_next_three_calls(tmp_path, monkeypatch, sim_factory):
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro()]))
    )
    await admin.fault(kind="rest_error", account=W, path=MARGIN_PATH, code="50011", count=3)
    clock = Stopwatch()
    async with running(cfg) as (_, logs):
        await wait_for(lambda: in_band(tap.margin(*CRO_KEY)))
        report("50011x3 until in band", clock())
        await asyncio.sleep(0.4)
        calls = await admin.margin_calls()
    assert codes(calls) == ["50011", "50011", "50011", "0"]
    assert len({c["body"] for c in calls}) == 1  # nothing applied: the same correction, later
    retries = logs.events("margin.adjust.retry")
    assert [r["failures"] for r in retries] == [1, 2, 3]
    delays = [r["delay_s"] for r in retries]
    assert delays == sorted(delays) and delays[0] < delays[-1]  # backoff grows
    assert len(tap.applied) == 1
    tap.assert_no_double_application(logs)
    tap.assert_no_avoidable_59301()
    tap.assert_conserved()


async def test_applied_but_answered_after_the_timeout(tmp_path, monkeypatch, sim_factory):
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro()]))
    )
    await admin.fault(kind="rest_delay", account=W, path=MARGIN_PATH, delay_s=2.5)
    clock = Stopwatch()
    async with running(cfg) as (rt, logs):
        await wait_for(lambda: logs.events("margin.adjust.resolved"))
        report("late answer: timeout to resolved", clock())
        await asyncio.sleep(0.5)
        calls = await admin.margin_calls()
        reads = await admin.requests(POSITIONS_PATH)
        journal = rt.ledger.journal()
    assert len(calls) == 1  # never resent
    assert in_band(tap.margin(*CRO_KEY))
    resolved = logs.events("margin.adjust.resolved")[0]
    assert resolved["outcome"] == "applied"
    assert logs.events("margin.adjust.unknown")
    assert any("instId=CRO-USDT-SWAP" in r["path"] for r in reads)  # re-read before anything
    # What OKX booked decided it: the bill is journalled with the call, which is now "ok".
    assert resolved["resolved_by"] == "bill"
    assert [(e.status, e.bill_id) for e in journal] == [("ok", resolved["bill_id"])]
    [bill] = [b for b in tap.sim.exchange.bills(W, {"type": "6"})]
    assert bill["billId"] == resolved["bill_id"] and bill["subType"] == "161"
    tap.assert_no_double_application(logs)
    tap.assert_conserved()


async def test_margin_call_never_answered(tmp_path, monkeypatch, sim_factory):
    _, admin, cfg, tap = await setup(
        tmp_path,
        monkeypatch,
        sim_factory,
        scenario(account(W, 1, [cro(), doge(margin="12")])),
    )
    await admin.fault(kind="rest_delay", account=W, path=MARGIN_PATH, delay_s=None)
    async with running(cfg) as (rt, logs):
        await wait_for(lambda: len(logs.events("margin.adjust.resolved")) >= 1)
        await wait_for(
            lambda: (
                in_band(tap.margin(*CRO_KEY)) and in_band(tap.margin(W, "DOGE-USDT-SWAP", "short"))
            )
        )
        await asyncio.sleep(0.5)
        calls = await admin.margin_calls()
        journal = rt.ledger.journal()
    assert len(calls) == 2  # one per position: the unanswered one was not resent
    # The unanswered call's bill showed it applied: both journal rows are "ok", the resolved
    # one with its bill (an answered call's bill is credited by the next interval's bills read).
    assert sorted(e.status for e in journal) == ["ok", "ok"]
    resolved = logs.events("margin.adjust.resolved")[0]
    assert (resolved["outcome"], resolved["resolved_by"]) == ("applied", "bill")
    assert [e.bill_id for e in journal if e.bill_id] == [resolved["bill_id"]]
    tap.assert_no_double_application(logs)
    tap.assert_conserved()


async def test_a_stricter_exchange_is_met_by_its_own_number(tmp_path, monkeypatch, sim_factory):
    """An exchange stricter than the reactor's model by 3 USDT (a scenario switch): the reduce is
    sized by OKX's estAvailTrans, so no 59301 comes back; what the exchange will not release is
    blocked "exchange_limit", with no retry loop. (Before the estAvailTrans cap: a run of 59301
    answers and halved steps down to the minimum.)"""
    _, admin, cfg, tap = await setup(
        tmp_path,
        monkeypatch,
        sim_factory,
        scenario(
            account(W, 1, [cro()]),
            reduce_rule={"im_basis": "mark", "fee_reserve": False, "extra": "3"},
        ),
    )
    async with running(cfg) as (_, logs):
        await wait_for(lambda: logs.events("margin.adjust.ok"), timeout_s=20)
        await wait_for(
            lambda: any(
                "exchange_limit" in e["reason"] for e in logs.events("margin.target.blocked")
            ),
            timeout_s=20,
        )
        n = len(await admin.margin_calls())
        await asyncio.sleep(0.8)
        calls = await admin.margin_calls()
    assert len(calls) == n == 1  # blocked: no retry loop
    assert codes(calls) == ["0"]
    assert not logs.events("margin.step.halved")
    margin = tap.margin(*CRO_KEY)
    # Exactly the exchange's real limit (im 10.26 + 3).
    assert margin == Decimal("13.26")
    tap.assert_no_double_application(logs)
    tap.assert_conserved()


async def test_transient_errors_retry_with_backoff(tmp_path, monkeypatch, sim_factory):
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro()]))
    )
    for code in ("50013", "50026", "502"):
        await admin.fault(kind="rest_error", account=W, path=MARGIN_PATH, code=code)
    async with running(cfg) as (_, logs):
        await wait_for(lambda: in_band(tap.margin(*CRO_KEY)))
        await asyncio.sleep(0.3)
        calls = await admin.margin_calls()
        reads = await admin.requests(POSITIONS_PATH + "?instType=SWAP&instId=")
    # The faults are taken in order of the calls: two business errors then a bare 5xx.
    assert codes(calls) == ["50013", "50026", "502", "0"]
    assert [r["failures"] for r in logs.events("margin.adjust.retry")] == [1, 2, 3]
    assert reads  # a gateway 5xx does not say "not applied": the position was re-read first
    tap.assert_no_double_application(logs)


async def test_50102_resyncs_the_clock(tmp_path, monkeypatch, sim_factory):
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro()]))
    )
    await admin.fault(kind="rest_error", account=W, path=MARGIN_PATH, code="50102")
    async with running(cfg) as (_, logs):
        await wait_for(lambda: in_band(tap.margin(*CRO_KEY)))
        calls = await admin.margin_calls()
    assert codes(calls) == ["50102", "0"]
    assert logs.events("rest.clock.synced")


async def test_auth_error_stops_the_account(tmp_path, monkeypatch, sim_factory):
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro(), doge(margin="12")]))
    )
    await admin.fault(kind="rest_error", account=W, path=MARGIN_PATH, code="50113", count=2)
    async with running(cfg) as (rt, logs):
        await wait_for(lambda: logs.events("account.stopped"))
        # The next regular snapshot (0.5 s here) carries the move: still nothing is sent.
        await admin.mark_price("CRO-USDT-SWAP", "0.0960")
        await asyncio.sleep(0.6)
        calls = await admin.margin_calls()
        status = rt.status_snapshot()
    # Both positions' calls may have been in flight together; none is sent after the stop.
    assert set(codes(calls)) == {"50113"} and len(calls) <= 2
    events = [e["event"] for e in logs.events()]
    assert "margin.adjust.sent" not in events[events.index("account.stopped") :]
    assert status.accounts[0].stopped_reason == "auth error 50113"
    assert tap.applied == []


async def test_59300_refreshes_the_book(tmp_path, monkeypatch, sim_factory):
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro()]))
    )
    await admin.fault(kind="rest_error", account=W, path=MARGIN_PATH, code="59300")
    async with running(cfg) as (_, logs):
        await wait_for(lambda: in_band(tap.margin(*CRO_KEY)))
        calls = await admin.margin_calls()
    assert codes(calls) == ["59300", "0"]
    assert [e["trigger"] for e in logs.events("book.reconciled")].count("59300") == 1


async def test_51000_alerts_and_never_loops(tmp_path, monkeypatch, sim_factory):
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro()]))
    )
    await admin.fault(kind="rest_error", account=W, path=MARGIN_PATH, code="51000")
    async with running(cfg) as (_, logs):
        await wait_for(lambda: logs.events("margin.adjust.held"))
        for px in ("0.0951", "0.0952", "0.0950"):  # price moves do not end a 51000 hold
            await admin.mark_price("CRO-USDT-SWAP", px)
            await asyncio.sleep(0.6)  # each reaches the reactor in a regular snapshot
        assert codes(await admin.margin_calls()) == ["51000"]
        # A real change of the position (a fill) is a new decision.
        await admin.set_position(
            account=W,
            instId="CRO-USDT-SWAP",
            posSide="long",
            pos="108",
            avgPx="0.0905",
            lever="10",
            margin="20.30",
        )
        await wait_for(lambda: in_band(tap.margin(*CRO_KEY)))
        calls = await admin.margin_calls()
    assert codes(calls) == ["51000", "0"]
    failed = logs.events("margin.adjust.failed")
    assert failed[0]["level"] == "error" and failed[0]["code"] == "51000"


async def test_59200_waits_for_balance(tmp_path, monkeypatch, sim_factory):
    scen = scenario(account(W, 1, [doge(margin="2")], balance="1"))
    _, admin, cfg, tap = await setup(tmp_path, monkeypatch, sim_factory, scen)
    async with running(cfg) as (_, logs):
        await wait_for(lambda: len(logs.events("margin.adjust.retry")) >= 2)
        assert all(c == "59200" for c in codes(await admin.margin_calls()))
        # Another position gets reduced: balance freed, the add goes through at once.
        await admin.set_position(
            account=W,
            instId="CRO-USDT-SWAP",
            posSide="long",
            pos="108",
            avgPx="0.0905",
            lever="10",
            margin="20.29",
        )
        await wait_for(lambda: in_band(tap.margin(W, "DOGE-USDT-SWAP", "short")))
        calls = await admin.margin_calls()
    assert codes(calls)[-2:] == ["0", "0"]
    retries = [r for r in logs.events("margin.adjust.retry") if r["code"] == "59200"]
    assert [r["failures"] for r in retries] == list(range(1, len(retries) + 1))
    tap.assert_no_double_application(logs)


async def test_hourly_ceiling_stops_the_account_and_survives_restart(
    tmp_path, monkeypatch, sim_factory
):
    scen = scenario(account(W, 1, [cro(), cro(side="short", margin="15.0")]))
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scen, policy={"max_moved_per_hour": "15"}
    )
    async with running(cfg) as (_, logs):
        # One correction moves 9.97 (estAvailTrans-capped); the next one would pass 15.
        await wait_for(lambda: logs.events("margin.adjust.ok"))
        await admin.set_position(
            account=W,
            instId="CRO-USDT-SWAP",
            posSide="short",
            pos="108",
            avgPx="0.0905",
            lever="10",
            margin="20.29",
        )
        await wait_for(lambda: logs.events("margin.guard.tripped"))
        await asyncio.sleep(0.3)
        assert len(await admin.margin_calls()) == 1
    # A restart (e.g. a crash loop under systemd) must not reset the ceiling.
    await admin.set_position(
        account=W,
        instId="CRO-USDT-SWAP",
        posSide="long",
        pos="108",
        avgPx="0.0905",
        lever="10",
        margin="20.29",
    )
    async with running(cfg) as (_, logs):
        await wait_for(lambda: logs.events("margin.guard.tripped"))
        seeded = logs.events("margin.guard.seeded")
        await asyncio.sleep(0.3)
        calls = await admin.margin_calls()
    assert len(calls) == 1 and len(tap.applied) == 1
    assert seeded and Decimal(seeded[0]["moved_last_hour"]) == Decimal("9.97")
