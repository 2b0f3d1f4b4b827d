"""Start-up as a process: one controller per state dir, one clear line and exit 2 for every
start-up problem, transient network failures retried in-process (subprocesses, real sim)."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from reactor.service.app import LEDGER_FILE
from tests.engine.harness import write_config
from tests.integration.faults.common import FAST, account, cro, report, scenario
from tests.integration.faults.procs import Proc, credentials_env, start_reactor, start_sim

W = "Wu666666"


async def _run_to_exit(
    cfg_path: Path, env: dict[str, str], *args: str, timeout_s: float = 30
) -> tuple[int, str, str, float]:
    """``reactor <args>`` (default ``run --config``) to its exit: (rc, stdout, stderr, s)."""
    argv = args or ("run", "--config", str(cfg_path))
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reactor",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode(), time.monotonic() - t0


def _edit(cfg_path: Path, **changes: Any) -> None:
    raw = yaml.safe_load(cfg_path.read_text())
    raw.update(changes)
    cfg_path.write_text(yaml.safe_dump(raw))


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


async def test_second_reactor_on_the_same_state_dir_exits_2_naming_the_holder(tmp_path):
    scen = scenario(account(W, 1, [cro()]))
    sim, url = await start_sim(scen, tmp_path)
    env = credentials_env(scen)
    cfg_path = write_config(tmp_path, url, [{"name": W}], **FAST)
    first = await start_reactor(cfg_path, env, tmp_path)
    try:
        await first.wait_event("reactor.started")
        rc, _, err, took = await _run_to_exit(cfg_path, env)
        report("second reactor refused after", took)
        line = _one_line(err)
        assert rc == 2
        assert f"pid {first.proc.pid}" in line and "in use by another reactor" in line
        assert first.alive
        # The designed concurrent path still works: the CLI records a maintenance.
        rc, _, err, _ = await _run_to_exit(
            cfg_path,
            env,
            "maintenance",
            "record",
            "--config",
            str(cfg_path),
            "--account",
            W,
            "--inst-id",
            "CRO-USDT-SWAP",
            "--pos-side",
            "long",
            "--key",
            "ord-1",
        )
        assert rc == 0, err
        await first.wait_event("maintenance.seen")
        # SIGKILL leaves the lock file behind, but not the lock: a new reactor starts.
        await first.kill9()
        again = await start_reactor(cfg_path, env, tmp_path)
        await again.wait_event("reactor.started")
        assert await again.terminate() == 0
    finally:
        if first.alive:
            await first.terminate()
        await sim.terminate()


def _cfg_without_sim(tmp_path: Path, port: int = 1, **changes: Any) -> Path:
    cfg_path = write_config(tmp_path, f"http://127.0.0.1:{port}", [{"name": W}], **FAST)
    if changes:
        _edit(cfg_path, **changes)
    return cfg_path


ENV = credentials_env(scenario(account(W, 1, [])))


async def test_corrupted_ledger_exits_2(tmp_path):
    cfg_path = _cfg_without_sim(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (state / LEDGER_FILE).write_bytes(b"\x00garbage" * 4096)
    rc, _, err, _ = await _run_to_exit(cfg_path, ENV)
    assert rc == 2
    assert "not a usable SQLite database" in _one_line(err)
    for command in (("journal",), ("maintenance", "list")):
        rc, _, err, _ = await _run_to_exit(cfg_path, ENV, *command, "--config", str(cfg_path))
        assert rc == 2 and "not a usable SQLite database" in _one_line(err)


async def test_unwritable_state_dir_exits_2(tmp_path):
    # As root no permission bit stops us; /proc refuses new files even to root.
    cfg_path = _cfg_without_sim(tmp_path, state_dir="/proc")
    rc, _, err, _ = await _run_to_exit(cfg_path, ENV)
    assert rc == 2
    assert "state_dir /proc" in _one_line(err)


async def test_missing_state_dir_that_cannot_be_created_exits_2(tmp_path):
    (tmp_path / "a-file").write_text("")
    cfg_path = _cfg_without_sim(tmp_path, state_dir=str(tmp_path / "a-file" / "state"))
    rc, _, err, _ = await _run_to_exit(cfg_path, ENV)
    assert rc == 2
    assert "missing and cannot be created" in _one_line(err)


async def test_status_port_in_use_exits_2(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg_path = _cfg_without_sim(
            tmp_path, status={"enabled": True, "host": "127.0.0.1", "port": port}
        )
        rc, _, err, _ = await _run_to_exit(cfg_path, ENV)
    assert rc == 2
    assert f"status.port: 127.0.0.1:{port} in use" in _one_line(err)


async def test_every_account_disabled_exits_2(tmp_path):
    cfg_path = _cfg_without_sim(tmp_path, accounts=[{"name": W, "enabled": False}])
    rc, _, err, _ = await _run_to_exit(cfg_path, ENV)
    assert rc == 2
    assert "every account is disabled" in _one_line(err)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_exchange_unreachable_at_start_is_retried_in_process(tmp_path):
    scen = scenario(account(W, 1, [cro()]))
    port = _free_port()
    cfg_path = _cfg_without_sim(tmp_path, port=port)
    _edit(
        cfg_path,
        venue={
            "kind": "sim",
            "rest_url": f"http://127.0.0.1:{port}",
            "ws_private_url": f"ws://127.0.0.1:{port}/ws/v5/private",
        },
    )
    reactor = await start_reactor(cfg_path, credentials_env(scen), tmp_path)
    sim: Proc | None = None
    try:
        await reactor.wait_event("reactor.start.retry", n=2)
        assert reactor.alive  # before: exit 1 after ~0.75 s (RequestNotSent)
        sim, _ = await start_sim(scen, tmp_path, port=port)
        await reactor.wait_event("reactor.started", timeout_s=40)
        await reactor.wait_event("margin.adjust.ok", timeout_s=15)
    finally:
        rc = await reactor.terminate()
        if sim is not None:
            await sim.terminate()
    assert rc == 0
    retry = reactor.events("reactor.start.retry")[0]
    assert retry["what"] == "instruments" and "RequestNotSent" in retry["error"]


async def test_sigterm_while_retrying_at_start_exits_0(tmp_path):
    cfg_path = _cfg_without_sim(tmp_path, port=_free_port())
    reactor = await start_reactor(cfg_path, ENV, tmp_path)
    await reactor.wait_event("reactor.start.retry")
    assert await reactor.terminate() == 0
    assert not (tmp_path / "state" / LEDGER_FILE).exists() or sqlite3.connect(
        tmp_path / "state" / LEDGER_FILE
    ).execute("SELECT COUNT(*) FROM journal").fetchone() == (0,)


async def test_missing_or_invalid_scenario_file_exits_2(tmp_path):
    """The embedded simulator's book: a missing file was a traceback."""
    cfg_path = _cfg_without_sim(tmp_path, venue={"kind": "sim", "scenario": "nope.yaml"})
    for command in (("run",), ("check-config",)):
        rc, _, err, _ = await _run_to_exit(cfg_path, ENV, *command, "--config", str(cfg_path))
        assert rc == 2
        line = _one_line(err)
        assert "venue.scenario" in line and "nope.yaml: no such file" in line
    (tmp_path / "bad.yaml").write_text("accounts: [1, 2\n")
    _edit(cfg_path, venue={"kind": "sim", "scenario": "bad.yaml"})
    rc, _, err, _ = await _run_to_exit(cfg_path, ENV)
    assert rc == 2
    assert "venue.scenario" in _one_line(err) and "not valid YAML" in _one_line(err)
