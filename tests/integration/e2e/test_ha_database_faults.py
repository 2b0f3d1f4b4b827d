"""High availability when PostgreSQL itself fails (issue 17, "Must show"): frozen (SIGSTOP of
the postmaster and every backend: a hung server whose kernel still answers) and stopped
(``pg_ctl stop``), each for two TTLs, under a leader A and its warm standby B, real processes
as in test_ha_process.py (TTL 3 s, window 1.5 s, renew 0.5 s, database timeout 1 s).

Shown: no margin call leaves without a committed intent (the simulator sees none while the
database is away, and afterwards every call it saw has its journal row); ``/healthz`` is 503
with the reason within the renew timeout (renew interval + one bounded database call); on the
database's return exactly one instance leads, and at no 100 ms sample of both instances'
``/api/status`` (and of the lease row) are there two leaders. The cluster is the test's own:
freezing or stopping the session's would stall every other PostgreSQL test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from reactor.store.lease import LeaseStore, LeaseUnavailable
from reactor.store.postgres import watchdog_s
from tests.engine.harness import SimAdmin, wait_for
from tests.integration.e2e.test_ha_process import (
    RENEW,
    TTL,
    _config,
    _epochs,
    _in_band,
    _knock_out_of_band,
    _ok_calls,
    _scenario,
)
from tests.integration.faults.common import report
from tests.integration.faults.procs import Proc, credentials_env, start_reactor, start_sim
from tests.store.pg import PgCluster, own_cluster

DB_TIMEOUT_S = 1.0  # storage.timeout_s in _config
# A renewal is sent every RENEW s and gives up after one bounded call: the leader knows the
# database is gone (and says so on /healthz) by then, plus scheduling slack on a loaded box.
HEALTH_BOUND_S = RENEW + watchdog_s(DB_TIMEOUT_S) + 0.5


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with own_cluster() as c:
        yield c


@pytest.fixture
def dsn(cluster: PgCluster) -> Iterator[str]:
    d = cluster.create_database()
    yield d
    cluster.thaw()
    if not (cluster.data / "postmaster.pid").exists():
        cluster.start_server()
    cluster.drop_database(d)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_status(path: Path) -> str:
    port = _free_port()
    raw = yaml.safe_load(path.read_text())
    raw["status"] = {"enabled": True, "host": "127.0.0.1", "port": port}
    path.write_text(yaml.safe_dump(raw))
    return f"http://127.0.0.1:{port}"


@dataclass
class Samples:
    """Every 100 ms: who says it leads (``/api/status``), and the lease row (its own thread
    and connection, each read bounded, so a frozen server never stalls the sampling)."""

    urls: dict[str, str]
    dsn: str
    roles: list[tuple[float, dict[str, str | None]]] = field(default_factory=list)
    lease: list[tuple[float, str | None]] = field(default_factory=list)  # holder, or "db down"
    _stop: threading.Event = field(default_factory=threading.Event)

    def _lease_loop(self) -> None:
        store: LeaseStore | None = None
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                store = store or LeaseStore(self.dsn, timeout_s=0.3)
                info = store.info("shard:a")
                self.lease.append((t, info.holder if info and info.held else None))
            except LeaseUnavailable:
                self.lease.append((t, "db down"))
            self._stop.wait(max(0.0, 0.1 - (time.monotonic() - t)))
        if store is not None:
            store.close()

    async def _role(self, client: httpx.AsyncClient, url: str) -> str | None:
        try:
            ha = (await client.get(url + "/api/status", timeout=0.5)).json()["ha"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None  # not answering: counts as not leading
        return str(ha["role"])

    async def run(self) -> None:
        thread = threading.Thread(target=self._lease_loop, daemon=True)
        thread.start()
        try:
            async with httpx.AsyncClient() as client:
                while True:
                    t = time.monotonic()
                    names = list(self.urls)
                    got = await asyncio.gather(*(self._role(client, self.urls[n]) for n in names))
                    self.roles.append((t, dict(zip(names, got, strict=True))))
                    await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - t)))
        finally:
            self._stop.set()
            await asyncio.to_thread(thread.join, 5)

    def leaders(self, since: float = 0.0) -> list[list[str]]:
        return [
            sorted(n for n, r in roles.items() if r == "leader")
            for t, roles in self.roles
            if t >= since
        ]


async def _healthz(url: str) -> tuple[int, list[str]]:
    """One ``/healthz``; the first read after the freeze may wait one bounded database call
    (the status reads the journal), so the timeout is above the watchdog's."""
    async with httpx.AsyncClient() as client:
        try:
            r = await client.get(url + "/healthz", timeout=watchdog_s(DB_TIMEOUT_S) + 1)
        except httpx.HTTPError as exc:
            return 0, [type(exc).__name__]
        return r.status_code, list(r.json()["reasons"])


async def _run_fault(
    tmp_path: Path,
    dsn: str,
    fault: Callable[[], None],
    recover: Callable[[], None],
    name: str,
    reason: str,
) -> None:
    scen = _scenario()
    sim, url = await start_sim(scen, tmp_path)
    admin = SimAdmin(url)
    env = credentials_env(scen)
    procs: list[Proc] = []
    sampler: asyncio.Task[None] | None = None
    try:
        cfg_a = _config(tmp_path, url, dsn, "A")
        cfg_b = _config(tmp_path, url, dsn, "B")
        urls = {"A": _with_status(cfg_a), "B": _with_status(cfg_b)}
        a = await start_reactor(cfg_a, env, tmp_path / "A")
        procs.append(a)
        await a.wait_event("ha.lease.acquired", timeout_s=20)
        await wait_for(lambda: _in_band(admin), timeout_s=15)  # A corrected the seed case
        b = await start_reactor(cfg_b, env, tmp_path / "B")
        procs.append(b)
        await b.wait_event("ha.standby", timeout_s=20)
        await b.wait_event("book.reconciled", timeout_s=20)
        samples = Samples(urls, dsn)
        sampler = asyncio.create_task(samples.run())
        await asyncio.sleep(1.0)
        assert all(ls == ["A"] for ls in samples.leaders()[-5:]), samples.roles[-5:]
        calls_before = len(await admin.margin_calls())
        sent_before = len(a.events("margin.adjust.sent")) + len(b.events("margin.adjust.sent"))

        fault()
        down = time.monotonic()
        await _knock_out_of_band(admin)  # a leader would correct this at once: it must not
        first_503: float | None = None
        status, reasons = await _healthz(urls["A"])
        while not any(r.startswith(reason) for r in reasons) and time.monotonic() - down < 10:
            if status == 503 and first_503 is None:
                first_503 = time.monotonic() - down  # the ledger's own reason may come first
            await asyncio.sleep(0.05)
            status, reasons = await _healthz(urls["A"])
        if first_503 is None and status == 503:
            first_503 = time.monotonic() - down
        unhealthy = time.monotonic() - down
        report(f"ha {name}: leader /healthz 503", first_503 or -1.0)
        report(f"ha {name}: leader /healthz 503 with the lease reason", unhealthy)
        assert status == 503 and any(r.startswith(reason) for r in reasons), reasons
        # Unhealthy (503, a database reason: the ledger's or the lease's, whichever call met the
        # outage first) within the renew timeout; the lease's own reason before anyone could
        # have taken the lease (the leader's event loop may wait one bounded ledger call).
        assert first_503 is not None and first_503 <= HEALTH_BOUND_S, first_503
        assert unhealthy < TTL, unhealthy
        await asyncio.sleep(max(0.0, 2 * TTL - (time.monotonic() - down)))
        # Two TTLs without the database: not one call reached the exchange.
        assert len(await admin.margin_calls()) == calls_before
        sent = len(a.events("margin.adjust.sent")) + len(b.events("margin.adjust.sent"))
        assert sent == sent_before
        assert not a.events("ha.lease.acquired")[1:] and not b.events("ha.lease.acquired")

        recover()
        back = time.monotonic()
        await wait_for(lambda: _in_band(admin), timeout_s=TTL + 10)
        report(f"ha {name}: corrected after the database returned", time.monotonic() - back)
        await asyncio.sleep(1.5)
    finally:
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        calls = await admin.margin_calls()
        for p in procs:
            with contextlib.suppress(TimeoutError):
                await p.terminate(timeout_s=20)
        await sim.terminate()
        await admin.aclose()

    # Never two leaders, at any sample; after the return exactly one, the lease's holder.
    two = [
        (t, roles) for t, roles in samples.roles if sum(r == "leader" for r in roles.values()) > 1
    ]
    assert not two, two[:3]
    last = samples.leaders(since=time.monotonic() - 1.5 - 0.1)
    leader = last[-1]
    assert len(leader) == 1 and all(ls == leader for ls in last), last
    assert {h for _, h in samples.lease[-5:]} == {leader[0]}
    print(
        f"\nFAULT-METRIC ha {name}: {len(samples.roles)} status samples, {len(samples.lease)} lease"
    )
    # Every call the simulator saw has its intent in the journal, under a non-decreasing epoch.
    epochs, entries = _epochs(dsn)
    assert _ok_calls(calls) == len(calls) == calls_before + 1 == len(entries)
    assert [e.status for e in entries.values()] == ["ok"] * len(entries)
    assert epochs == sorted(epochs) and epochs[0] == 1 and epochs[-1] == 2


async def test_database_frozen_for_two_ttls(tmp_path: Path, cluster: PgCluster, dsn: str) -> None:
    await _run_fault(
        tmp_path, dsn, cluster.freeze, cluster.thaw, "PostgreSQL frozen", "ha: lease database"
    )


async def test_database_stopped_for_two_ttls(tmp_path: Path, cluster: PgCluster, dsn: str) -> None:
    await _run_fault(
        tmp_path,
        dsn,
        cluster.stop_server,
        cluster.start_server,
        "PostgreSQL stopped",
        "ha: lease database",
    )
