"""High availability, in one process: two real reactors (A, B) on one simulator and one
PostgreSQL ledger, scaled timings (TTL 3 s, window 1.5 s, margin 0.25 s, renew 0.5 s).

A's lease task is stopped (its renewals stop: what a paused or partitioned lease holder
looks like to everyone else) while its engine, sessions and book keep running: the database
fence and the signing deadline must stop it on their own; B takes over within TTL + 1 s and
corrects. The worst case (a pause right after signing, just before the signing deadline,
resumed at the successor's grant) is here too: the request is held after it was signed and
checked, like a paused process, and released when B acquires. The SIGSTOP/SIGKILL/SIGTERM
tests with real processes are in test_ha_process.py."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reactor.config import load_config
from reactor.store.postgres import PostgresLedger
from tests.engine.harness import SimAdmin, running, set_credentials, wait_for, write_config
from tests.integration.e2e.test_reactor_e2e import cro_scenario

TTL, WINDOW, MARGIN, RENEW = 3.0, 1.5, 0.25, 0.5


def _config(tmp_path: Path, url: str, dsn: str, instance: str, window: float = WINDOW) -> Any:
    d = tmp_path / instance
    d.mkdir()
    path = write_config(d, url, [{"name": "Wu666666"}])
    raw = yaml.safe_load(path.read_text())
    raw["storage"] = {"kind": "postgres", "dsn": dsn, "timeout_s": 1}
    raw["ha"] = {
        "instance": instance,
        "scope": "shard:a",
        "lease_ttl_s": TTL,
        "renew_interval_s": RENEW,
        "sign_window_s": window,
        "sign_margin_s": MARGIN,
    }
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def _ha_json(rt: Any) -> Any:
    return rt.status_source.status_snapshot().to_json()["ha"]


def _ha(**fields: Any) -> dict[str, Any]:
    return {"scope": "shard:a", **fields}


def _in_band(p: dict[str, Any] | None) -> bool:
    return p is not None and Decimal("9.5") <= Decimal(p["margin"]) <= Decimal("10.5")


async def test_standby_takes_over_from_a_stalled_leader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim_factory: Any, pg_dsn: str
) -> None:
    scenario = cro_scenario()
    scenario["simulator"] = {"timestamp_window_s": WINDOW}
    sim = await sim_factory(scenario, time_scale=0.1)
    set_credentials(monkeypatch, scenario)
    admin = SimAdmin(sim.url)
    pos = ("Wu666666", "CRO-USDT-SWAP", "long")
    async with running(_config(tmp_path, sim.url, pg_dsn, "A")) as (rt_a, logs):
        await wait_for(lambda: logs.events("ha.lease.acquired"))
        await wait_for(lambda: _in_band_async(admin, pos))
        assert len(await admin.margin_calls()) == 1  # the leader corrected the seed case
        # From here on both reactors log into B's capture (logging is per process).
        async with running(_config(tmp_path, sim.url, pg_dsn, "B")) as (rt_b, logs):
            await wait_for(lambda: [e for e in logs.events("ha.standby") if e.get("holder") == "A"])
            assert rt_b.ha is not None and rt_b.ha.role == "standby"
            # /api/status and the status page show the role, the epoch and the holder.
            assert _ha_json(rt_a) == _ha(instance="A", role="leader", epoch=1, holder="A")
            assert _ha_json(rt_b) == _ha(instance="B", role="standby", epoch=1, holder="A")
            # A's lease task stops: no renewals from now on.
            [task] = [t for t in rt_a.tasks if t.get_name() == "ha"]
            task.cancel()
            stalled = time.monotonic()
            assert rt_a.ha is not None
            # Past A's signing deadline (at most TTL - window - margin after its last renewal)
            # A still holds the lease in the database, but may no longer sign.
            await wait_for(lambda: time.monotonic() > rt_a.ha.sign.deadline, timeout_s=TTL)
            # Out of band again: only the lease holder may correct it.
            await admin.set_position(
                account="Wu666666", instId="CRO-USDT-SWAP", posSide="long", pos="108",
                avgPx="0.0905", lever="10", margin="20.29",
            )  # fmt: skip
            acquired = await wait_for(
                lambda: [e for e in logs.events("ha.lease.acquired") if e["instance"] == "B"],
                timeout_s=TTL + 3,
            )
            took = time.monotonic() - stalled
            assert acquired[0]["epoch"] == 2
            assert took <= TTL + 1.0, took
            await wait_for(lambda: _in_band_async(admin, pos), timeout_s=5)
            # A resumes its lease task: its renewal finds the lease gone.
            rt_a.spawn("ha", rt_a.ha.run())  # type: ignore[union-attr]
            lost = await wait_for(lambda: logs.events("ha.lease.lost"), timeout_s=3)
            assert lost[0]["epoch"] == 1
            await asyncio.sleep(0.5)
            assert _ha_json(rt_b) == _ha(instance="B", role="leader", epoch=2, holder="B")
            assert _ha_json(rt_a) == _ha(instance="A", role="standby", epoch=2, holder="B")
    calls = await admin.margin_calls()
    with PostgresLedger(pg_dsn) as led:
        entries = {e.id: e for e in led.journal(100)}
        epochs = led.journal_epochs()
    # One epoch per call, non-decreasing in id order; every call the simulator applied has a
    # journal row of the epoch that was valid when it was sent.
    assert [e for _, _, e in epochs] == sorted(e for _, _, e in epochs)
    applied = [i for i, _, _ in epochs if entries[i].status == "ok"]
    assert len(applied) == len([c for c in calls if c.get("code") == "0"])
    assert [e for i, _, e in epochs if entries[i].status == "ok"] == [1, 2]
    assert len([c for c in calls if c.get("code") == "0"]) == 2  # A's seed fix, B's fix
    await admin.aclose()


async def _in_band_async(admin: SimAdmin, pos: tuple[str, str, str]) -> bool:
    return _in_band(await admin.position(*pos))


class HoldAfterSigning(httpx.AsyncBaseTransport):
    """Holds the next margin-balance request, already signed and past the sign fence, until
    released: the request of a process paused between the fence check and the send."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.codes: list[str] = []
        self.signed_at: float | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/account/position/margin-balance") or self.held.is_set():
            return await self.inner.handle_async_request(request)
        self.signed_at = time.monotonic()
        self.held.set()
        await self.release.wait()
        resp = await self.inner.handle_async_request(request)
        body = await resp.aread()
        self.codes.append(str(json.loads(body).get("code")))
        return httpx.Response(resp.status_code, headers=resp.headers, content=body)


@pytest.mark.parametrize("window_term", [True, False], ids=["windowed", "naive"])
async def test_worst_case_pause_after_signing_at_the_deadline(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sim_factory: Any,
    pg_dsn: str,
    window_term: bool,
) -> None:
    """A signs just before its signing deadline and its request reaches OKX only when B has
    acquired: OKX's window refuses it (50102). With the window term removed from A's deadline
    (``sign_window_s: 0``, the naive ``TTL - margin``) the same stale request is accepted:
    the test can fail."""
    scenario = cro_scenario()
    scenario["simulator"] = {"timestamp_window_s": WINDOW}
    sim = await sim_factory(scenario, time_scale=0.1)
    set_credentials(monkeypatch, scenario)
    admin = SimAdmin(sim.url)
    pos = ("Wu666666", "CRO-USDT-SWAP", "long")
    cfg_a = _config(tmp_path, sim.url, pg_dsn, "A", window=WINDOW if window_term else 0.0)
    async with running(cfg_a) as (rt_a, logs):
        await wait_for(lambda: logs.events("ha.lease.acquired"))
        await wait_for(lambda: _in_band_async(admin, pos))
        async with running(_config(tmp_path, sim.url, pg_dsn, "B")) as (_, logs):
            await wait_for(lambda: [e for e in logs.events("ha.standby") if e.get("holder") == "A"])
            client = rt_a.clients["Wu666666"]
            hold = HoldAfterSigning(client._transport)
            client._transport = hold
            # A's renewals stop right after one succeeded; its deadline is then fixed.
            assert rt_a.ha is not None
            await asyncio.sleep(RENEW * 0.5)
            [task] = [t for t in rt_a.tasks if t.get_name() == "ha"]
            task.cancel()
            deadline = rt_a.ha.sign.deadline
            # A deviation just before the deadline: A decides, writes its fenced intent (the
            # lease is still valid), signs and passes the fence; then it "pauses".
            await asyncio.sleep(max(0.0, deadline - 0.4 - time.monotonic()))
            await admin.set_position(
                account="Wu666666", instId="CRO-USDT-SWAP", posSide="long", pos="108",
                avgPx="0.0905", lever="10", margin="20.29",
            )  # fmt: skip
            await asyncio.wait_for(hold.held.wait(), timeout=2)
            assert hold.signed_at is not None and hold.signed_at < deadline
            await wait_for(
                lambda: [e for e in logs.events("ha.lease.acquired") if e["instance"] == "B"],
                timeout_s=TTL + 3,
            )
            hold.release.set()  # A resumes at the grant: its signed request goes out
            await wait_for(lambda: hold.codes, timeout_s=3)
            await asyncio.sleep(0.5)
    await admin.aclose()
    stale_accepted = hold.codes.count("0")
    if window_term:
        assert hold.codes == ["50102"]  # "Timestamp request expired": 0 stale calls
        assert stale_accepted == 0
    else:
        assert stale_accepted == 1  # the naive deadline lets the old epoch's call land
