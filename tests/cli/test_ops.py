"""The command line for people: --version, -c and $REACTOR_CONFIG, log flags, pause/resume,
``plan`` and ``check-config --online`` (the last two over real sockets against ``reactor sim``)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from reactor import __version__
from reactor.cli.main import main
from reactor.store import SqliteLedger
from tests.engine.harness import write_config
from tests.integration.faults.common import account, cro, doge, scenario
from tests.integration.faults.procs import credentials_env, start_sim
from tests.paths import REPO


@pytest.fixture(autouse=True)
def _logging_back_to_stdout() -> Iterator[None]:
    """``main()`` configures logging on the stream of the moment (capsys's, closed after the
    test): point it back at stdout so later tests' loggers do not write to a closed file."""
    yield
    from reactor import log as logging_setup

    logging_setup.configure("info", "json")


def _cfg(tmp_path: Path, accounts: list[dict[str, Any]] | None = None) -> Path:
    return write_config(tmp_path, "http://127.0.0.1:9", accounts or [{"name": "Wu666666"}])


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"reactor {__version__}"


def test_short_c_and_reactor_config_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _cfg(tmp_path)
    monkeypatch.setenv("OKX_WU666666_API_KEY", "k")
    monkeypatch.setenv("OKX_WU666666_SECRET_KEY", "s")
    monkeypatch.setenv("OKX_WU666666_PASSPHRASE", "p")
    assert main(["check-config", "-c", str(path)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["config"] == str(path)
    monkeypatch.setenv("REACTOR_CONFIG", str(path))
    assert main(["check-config"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["config"] == str(path)
    # -c wins over the environment
    monkeypatch.setenv("REACTOR_CONFIG", str(tmp_path / "missing.yaml"))
    assert main(["check-config", "-c", str(path)]) == 0
    assert main(["check-config"]) == 2
    assert "missing.yaml: cannot read" in capsys.readouterr().err


def test_no_config_anywhere_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REACTOR_CONFIG", raising=False)
    assert main(["journal"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["reactor: --config: required (or set REACTOR_CONFIG)"]


def test_dry_run_config_key(tmp_path: Path) -> None:
    from reactor.config import load_config

    path = _cfg(tmp_path)
    assert load_config(path).dry_run is False
    raw = yaml.safe_load(path.read_text())
    raw["dry_run"] = True
    path.write_text(yaml.safe_dump(raw))
    assert load_config(path).dry_run is True
    raw["dry_run"] = "sometimes"
    path.write_text(yaml.safe_dump(raw))
    assert main(["check-config", "-c", str(path)]) == 2


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "reactor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=str(REPO),
    )
    return done.returncode, done.stdout, done.stderr


def test_log_format_and_level_flags(tmp_path: Path) -> None:
    path = _cfg(tmp_path)
    args = ("pause", "-c", str(path), "--account", "Wu666666")
    rc, out, _ = _run(*args, "--log-format", "console")
    assert rc == 0
    line = out.strip()
    assert "control.paused" in line and not line.startswith("{")
    rc, out, _ = _run(*args, "--log-format", "json")
    assert rc == 0 and json.loads(out)["event"] == "control.pause.duplicate"
    rc, out, _ = _run(*args, "--log-format", "json", "--log-level", "warning")
    assert rc == 0 and out == ""
    rc, _, err = _run(*args, "--log-format", "xml")
    assert rc == 2 and "--log-format" in err


def test_pause_and_resume_persist_in_the_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _cfg(tmp_path, [{"name": "A"}, {"name": "B"}])
    base = ["-c", str(path), "--log-level", "warning"]
    assert main(["pause", *base, "--account", "A", "--reason", "hedging"]) == 0
    pos = ["--account", "B", "--inst-id", "CRO-USDT-SWAP", "--pos-side", "long"]
    assert main(["pause", *base, *pos]) == 0
    with SqliteLedger(tmp_path / "state" / "reactor.sqlite") as ledger:
        keys = {p.key: p.reason for p in ledger.pauses()}
    assert keys == {("A", None, None): "hedging", ("B", "CRO-USDT-SWAP", "long"): ""}
    assert main(["resume", *base, *pos]) == 0
    with SqliteLedger(tmp_path / "state" / "reactor.sqlite") as ledger:
        assert [p.key for p in ledger.pauses()] == [("A", None, None)]
    capsys.readouterr()
    assert main(["pauses", "--json", *base]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["account"], row["instId"], row["reason"], row["source"]) == (
        "A",
        None,
        "hedging",
        "cli",
    )
    assert main(["pause", *base, "--account", "nobody"]) == 2
    assert main(["pause", *base, "--account", "A", "--inst-id", "CRO-USDT-SWAP"]) == 2


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reactor",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_plan_prints_what_would_be_done_and_changes_nothing(tmp_path: Path) -> None:
    scen = scenario(account("Wu666666", 1, [cro(), doge(margin="10")]))
    sim, url = await start_sim(scen, tmp_path)
    try:
        path = write_config(tmp_path, url, [{"name": "Wu666666"}])
        env = credentials_env(scen)
        pos = ["--account", "Wu666666", "--inst-id", "DOGE-USDT-SWAP", "--pos-side", "short"]
        assert main(["pause", "-c", str(path), "--log-level", "error", *pos, "--reason", "x"]) == 0
        rc, out, err = await _cli("plan", "-c", str(path), "--log-level", "error", env=env)
        assert rc == 0, err
        lines = out.splitlines()
        assert lines[0].split()[:3] == ["account", "instId", "posSide"]
        cro_row = next(line.split() for line in lines if "CRO-USDT-SWAP" in line)
        # position, margin, count, target, band, floor, action, amount: the seed case
        assert cro_row[3:6] == ["108", "20.29", "0"]
        assert cro_row[6:8] == ["10", "9.5-10.5"]
        # decide() says 10.03; the simulator's estAvailTrans (OKX's own limit) caps it, as it
        # caps the engine's call
        assert cro_row[9] == "reduce"
        assert Decimal(cro_row[10]) <= Decimal("10.03")
        if cro_row[10] != "10.03":
            assert "capped by estAvailTrans" in " ".join(cro_row[11:])
        assert any(
            "adjust-leverage-info" in r["path"] and "CRO-USDT-SWAP" in r["path"]
            for r in await _sim_requests(url)
        )
        doge_row = next(line for line in lines if "DOGE-USDT-SWAP" in line)
        assert "paused: x" in doge_row
        assert lines[-1] == "2 positions, 1 would be corrected now"
        requests = await _sim_requests(url)
        assert not [r for r in requests if "margin-balance" in r["path"]]
    finally:
        await sim.terminate()


async def _sim_requests(url: str) -> list[dict[str, Any]]:
    import httpx

    async with httpx.AsyncClient() as client:
        r = await client.get(url + "/sim/requests")
        r.raise_for_status()
        body = r.json()
    return list(body["requests"] if isinstance(body, dict) else body)


async def test_check_config_online_names_every_failing_account(tmp_path: Path) -> None:
    ok = account("Good", 1, [cro()])
    read_only = account("ReadOnly", 2, []) | {"perm": "read_only"}
    bad_pass = account("BadPass", 3, [])
    scen = scenario(ok, read_only, bad_pass)
    sim, url = await start_sim(scen, tmp_path)
    try:
        names = [{"name": "Good"}, {"name": "ReadOnly"}, {"name": "BadPass"}]
        path = write_config(tmp_path, url, names)
        env = credentials_env(scen) | {"OKX_BADPASS_PASSPHRASE": "wrong"}
        rc, out, err = await _cli(
            "check-config", "-c", str(path), "--online", "--log-format", "json", env=env
        )
        assert rc == 2, (out, err)
        (line,) = err.strip().splitlines()
        assert line.startswith("reactor: 2 of 3 accounts failed the online check")
        assert "ReadOnly: API key lacks trade permission (has: read_only)" in line
        assert "BadPass: OKX refused" in line
        assert "Good" not in line
        events = [json.loads(x) for x in out.splitlines()]
        good = next(e for e in events if e["event"] == "config.online.ok")
        assert (good["account"], good["perm"], good["positions"]) == ("Good", "read_only,trade", 1)
        assert "wrong" not in out + err
        # the healthy account alone passes
        raw = yaml.safe_load(path.read_text())
        raw["accounts"] = [{"name": "Good"}]
        path.write_text(yaml.safe_dump(raw))
        rc, out, err = await _cli("check-config", "-c", str(path), "--online", env=env)
        assert rc == 0, err
    finally:
        await sim.terminate()


def test_plan_refuses_the_embedded_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 20 item 8: it planned a fresh throwaway book (exit 0); now one line, exit 2."""
    assert main(["plan", "-c", str(REPO / "config.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reactor: plan: the embedded simulator")


def test_online_check_refuses_the_embedded_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-c", str(REPO / "config.yaml"), "--online"]) == 2
    assert "--online: the embedded simulator" in capsys.readouterr().err


async def test_online_ws_login(sim_factory: Any) -> None:
    from reactor.cli.online_check import ws_login
    from reactor.okx.credentials import Credentials

    scen = scenario(account("Good", 1, []))
    sim = await sim_factory(scen, price_walk=False)
    good = Credentials("key-1", "secret-1", "pass-1")
    assert await ws_login(sim.ws_url, "Good", good, simulated=True, timeout_s=5) is None
    bad = Credentials("key-1", "secret-1", "wrong-passphrase")
    problem = await ws_login(sim.ws_url, "Good", bad, simulated=True, timeout_s=5)
    assert problem is not None and problem.startswith("WebSocket login refused: 60")
    assert "wrong-passphrase" not in problem
    gone = await ws_login("ws://127.0.0.1:9/ws", "Good", good, simulated=True, timeout_s=5)
    assert gone is not None and gone.startswith("WebSocket unreachable")


async def test_check_config_online_five_good_accounts_pass_every_run(
    tmp_path: Path, sim_factory: Any
) -> None:
    """Five correct accounts at once never get a false "HTTP 429": the WebSocket logins share
    one pacer holding each slot until the connect is answered (as ``run`` does), and a 429
    is retried after a back-off (issue 20, item 1: exited 2 in 10 of 10 runs)."""
    from reactor.cli.online_check import check_accounts
    from reactor.config import load_config, resolve_credentials

    scen = scenario(*(account(f"Acc{i}", i, [cro()] if i == 1 else []) for i in range(1, 6)))
    sim = await sim_factory(scen, price_walk=False)
    path = write_config(tmp_path, sim.url, [{"name": f"Acc{i}"} for i in range(1, 6)])
    env = credentials_env(scen)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        cfg = load_config(path)
        creds = resolve_credentials(cfg)
        rest_url, ws_url = cfg.venue.urls()
        for run in range(4):
            results = await check_accounts(cfg, creds, rest_url, ws_url)
            assert [r.problem for r in results] == [None] * 5, (run, results)
    rc, out, err = await _cli("check-config", "-c", str(path), "--online", env=env)
    assert rc == 0, (out, err)


async def test_online_ws_login_retries_a_429(sim_factory: Any) -> None:
    """Another process used the IP's connection window: the 429 is retried after a back-off,
    not reported as a failed login."""
    from reactor.cli.online_check import ws_login
    from reactor.okx.credentials import Credentials
    from reactor.sim.ws_limits import WsLimits

    scen = scenario(account("Good", 1, []))
    sim = await sim_factory(scen, price_walk=False, ws_limits=WsLimits(connects_per_s=1))
    good = Credentials("key-1", "secret-1", "pass-1")
    assert sim.connects.allow("127.0.0.1")  # the window is used up by "someone else"
    assert await ws_login(sim.ws_url, "Good", good, simulated=True, timeout_s=5) is None
    assert sim.connects.refused >= 1
    assert sim.connects.allow("127.0.0.1") is False  # our connection counted
    # every attempt refused: reported, naming the 429
    problem = await ws_login(
        sim.ws_url, "Good", good, simulated=True, timeout_s=5, attempts=1, backoff_s=0.01
    )
    assert problem is not None and "429" in problem


@pytest.mark.parametrize(
    "command", [["journal"], ["maintenance", "list"], ["pauses"]], ids=" ".join
)
def test_ledger_reads_refuse_a_state_dir_without_a_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """A wrong config or state dir is one line and exit 2, not an empty ledger created."""
    path = _cfg(tmp_path)
    assert main([*command, "-c", str(path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"reactor: state_dir {tmp_path / 'state'}: no ledger (reactor.sqlite)")
    assert not (tmp_path / "state" / "reactor.sqlite").exists()


def test_pause_warns_when_no_reactor_holds_the_state_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reactor.store.state_dir import StateLock

    path = _cfg(tmp_path, [{"name": "A"}])
    base = ["-c", str(path), "--log-format", "json"]
    assert main(["pause", *base, "--account", "A"]) == 0
    (warn,) = capsys.readouterr().err.strip().splitlines()
    assert warn.startswith(
        f"reactor: warning: no running reactor holds state_dir {tmp_path / 'state'}"
    )
    with StateLock(tmp_path / "state"):  # what a running reactor holds
        assert main(["resume", *base, "--account", "A"]) == 0
        captured = capsys.readouterr()
    assert "control.resumed" in captured.out and captured.err == ""
