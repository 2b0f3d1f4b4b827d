"""Whole-process faults: the simulator killed and restarted on the same port; the reactor
SIGKILLed while a margin call hangs unanswered, then restarted."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from urllib.parse import urlparse

from tests.engine.harness import SimAdmin, wait_for, write_config
from tests.integration.faults.common import (
    FAST,
    MARGIN_PATH,
    Stopwatch,
    account,
    codes,
    cro,
    in_band,
    report,
    scenario,
)
from tests.integration.faults.procs import credentials_env, journal, start_reactor, start_sim

W = "Wu666666"


async def _margin(admin: SimAdmin) -> Decimal | None:
    p = await admin.position(W, "CRO-USDT-SWAP", "long")
    return None if p is None else Decimal(p["margin"])


async def test_simulator_killed_and_restarted(tmp_path):
    scen = scenario(account(W, 1, [cro()]))
    sim, url = await start_sim(scen, tmp_path)
    port = urlparse(url).port
    assert port is not None
    cfg_path = write_config(tmp_path, url, [{"name": W}], **FAST)
    reactor = await start_reactor(cfg_path, credentials_env(scen), tmp_path)
    admin = SimAdmin(url)
    try:
        await wait_for(lambda: _in_band(admin), timeout_s=15)
        first = await admin.margin_calls()
        await sim.kill9()
        await reactor.wait_event("ws.disconnected")
        await asyncio.sleep(1.5)  # refused reconnects, failed REST: the reactor lives on
        assert reactor.alive
        clock = Stopwatch()
        sim, _ = await start_sim(scen, tmp_path, port=port)  # fresh book: margin 20.29 again
        await reactor.wait_event("ws.connected", n=2)  # reconnected to the new simulator
        report("sim restart: listening to fresh snapshot", clock())
        await wait_for(lambda: _in_band(admin), timeout_s=15)
        report("sim restart: listening to corrected", clock())
        await asyncio.sleep(0.5)
        second = await admin.margin_calls()
    finally:
        rc = await reactor.terminate()
        await sim.terminate()
        await admin.aclose()
    assert codes(first) == ["0"] and codes(second) == ["0"]  # one correction per exchange life
    reasons = [e["reason"] for e in reactor.events("ws.reconnect")]
    assert any("connect failed" in r for r in reasons)
    assert sum(e["trigger"] == "connect" for e in reactor.events("book.reconciled")) >= 2
    assert rc == 0
    assert all(e["status"] == "ok" for e in journal(cfg_path))


async def _in_band(admin: SimAdmin) -> bool:
    return in_band(await _margin(admin))


async def test_reactor_sigkilled_during_an_unanswered_call_and_restarted(tmp_path):
    scen = scenario(account(W, 1, [cro()]))
    sim, url = await start_sim(scen, tmp_path)
    admin = SimAdmin(url)
    cfg_path = write_config(tmp_path, url, [{"name": W}], **{**FAST, "request_timeout_s": 30})
    env = credentials_env(scen)
    path = MARGIN_PATH
    await admin.fault(kind="rest_delay", account=W, path=path, delay_s=None)
    reactor = await start_reactor(cfg_path, env, tmp_path)
    try:
        await reactor.wait_event("margin.adjust.sent")
        await wait_for(admin.margin_calls)  # it reached the exchange, which applied it
        await reactor.kill9()
        crashed = journal(cfg_path)
        assert [(e["status"], e["action"], e["amount"]) for e in crashed] == [
            ("pending", "reduce", "9.97")  # estAvailTrans-capped (strictest rule)
        ]
        clock = Stopwatch()
        reactor = await start_reactor(cfg_path, env, tmp_path)
        recovered = await reactor.wait_event("margin.adjust.unknown")
        resolved = await reactor.wait_event("margin.adjust.resolved")
        report("kill -9: restart to resolved", clock())
        await asyncio.sleep(0.8)
        calls = await admin.margin_calls()
        margin = await _margin(admin)
    finally:
        rc = await reactor.terminate()
        await sim.terminate()
        await admin.aclose()
    assert recovered["recovered"] is True and recovered["journal_id"] == crashed[0]["id"]
    # The bill OKX booked decides what the crash left unknown, and is journalled.
    assert (resolved["outcome"], resolved["resolved_by"]) == ("applied", "bill")
    assert len(calls) == 1  # the completed action was not repeated
    assert in_band(margin)
    assert not reactor.events("margin.adjust.sent")
    assert rc == 0
    after = journal(cfg_path)
    assert [(e["id"], e["status"]) for e in after] == [(crashed[0]["id"], "ok")]
    assert after[0]["bill_id"] == resolved["bill_id"]


async def test_reactor_sigtermed_during_an_unanswered_call_is_resolved_after_restart(tmp_path):
    """A call cancelled at shutdown (journalled ``unknown``, not ``pending``) is resolved from
    its bill after the restart, like a SIGKILLed one: no row stays open."""
    scen = scenario(account(W, 1, [cro()]))
    sim, url = await start_sim(scen, tmp_path)
    admin = SimAdmin(url)
    cfg_path = write_config(tmp_path, url, [{"name": W}], **{**FAST, "request_timeout_s": 30})
    env = credentials_env(scen)
    await admin.fault(kind="rest_delay", account=W, path=MARGIN_PATH, delay_s=None)
    reactor = await start_reactor(cfg_path, env, tmp_path)
    try:
        await reactor.wait_event("margin.adjust.sent")
        await wait_for(admin.margin_calls)  # it reached the exchange, which applied it
        assert await reactor.terminate(timeout_s=30) == 0  # drained: the send is cancelled
        stopped = journal(cfg_path)
        assert [(e["status"], e["msg"]) for e in stopped] == [("unknown", "cancelled at shutdown")]
        reactor = await start_reactor(cfg_path, env, tmp_path)
        settled = await reactor.wait_event("journal.settled")
        await asyncio.sleep(0.5)
        calls = await admin.margin_calls()
    finally:
        rc = await reactor.terminate()
        await sim.terminate()
        await admin.aclose()
    assert (settled["ok"], settled["not_applied"], settled["expired"]) == (1, 0, 0)
    assert len(calls) == 1  # applied once, never repeated
    assert not reactor.events("margin.adjust.sent")
    assert rc == 0
    after = journal(cfg_path)
    assert [(e["id"], e["status"]) for e in after] == [(stopped[0]["id"], "ok")]
    assert after[0]["bill_id"]


async def test_an_ambiguous_call_across_a_funding_settlement_is_resolved_by_its_bill(tmp_path):
    """Issue 19/21: funding moves the isolated margin between the send and the re-read; the
    margin delta no longer equals the amount, the bill still decides (applied, no repeat)."""
    scen = scenario(account(W, 1, [cro()]))
    sim, url = await start_sim(scen, tmp_path)
    admin = SimAdmin(url)
    cfg_path = write_config(tmp_path, url, [{"name": W}], **{**FAST, "request_timeout_s": 1})
    await admin.fault(kind="rest_delay", account=W, path=MARGIN_PATH, delay_s=None)
    reactor = await start_reactor(cfg_path, credentials_env(scen), tmp_path)
    try:
        await reactor.wait_event("margin.adjust.sent")
        await wait_for(admin.margin_calls)  # applied by the exchange, the answer never comes
        before = await _margin(admin)
        r = await admin.client.post("/sim/funding", json={"instId": CRO_ID, "fundingRate": "0.02"})
        r.raise_for_status()
        funded = await _margin(admin)
        resolved = await reactor.wait_event("margin.adjust.resolved")
        await asyncio.sleep(0.8)
        calls = await admin.margin_calls()
    finally:
        rc = await reactor.terminate()
        await sim.terminate()
        await admin.aclose()
    assert funded != before  # the settlement moved the margin inside the call's window
    assert (resolved["outcome"], resolved["resolved_by"]) == ("applied", "bill")
    # The applied reduce was not repeated (an add may follow: the funding took margin).
    assert [json.loads(c["body"])["type"] for c in calls][:1] == ["reduce"]
    assert [json.loads(c["body"])["type"] for c in calls[1:]] in ([], ["add"])
    assert rc == 0
    assert {e["status"] for e in journal(cfg_path)} == {"ok"}


CRO_ID = "CRO-USDT-SWAP"
