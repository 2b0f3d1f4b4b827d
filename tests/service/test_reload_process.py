"""``reactor run`` as systemd runs it: ``STATUS=`` over a fake ``NOTIFY_SOCKET`` tells the truth
and keeps up, and SIGHUP reloads the accounts without touching the other connections (a
subprocess against ``reactor sim``)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engine.harness import write_config
from tests.integration.faults.common import FAST, account, cro, scenario
from tests.integration.faults.procs import Proc, credentials_env, start_sim
from tests.paths import REPO


@pytest.fixture
def notify() -> Iterator[tuple[socket.socket, str]]:
    d = tempfile.mkdtemp(prefix="sdn")  # unix socket paths are limited to ~108 bytes
    path = os.path.join(d, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    yield sock, path
    sock.close()
    Path(path).unlink()
    os.rmdir(d)


class Notes:
    """Every datagram the reactor sent, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.all: list[str] = []

    def drain(self) -> None:
        while True:
            try:
                self.all.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return

    def statuses(self) -> list[str]:
        self.drain()
        return [
            line.removeprefix("STATUS=")
            for msg in self.all
            for line in msg.splitlines()
            if line.startswith("STATUS=")
        ]

    async def wait_status(self, text: str, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.statuses() and self.statuses()[-1] == text:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"STATUS never became {text!r}: {self.statuses()[-5:]}")


def _write(path: Path, accounts: list[dict[str, object]], **extra: object) -> None:
    raw = yaml.safe_load(path.read_text())
    raw["accounts"] = accounts
    raw.update(extra)
    path.write_text(yaml.safe_dump(raw))


async def test_status_line_and_sighup_reload(
    tmp_path: Path, notify: tuple[socket.socket, str]
) -> None:
    sock, sock_path = notify
    notes = Notes(sock)
    scen = scenario(*(account(n, i, [cro(margin="10")]) for i, n in enumerate("ABCD")))
    sim, url = await start_sim(scen, tmp_path)
    env = credentials_env(scen) | {"NOTIFY_SOCKET": sock_path, "OKX_D_PASSPHRASE": "wrong"}
    path = write_config(tmp_path, url, [{"name": "A"}], **FAST)
    _write(path, [{"name": "A"}, {"name": "B", "enabled": False}, {"name": "D"}])
    reactor = await Proc.start(
        "reactor", "run", "-c", str(path), env=env, stderr=tmp_path / "reactor.err"
    )
    try:
        await reactor.wait_event("account.stopped")  # D: bad passphrase
        await notes.wait_status("1/2 live, 1 stopped; needs attention: 1 error (D)")
        notes.drain()
        assert notes.all[0] == "STATUS=starting: 2 accounts"
        assert notes.all[1].startswith("READY=1\nSTATUS=")

        # add C, enable B, remove D: A's connection stays as it is
        _write(path, [{"name": "A"}, {"name": "B"}, {"name": "C"}])
        reactor.proc.send_signal(signal.SIGHUP)
        done = await reactor.wait_event("reactor.reloaded")
        assert (done["started"], done["stopped"]) == (["B", "C"], ["D"])
        assert (done["added"], done["removed"]) == (["C"], ["D"])
        await notes.wait_status("3/3 live")
        connected = [e["account"] for e in reactor.events("ws.connected")]
        assert sorted(connected) == ["A", "B", "C"]  # one connection each: A not reconnected

        # a bad config is refused with an event; the running one stays
        good = path.read_text()
        path.write_text("accounts: [\n")
        reactor.proc.send_signal(signal.SIGHUP)
        refused = await reactor.wait_event("reactor.reload.refused")
        assert "not valid YAML" in refused["error"]
        path.write_text(good)
        _write(path, [{"name": "A"}, {"name": "B"}, {"name": "C"}], policy={"buffer": "2"})
        reactor.proc.send_signal(signal.SIGHUP)
        refused = await reactor.wait_event("reactor.reload.refused", n=2)
        assert "restart to change policy" in refused["error"]
        assert reactor.alive

        # disable B: only B's session ends
        path.write_text(good)
        _write(path, [{"name": "A"}, {"name": "B", "enabled": False}, {"name": "C"}])
        reactor.proc.send_signal(signal.SIGHUP)
        done = await reactor.wait_event("reactor.reloaded", n=2)
        assert (done["started"], done["stopped"]) == ([], ["B"])
        await notes.wait_status("2/2 live")
        await asyncio.sleep(0.5)
        assert sorted(e["account"] for e in reactor.events("ws.connected")) == ["A", "B", "C"]
        assert reactor.events("ws.reconnect") == []
        assert await reactor.terminate() == 0
        notes.drain()
        assert notes.all[-1] == "STOPPING=1"
    finally:
        if reactor.alive:
            await reactor.kill9()
        await sim.terminate()


@pytest.mark.parametrize("unit", ["okx-margin-reactor.service", "okx-margin-reactor@.service"])
def test_units_reload_through_the_waiting_helper(unit: str) -> None:
    """``systemctl reload`` fails on a refusal: ExecReload= is ``reactor reload`` (SIGHUP, then
    the reactor's answer as the exit status), for the same config as ExecStart=."""
    text = (REPO / "deploy" / unit).read_text()
    start = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    reload = next(x for x in text.splitlines() if x.startswith("ExecReload="))
    config = start.split("--config ", 1)[1]
    assert reload.startswith("ExecReload=/opt/okx-margin-reactor/.venv/bin/reactor reload ")
    assert f"--config {config} " in reload and "--pid $MAINPID" in reload


async def test_reactor_reload_exit_status_is_the_reload_result(tmp_path: Path) -> None:
    """``reactor reload``: 0 when applied, 1 when refused (the reason on stderr), 2 when no
    reactor holds the state dir (issue 20, item 3)."""
    scen = scenario(account("A", 1, [cro(margin="10")]), account("B", 2, []))
    sim, url = await start_sim(scen, tmp_path)
    env = credentials_env(scen)
    path = write_config(tmp_path, url, [{"name": "A"}], **FAST)

    async def reload(*extra: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "reactor", "reload", "-c", str(path), "--timeout", "30", *extra,
            env=os.environ | env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, (out + err).decode()

    try:
        assert (await reload())[0] == 2  # nobody runs yet
        reactor = await Proc.start(
            "reactor", "run", "-c", str(path), env=env, stderr=tmp_path / "reactor.err"
        )
        try:
            await reactor.wait_event("ws.connected")
            _write(path, [{"name": "A"}, {"name": "B"}])
            code, text = await reload("--pid", str(reactor.proc.pid))
            assert (code, text.strip()) == (0, "reload applied")
            await reactor.wait_event("reactor.reloaded")

            _write(path, [{"name": "A"}, {"name": "B"}], policy={"buffer": "2"})
            code, text = await reload()
            assert code == 1 and "reload refused" in text and "restart to change policy" in text
            code, text = await reload("--pid", "1")  # not the holder: refused before any signal
            assert code == 2 and "is pid" in text
            assert reactor.alive and len(reactor.events("reactor.reload.refused")) == 1
        finally:
            if reactor.alive:
                await reactor.kill9()
    finally:
        await sim.terminate()


async def test_reload_refusals_leave_the_running_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim_factory: Any
) -> None:
    from reactor.config import load_config
    from reactor.service import app
    from tests.engine.harness import running, set_credentials

    scen = scenario(account("A", 1, [cro(margin="10")]), account("B", 2, []))
    sim = await sim_factory(scen, price_walk=False)
    set_credentials(monkeypatch, scen)
    path = write_config(tmp_path, sim.url, [{"name": "A"}], **FAST)
    cfg = load_config(path)
    async with running(cfg) as (rt, logs):
        cases = [
            ([{"name": "A"}, {"name": "Nobody"}], "Nobody: no credentials"),
            ([{"name": "A", "role": "main"}], "A: role changed"),
            ([{"name": "A", "enabled": False}], "every account is disabled"),
        ]
        for accounts, why in cases:
            _write(path, accounts)
            assert await app.reload(rt, path) is False
            assert why in logs.events("reactor.reload.refused")[-1]["error"]
            assert rt.cfg is cfg and list(rt.sessions) == ["A"]
        _write(path, [{"name": "A"}, {"name": "B"}])
        assert await app.reload(rt, path) is True
        assert sorted(rt.sessions) == ["A", "B"]
        assert [a.name for a in rt.cfg.accounts] == ["A", "B"]


async def test_refused_reload_is_reported_to_systemd(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sim_factory: Any,
    notify: tuple[socket.socket, str],
) -> None:
    """``systemctl reload`` of a refused config: RELOADING=1, then READY=1 with a STATUS=
    naming the refusal, which stays until a reload is applied (issue 20, item 3)."""
    from reactor.config import load_config
    from reactor.service.reload import reload_loop
    from reactor.service.systemd import SystemdNotifier
    from tests.engine.harness import running, set_credentials, wait_for

    sock, sock_path = notify
    notes = Notes(sock)
    scen = scenario(account("A", 1, [cro(margin="10")]), account("B", 2, []))
    sim = await sim_factory(scen, price_walk=False)
    set_credentials(monkeypatch, scen)
    path = write_config(tmp_path, sim.url, [{"name": "A"}], **FAST)
    notifier = SystemdNotifier({"NOTIFY_SOCKET": sock_path})
    wake = asyncio.Event()
    async with running(load_config(path)) as (rt, _logs):
        task = asyncio.create_task(reload_loop(rt, path, wake, notifier, lambda: "1/1 live"))
        try:
            _write(path, [{"name": "A"}], policy={"buffer": "2"})
            wake.set()
            await wait_for(lambda: any("READY=1" in m for m in (notes.drain(), notes.all)[1]))
            (begun, done) = notes.all
            assert begun.startswith("RELOADING=1\nMONOTONIC_USEC=")
            assert done.startswith("READY=1\nSTATUS=reload refused: ")
            assert "restart to change policy" in done and done.endswith("; 1/1 live")
            assert rt.reload_refused is not None

            _write(path, [{"name": "A"}, {"name": "B"}], policy={"buffer": "1.5"})
            wake.set()
            await wait_for(lambda: len((notes.drain(), notes.all)[1]) == 4)
            assert notes.all[2].startswith("RELOADING=1\n")
            assert notes.all[3] == "READY=1\nSTATUS=1/1 live"
            assert rt.reload_refused is None
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
