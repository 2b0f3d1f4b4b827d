"""High availability with real processes (issue 17, "Must show"): one `reactor sim`, two
`reactor run` (A, B) sharing one throwaway PostgreSQL, scaled timings (TTL 3 s, OKX window
1.5 s, margin 0.25 s, renew 0.5 s). Faults are signals to whole processes: SIGSTOP (a GC
pause, a frozen VM), SIGKILL (a crash), SIGTERM (systemctl stop)."""

from __future__ import annotations

import asyncio
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from reactor.store.postgres import PostgresLedger
from tests.engine.harness import SimAdmin, wait_for, write_config
from tests.integration.faults.common import FAST, MARGIN_PATH, account, cro, in_band, report
from tests.integration.faults.common import scenario as make_scenario
from tests.integration.faults.procs import Proc, credentials_env, start_reactor, start_sim

TTL, WINDOW, MARGIN, RENEW = 3.0, 1.5, 0.25, 0.5
W = "Wu666666"
POS = (W, "CRO-USDT-SWAP", "long")
OUT_OF_BAND = {"pos": "108", "avgPx": "0.0905", "lever": "10", "margin": "20.29"}


def _scenario() -> dict[str, Any]:
    scen = make_scenario(account(W, 1, [cro()]))
    scen["simulator"] = {"timestamp_window_s": WINDOW}
    return scen


def _config(tmp_path: Path, url: str, dsn: str, instance: str, **timing: Any) -> Path:
    d = tmp_path / instance
    d.mkdir()
    path = write_config(d, url, [{"name": W}], **{**FAST, **timing})
    raw = yaml.safe_load(path.read_text())
    raw["storage"] = {"kind": "postgres", "dsn": dsn, "timeout_s": 1}
    raw["ha"] = {
        "instance": instance,
        "scope": "shard:a",
        "lease_ttl_s": TTL,
        "renew_interval_s": RENEW,
        "sign_window_s": WINDOW,
        "sign_margin_s": MARGIN,
    }
    path.write_text(yaml.safe_dump(raw))
    return path


async def _in_band(admin: SimAdmin) -> bool:
    p = await admin.position(*POS)
    return p is not None and in_band(Decimal(p["margin"]))


async def _knock_out_of_band(admin: SimAdmin) -> None:
    await admin.set_position(account=W, instId=POS[1], posSide=POS[2], **OUT_OF_BAND)


class Pair:
    """The simulator, A (the first leader) and B (its warm standby)."""

    def __init__(self, sim: Proc, url: str, a: Proc, b: Proc, admin: SimAdmin) -> None:
        self.sim, self.url, self.a, self.b, self.admin = sim, url, a, b, admin

    async def close(self) -> None:
        for p in (self.a, self.b):
            if p.alive:
                p.proc.send_signal(signal.SIGCONT)
                try:
                    await p.terminate(timeout_s=20)
                except TimeoutError:
                    await p.kill9()
        await self.sim.terminate()
        await self.admin.aclose()


async def _start_pair(tmp_path: Path, dsn: str, **timing: Any) -> Pair:
    scen = _scenario()
    sim, url = await start_sim(scen, tmp_path)
    admin = SimAdmin(url)
    env = credentials_env(scen)
    a = await start_reactor(_config(tmp_path, url, dsn, "A", **timing), env, tmp_path / "A")
    await a.wait_event("ha.lease.acquired", timeout_s=20)
    await wait_for(lambda: _in_band(admin), timeout_s=15)  # A corrected the seed case
    b = await start_reactor(_config(tmp_path, url, dsn, "B", **timing), env, tmp_path / "B")
    await b.wait_event("ha.standby", timeout_s=20)
    await b.wait_event("book.reconciled", timeout_s=20)  # warm: connected, book fresh
    return Pair(sim, url, a, b, admin)


def _ok_calls(calls: list[dict[str, Any]]) -> int:
    return sum(c.get("code") == "0" for c in calls)


def _epochs(dsn: str) -> tuple[list[int], dict[int, Any]]:
    with PostgresLedger(dsn) as led:
        entries = {e.id: e for e in sorted(led.journal(100), key=lambda e: e.id)}
        return [e for _, _, e in led.journal_epochs()], entries


async def test_leader_sigstopped_for_two_ttls(tmp_path: Path, pg_dsn: str) -> None:
    pair = await _start_pair(tmp_path, pg_dsn)
    a, b, admin = pair.a, pair.b, pair.admin
    try:
        assert len(await admin.margin_calls()) == 1
        a.proc.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        await _knock_out_of_band(admin)  # only the lease holder may correct it
        acquired = await b.wait_event("ha.lease.acquired", timeout_s=TTL + 3)
        took = time.monotonic() - stopped
        report("ha SIGSTOP: standby acquired", took)
        assert acquired["epoch"] == 2 and acquired["instance"] == "B"
        assert took <= TTL + 1.0, took
        await wait_for(lambda: _in_band(admin), timeout_s=5)
        report("ha SIGSTOP: standby corrected", time.monotonic() - stopped)
        await asyncio.sleep(max(0.0, 2 * TTL - (time.monotonic() - stopped)))
        # Out of band again while A is still frozen: B corrects; A, resumed, must not.
        await _knock_out_of_band(admin)
        await wait_for(lambda: _in_band(admin), timeout_s=5)
        before = len(await admin.margin_calls())
        seen_a = len(a.lines)
        a.proc.send_signal(signal.SIGCONT)
        lost = await a.wait_event("ha.lease.lost", timeout_s=TTL)
        assert lost["epoch"] == 1
        await asyncio.sleep(1.5)
        calls = await admin.margin_calls()
        resumed = a.lines[seen_a:]
    finally:
        await pair.close()
    assert len(calls) == before  # the old leader sent 0 margin calls after SIGCONT
    assert not [e for e in resumed if e.get("event") == "margin.adjust.sent"]
    assert _ok_calls(calls) == 3  # A's seed fix, B's two fixes
    epochs, entries = _epochs(pg_dsn)
    assert epochs == sorted(epochs)  # one epoch per call, non-decreasing in id order
    assert [e.status for e in entries.values()] == ["ok"] * 3
    assert epochs == [1, 2, 2]


async def test_leader_sigkilled_with_a_call_unanswered(tmp_path: Path, pg_dsn: str) -> None:
    pair = await _start_pair(tmp_path, pg_dsn, request_timeout_s=30)
    a, b, admin = pair.a, pair.b, pair.admin
    try:
        # The next margin call is applied by OKX but never answered: A dies waiting for it.
        await admin.fault(kind="rest_delay", account=W, path=MARGIN_PATH, delay_s=None)
        await _knock_out_of_band(admin)
        await a.wait_event("margin.adjust.sent", n=2)
        await wait_for(lambda: _in_band(admin), timeout_s=5)  # applied by the exchange
        await a.kill9()
        killed = time.monotonic()
        epochs, entries = _epochs(pg_dsn)
        assert [(e.status, ep) for e, ep in zip(entries.values(), epochs, strict=True)] == [
            ("ok", 1),
            ("pending", 1),
        ]
        acquired = await b.wait_event("ha.lease.acquired", timeout_s=TTL + 3)
        took = time.monotonic() - killed
        report("ha SIGKILL: standby acquired", took)
        assert took <= TTL + 1.0, took
        resolved = await b.wait_event("margin.adjust.resolved", timeout_s=10)
        report("ha SIGKILL: old pending resolved", time.monotonic() - killed)
        # A new deviation after the takeover: B corrects it (TTL + one REST snapshot).
        await _knock_out_of_band(admin)
        await wait_for(lambda: _in_band(admin), timeout_s=5)
        await asyncio.sleep(0.5)
        calls = await admin.margin_calls()
    finally:
        await pair.close()
    assert acquired["epoch"] == 2
    assert (resolved["outcome"], resolved["resolved_by"]) == ("applied", "bill")
    # A's call was attributed to the journal (never re-sent, never foreign): 3 calls in all.
    assert len(calls) == 3 and _ok_calls(calls) == 3
    assert not b.events("margin.foreign_transfer")
    epochs, entries = _epochs(pg_dsn)
    assert epochs == sorted(epochs) == [1, 1, 2]
    assert [e.status for e in entries.values()] == ["ok", "ok", "ok"]
    assert list(entries.values())[1].bill_id == resolved["bill_id"]


async def test_graceful_stop_hands_over_without_waiting_a_ttl(tmp_path: Path, pg_dsn: str) -> None:
    pair = await _start_pair(tmp_path, pg_dsn)
    a, b, admin = pair.a, pair.b, pair.admin
    try:
        # Nothing signed in the last window + margin: the lease is released at once.
        await asyncio.sleep(WINDOW + MARGIN + 0.2)
        a.proc.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        released = await a.wait_event("ha.lease.released", timeout_s=15)
        acquired = await b.wait_event("ha.lease.acquired", timeout_s=TTL + 3)
        took = time.monotonic() - stopping
        report("ha SIGTERM: standby acquired", took)
        assert await a.terminate() == 0
        await _knock_out_of_band(admin)
        await wait_for(lambda: _in_band(admin), timeout_s=5)
        await asyncio.sleep(0.5)
        calls = await admin.margin_calls()
    finally:
        await pair.close()
    assert released["hold_s"] == 0
    assert acquired["epoch"] == 2
    assert took < TTL - 1.0, took  # well before the lease could have expired
    assert _ok_calls(calls) == 2 == len(calls)
    assert not b.events("margin.foreign_transfer")
    epochs, _ = _epochs(pg_dsn)
    assert epochs == [1, 2]
