"""`python -m reactor.sim` as a process, and scenario validation messages."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from reactor.sim.exchange import Exchange
from reactor.sim.scenario import ScenarioError, load_scenario
from tests.conftest import SCENARIOS


def run_sim(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reactor.sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_prints_ready_line_and_stops_on_sigterm() -> None:
    proc = run_sim("--scenario", str(SCENARIOS / "demo.yaml"))
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "sim.ready"
        assert ready["url"].startswith("http://127.0.0.1:")
        assert ready["ws_url"] == "ws" + ready["url"][4:] + "/ws/v5/private"
        state = httpx.get(ready["url"] + "/sim/state", timeout=5).json()
        assert len(state["accounts"]) == 5
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert proc.stdout.read() == ""  # exactly one line on stdout
    finally:
        proc.kill()
        proc.communicate()


def test_cli_bad_scenario_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("instruments: []\naccounts: []\n")
    proc = run_sim("--scenario", str(bad))
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "bad.yaml" in err and "instruments" in err


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("instruments: [\n", "not valid YAML"),
        ("- 1\n", "mapping"),
        (
            "instruments: [{instId: A-USDT-SWAP, ctVal: '0', markPx: '1'}]\naccounts: []",
            "instruments.0.ctVal",
        ),
        (
            "instruments: [{instId: A-USDT-SWAP, ctVal: '1', markPx: '1'}]\n"
            "accounts: [{name: a, apiKey: k, secretKey: s, passphrase: p, balance: '1',"
            " positions: [{instId: B-USDT-SWAP, posSide: long, pos: '1', avgPx: '1',"
            " lever: '1', margin: '1'}]}]",
            "B-USDT-SWAP",
        ),
        (
            "instruments: [{instId: A-USDT-SWAP, ctVal: '1', markPx: '1'}]\n"
            "accounts: [{name: a, apiKey: k, secretKey: s, passphrase: p, balance: '1',"
            " positions: [{instId: A-USDT-SWAP, posSide: long, pos: '1', avgPx: '1',"
            " lever: '1'}]}]",
            "margin is required",
        ),
    ],
)
def test_scenario_errors_name_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(ScenarioError) as e:
        load_scenario(f)
    assert needle in str(e.value) and "s.yaml" in str(e.value)


def test_missing_file() -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario("/nonexistent/x.yaml")


def test_scenario_secrets_not_in_repr() -> None:
    sc = load_scenario(SCENARIOS / "cro.yaml")
    assert "sim-secret" not in repr(sc) and "sim-pass" not in repr(sc)


def test_demo_book_shape() -> None:
    sc = load_scenario(SCENARIOS / "demo.yaml")
    ex = Exchange.from_scenario(sc)
    mains = [a for a in ex.accounts.values() if a.main]
    assert len(mains) == 1 and len(ex.accounts) == 5
    # nothing in the demo book is liquidated on load
    assert sum(len(a.positions) for a in ex.accounts.values()) == sum(
        len(a.positions) for a in sc.accounts
    )
    cro = ex.accounts["Wu666666"].positions[("CRO-USDT-SWAP", "long", "isolated")]
    assert (cro.pos, cro.avg_px, cro.lever, cro.margin) == (
        108,
        Decimal("0.0905"),
        10,
        Decimal("20.29"),
    )


def test_every_demo_position_parses_with_the_reactor_parser() -> None:
    from reactor.okx.models import parse_position

    ex = Exchange.from_scenario(load_scenario(SCENARIOS / "demo.yaml"))
    for name in ex.accounts:
        for raw in ex.positions(name):
            p = parse_position(name, raw)
            assert p.is_managed_kind == (raw["mgnMode"] == "isolated")
            numbers = [v for k, v in raw.items() if k not in ("instId", "instType", "ccy")]
            assert not any("E" in v for v in numbers)  # no exponent anywhere


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--time-scale", "0", "positive"),
        ("--time-scale", "x", "not a number"),
        ("--page-size", "0", "at least 1"),
    ],
)
def test_bad_push_flags_exit_2(flag: str, value: str, needle: str) -> None:
    proc = run_sim("--scenario", str(SCENARIOS / "cro.yaml"), flag, value)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and flag in err and needle in err


def test_scenario_simulator_section_and_cli_flags(tmp_path: Path) -> None:
    """`simulator:` in a scenario sets the push switches; CLI flags override them."""
    raw = (SCENARIOS / "cro.yaml").read_text() + (
        "simulator: {snapshot_page_size: 7, time_scale: 0.5, legacy_push_fields: false}\n"
    )
    path = tmp_path / "s.yaml"
    path.write_text(raw)
    spec = load_scenario(path).simulator
    assert (spec.snapshot_page_size, spec.time_scale, spec.legacy_push_fields) == (7, 0.5, False)
    assert spec.demo_keys and spec.close_on_login_failure
    proc = run_sim("--scenario", str(path), "--page-size", "2", "--legacy-push-fields")
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "sim.ready"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    with pytest.raises(ScenarioError, match="snapshot_page_size"):
        bad = tmp_path / "b.yaml"
        bad.write_text(
            (SCENARIOS / "cro.yaml").read_text() + "simulator: {snapshot_page_size: 0}\n"
        )
        load_scenario(bad)
