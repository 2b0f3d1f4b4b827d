"""Ledger storage faults under a running reactor process (subprocesses, real simulator): a
deleted or replaced ledger is detected and no call is sent without a durable intent; a ledger
locked by another writer fails the write fast instead of stalling the process."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import httpx
import yaml

from reactor.service.app import LEDGER_FILE
from tests.engine.harness import SimAdmin, wait_for, write_config
from tests.integration.faults.common import FAST, account, cro, in_band, report, scenario
from tests.integration.faults.procs import credentials_env, start_reactor, start_sim

W = "Wu666666"
OUT_OF_BAND = {  # a fill-like change on the exchange: margin 20.29 again, a reduce is due
    "account": W,
    "instId": "CRO-USDT-SWAP",
    "posSide": "long",
    "pos": "108",
    "avgPx": "0.0905",
    "lever": "10",
    "margin": "20.29",
}


async def _margin(admin: SimAdmin):  # type: ignore[no-untyped-def]
    from decimal import Decimal

    p = await admin.position(W, "CRO-USDT-SWAP", "long")
    return None if p is None else Decimal(p["margin"])


async def _settled(tmp_path):  # type: ignore[no-untyped-def]
    scen = scenario(account(W, 1, [cro()]))
    sim, url = await start_sim(scen, tmp_path)
    admin = SimAdmin(url)
    cfg_path = write_config(tmp_path, url, [{"name": W}], **FAST)
    raw = yaml.safe_load(cfg_path.read_text())
    raw["status"] = {"enabled": True, "host": "127.0.0.1", "port": 0}
    cfg_path.write_text(yaml.safe_dump(raw))
    reactor = await start_reactor(cfg_path, credentials_env(scen), tmp_path)

    async def ok() -> bool:
        return in_band(await _margin(admin))

    await wait_for(ok, timeout_s=15)
    await asyncio.sleep(0.5)
    return sim, admin, reactor


async def test_deleted_ledger_is_detected_and_nothing_is_sent_without_an_intent(tmp_path):
    sim, admin, reactor = await _settled(tmp_path)
    try:
        before = len(await admin.margin_calls())
        t0 = time.monotonic()
        (tmp_path / "state" / LEDGER_FILE).unlink()
        event = await reactor.wait_event("ledger.unavailable")
        report("deleted ledger detected after", time.monotonic() - t0)
        assert event["reason"] == "replaced" and "deleted" in event["error"]
        url = reactor.events("status.ready")[0]["url"]
        async with httpx.AsyncClient(base_url=url) as http:
            health = await http.get("/healthz")
        assert health.status_code == 503 and "ledger replaced" in health.text
        await admin.set_position(**OUT_OF_BAND)  # wants a correction now
        failed = await reactor.wait_event("journal.write.failed", timeout_s=5)  # engine's event
        assert "replaced" in failed["error"] or "deleted" in failed["error"]
        await asyncio.sleep(1.0)
        after = len(await admin.margin_calls())
        assert reactor.alive
    finally:
        await reactor.terminate()
        await sim.terminate()
        await admin.aclose()
    assert after == before  # before: the intent went into the unlinked file and the call out


async def test_a_locked_ledger_fails_the_write_fast(tmp_path):
    sim, admin, reactor = await _settled(tmp_path)
    holder = sqlite3.connect(tmp_path / "state" / LEDGER_FILE, isolation_level=None)
    try:
        before = len(await admin.margin_calls())
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the ledger
        await admin.set_position(**OUT_OF_BAND)
        failed = await reactor.wait_event("journal.write.failed", timeout_s=5)
        assert "locked" in failed["error"]
        await asyncio.sleep(1.5)
        during = len(await admin.margin_calls())
        assert reactor.alive
        pongs = len(reactor.events("ws.pong.timeout"))
        holder.execute("ROLLBACK")  # storage recovers: corrections resume by themselves
        t0 = time.monotonic()

        async def ok() -> bool:
            return in_band(await _margin(admin))

        await wait_for(ok, timeout_s=20)
        report("locked ledger: release to in band", time.monotonic() - t0)
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
        await reactor.terminate()
        await sim.terminate()
        await admin.aclose()
    assert during == before  # no call without its durable intent
    assert pongs == 0  # the event loop never stalled long enough to miss a pong (1 s)
