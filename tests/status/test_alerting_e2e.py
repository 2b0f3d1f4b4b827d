"""Log-based alerting end to end, on Debian's own packages: the reactor (a real process) writes
its JSON log to a file, mtail counts it with deploy/alerts' program, Prometheus evaluates the
generated rules (short windows: ``alerting.FAST``) over mtail and the reactor's /metrics, and
Alertmanager delivers to a webhook receiver in this test.

Provoked against the simulator: a failed margin call (50013 on the first margin-balance), a
reconnect storm (three dropped WebSockets), a blocked position (unrealised loss keeps the floor
above target), a stopped account (wrong passphrase) and the reactor down (SIGTERM). Each alert
arrives once, in its own group, and resolves: the blocked one when the market recovers, the
counters' when their window passes, "down" and "stopped" when the reactor restarts with good
credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from reactor.status import alerting
from tests.engine.harness import SimAdmin, write_config
from tests.integration.faults.common import FAST, MARGIN_PATH, account, cro, doge, scenario
from tests.integration.faults.procs import credentials_env

APT = "apt-get install -y prometheus prometheus-alertmanager mtail"
# Debian names the binary prometheus-alertmanager; upstream tarballs name it alertmanager.
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
MISSING = [t for t in ("mtail", "prometheus") if shutil.which(t) is None]
if ALERTMANAGER is None:
    MISSING.append("prometheus-alertmanager")

pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"needs {', '.join(MISSING)}: {APT}" if MISSING else ""
)

EXPECTED = {
    # the OKX error code travels with the alert (50013: busy, nothing to fund)
    "ReactorMarginCallFailed": {"account": "A1", "code": "50013", "needs_funding": "no"},
    "ReactorReconnectStorm": {"account": "A1"},
    "ReactorTargetBlocked": {"account": "B2"},
    "ReactorLoginFailed": {"account": "C3"},
    "ReactorAccountStopped": {"account": "C3"},
    "ReactorDown": {},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Webhook:
    """Alertmanager's webhook receiver: keeps every notification."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/alerts", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/alerts"

    async def _receive(self, request: web.Request) -> web.Response:
        self.notifications.append(await request.json())
        return web.json_response({"ok": True})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def deliveries(self, alertname: str, status: str) -> list[dict[str, Any]]:
        """Alerts named ``alertname`` with ``status`` across all notifications."""
        return [
            a
            for n in self.notifications
            for a in n["alerts"]
            if a["labels"]["alertname"] == alertname and a["status"] == status
        ]


class Tool:
    """A child process (mtail, prometheus, alertmanager, the reactor) with output in files."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, err: Path) -> None:
        self.name, self.proc, self.err = name, proc, err

    @classmethod
    async def start(
        cls,
        name: str,
        argv: list[str],
        tmp: Path,
        *,
        stdout: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Tool:
        err = tmp / f"{name}.err"
        with err.open("ab") as e, (stdout or tmp / f"{name}.out").open("ab") as o:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=o, stderr=e, env={**os.environ, **(env or {})}
            )
        return cls(name, proc, err)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


class LogFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self, name: str, **fields: Any) -> list[dict[str, Any]]:
        out = []
        for line in self.path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                e = json.loads(line)
                if e.get("event") == name and all(e.get(k) == v for k, v in fields.items()):
                    out.append(e)
        return out


async def until(what: str, predicate: Callable[[], Any], timeout_s: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def http_ok(url: str) -> bool:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=1) as c:
            return (await c.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.asynccontextmanager
async def stack(tmp: Path, status_port: int) -> AsyncIterator[tuple[Webhook, list[Tool], Path]]:
    """Webhook, Alertmanager and mtail up (Prometheus is started once the reactor listens)."""
    hook = Webhook()
    await hook.start()
    tools: list[Tool] = []
    log_path = tmp / "reactor.log"
    log_path.touch()  # mtail tails it from here
    try:
        am_port, mtail_port = free_port(), free_port()
        (tmp / "am").mkdir()
        (tmp / "alertmanager.yml").write_text(
            alerting.render_alertmanager(alerting.FAST, webhook=hook.url)
        )
        tools.append(
            await Tool.start(
                "alertmanager",
                [
                    str(ALERTMANAGER),
                    f"--config.file={tmp / 'alertmanager.yml'}",
                    f"--storage.path={tmp / 'am'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                tmp,
            )
        )
        (tmp / alerting.MTAIL_PROGRAM).write_text(alerting.render_mtail())
        tools.append(
            await Tool.start(
                "mtail",
                [
                    "mtail",
                    "--progs",
                    str(tmp / alerting.MTAIL_PROGRAM),
                    "--logs",
                    str(log_path),
                    "--address",
                    "127.0.0.1",
                    "--port",
                    str(mtail_port),
                    "--poll_interval",
                    "100ms",
                ],
                tmp,
            )
        )
        await until("alertmanager", lambda: http_ok(f"http://127.0.0.1:{am_port}/-/ready"))
        await until("mtail", lambda: http_ok(f"http://127.0.0.1:{mtail_port}/metrics"))
        (tmp / alerting.RULES_FILE).write_text(alerting.render_rules(alerting.FAST))
        (tmp / alerting.PROMETHEUS_FILE).write_text(
            alerting.render_prometheus(
                alerting.FAST,
                reactor=f"127.0.0.1:{status_port}",
                mtail=f"127.0.0.1:{mtail_port}",
                alertmanager=f"127.0.0.1:{am_port}",
            )
        )
        yield hook, tools, log_path
    finally:
        for t in reversed(tools):
            await t.stop()
        await hook.stop()


async def start_prometheus(tmp: Path) -> Tool:
    port = free_port()
    (tmp / "prom").mkdir()
    tool = await Tool.start(
        "prometheus",
        [
            "prometheus",
            f"--config.file={tmp / alerting.PROMETHEUS_FILE}",
            f"--storage.tsdb.path={tmp / 'prom'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--rules.alert.resend-delay=1s",
        ],
        tmp,
    )
    await until("prometheus", lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"))
    return tool


async def start_reactor(cfg: Path, env: dict[str, str], tmp: Path, log_path: Path) -> Tool:
    return await Tool.start(
        "reactor",
        [sys.executable, "-m", "reactor", "run", "--config", str(cfg)],
        tmp,
        stdout=log_path,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )


def _dump(tmp: Path, hook: Webhook) -> str:
    parts = [json.dumps(n)[:600] for n in hook.notifications]
    for name in ("reactor.err", "mtail.err", "prometheus.err", "alertmanager.err"):
        p = tmp / name
        if p.exists():
            parts.append(f"--- {name}\n" + p.read_text()[-1500:])
    return "\n".join(parts)


async def test_alerts_fire_once_grouped_and_resolve(tmp_path: Path, sim_factory: Any) -> None:
    started = time.monotonic()
    scen = scenario(
        account("A1", 1, [doge(margin="5")]),  # add 5 USDT: the first call meets 50013
        account("B2", 2, [cro()]),  # CRO marked down: loss keeps the floor above target
        account("C3", 3, [doge(margin="10")]),  # in band; wrong passphrase at first
    )
    scen["instruments"][0]["markPx"] = "0.0850"
    sim = await sim_factory(scen)
    admin = SimAdmin(sim.url)
    await admin.fault(kind="rest_error", account="A1", path=MARGIN_PATH, code="50013", count=1)
    status_port = free_port()
    cfg = write_config(
        tmp_path,
        sim.url,
        [{"name": "A1"}, {"name": "B2"}, {"name": "C3"}],
        **{**FAST, "reconcile_interval_s": 3600},
    )
    raw = yaml.safe_load(cfg.read_text())
    raw["status"] = {"enabled": True, "host": "127.0.0.1", "port": status_port}
    raw["log"] = {"format": "json", "level": "info"}
    cfg.write_text(yaml.safe_dump(raw))
    good = credentials_env(scen)
    bad = {**good, "OKX_C3_PASSPHRASE": "not-the-passphrase"}

    async with stack(tmp_path, status_port) as (hook, tools, log_path):
        logs = LogFile(log_path)
        try:
            reactor = await start_reactor(cfg, bad, tmp_path, log_path)
            await until("status server", lambda: logs.events("status.ready"))
            tools.append(await start_prometheus(tmp_path))
            await until("blocked", lambda: logs.events("margin.target.blocked", account="B2"))
            await until("stopped", lambda: logs.events("account.stopped", account="C3"))
            await until("failed call", lambda: logs.events("margin.adjust.failed", account="A1"))
            for n in range(1, 4):  # a reconnect storm: more than FAST.storm_count in 20 s
                await admin.fault(kind="drop_ws", account="A1")
                await until("reconnect", lambda n=n: len(logs.events("ws.connected")) >= 2 + n)

            firing = [a for a in EXPECTED if a != "ReactorDown"]
            for name in firing:
                await until(f"{name} firing", lambda name=name: hook.deliveries(name, "firing"))
            # The market recovers: unblocked, corrected into the band; the alert resolves.
            await admin.mark_price("CRO-USDT-SWAP", "0.0950")
            await until("unblocked", lambda: logs.events("margin.target.unblocked"))

            # The reactor goes down, then comes back with C3's right passphrase.
            await reactor.stop()
            await until("ReactorDown firing", lambda: hook.deliveries("ReactorDown", "firing"))
            reactor = await start_reactor(cfg, good, tmp_path, log_path)
            tools.append(reactor)
            await until("restart", lambda: len(logs.events("reactor.started")) >= 2)

            for name in EXPECTED:
                await until(
                    f"{name} resolved",
                    lambda name=name: hook.deliveries(name, "resolved"),
                    timeout_s=60,
                )
            await asyncio.sleep(2 * 3)  # two group intervals: room for a duplicate to show
        except BaseException:
            print(_dump(tmp_path, hook))
            raise

        for name, labels in EXPECTED.items():
            fired = hook.deliveries(name, "firing")
            assert len(fired) == 1, (name, fired)
            assert all(fired[0]["labels"].get(k) == v for k, v in labels.items()), fired
            assert len(hook.deliveries(name, "resolved")) == 1, name
        for n in hook.notifications:  # grouped by alert name, one name per notification
            assert set(n["groupLabels"]) == {"alertname"}
            assert {a["labels"]["alertname"] for a in n["alerts"]} == {
                n["groupLabels"]["alertname"]
            }
        unexpected = {
            a["labels"]["alertname"] for n in hook.notifications for a in n["alerts"]
        } - EXPECTED.keys()
        assert not unexpected, unexpected
    await admin.aclose()
    seq = [(a["labels"]["alertname"], a["status"]) for n in hook.notifications for a in n["alerts"]]
    print(f"alerting e2e: {time.monotonic() - started:.1f} s, notifications: {seq}")
