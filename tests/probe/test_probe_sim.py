"""``reactor probe`` against the simulator over real sockets (REST and private WebSocket)."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reactor.cli.main import main as reactor_main
from reactor.config import load_config
from reactor.okx.endpoints import MARGIN_BALANCE
from reactor.probe.driver import run_probe
from reactor.probe.record import read_records
from reactor.probe.script import ProbeOptions
from reactor.sim.server import Simulator

CRO = "CRO-USDT-SWAP"
KEY, SECRET, PASSPHRASE = "probe-key-0123456789", "probe-secret-abcdef", "probe-pass-xyz"
SCENARIO: dict[str, Any] = {
    "instruments": [{"instId": CRO, "ctVal": "10", "markPx": "0.0950", "mmrRate": "0.004"}],
    "accounts": [
        {
            "name": "A",
            "apiKey": KEY,
            "secretKey": SECRET,
            "passphrase": PASSPHRASE,
            "balance": "1000",
            "positions": [
                {"instId": CRO, "posSide": "long", "pos": "108", "avgPx": "0.0905",
                 "lever": "10", "margin": "20.29"},
            ],
        },
        {"name": "M", "apiKey": "k-m", "secretKey": "s-m", "passphrase": "p-m",
         "balance": "1", "main": True, "positions": []},
    ],
}  # fmt: skip
FAST = ProbeOptions(window_s=1.0, event_wait_s=3.0, bill_wait_s=0.5, bill_poll_s=0.25)


@pytest.fixture
async def sim(sim_factory: Any) -> Simulator:
    sim: Simulator = await sim_factory(SCENARIO, price_walk=False)
    return sim


def write_config(tmp_path: Path, sim: Simulator, *, kind: str = "sim", **timing: Any) -> Path:
    creds = tmp_path / "creds.yaml"
    creds.write_text(
        yaml.safe_dump({"A": {"api_key": KEY, "secret_key": SECRET, "passphrase": PASSPHRASE}})
    )
    creds.chmod(0o600)
    raw = {
        "venue": {"kind": kind, "rest_url": sim.url, "ws_private_url": sim.ws_url},
        "state_dir": str(tmp_path / "state"),
        "credentials_file": str(creds),
        "accounts": [{"name": "A"}, {"name": "M", "role": "main"}],
        "targets": [{"min_count": 0, "target": "10", "band": ["9.5", "10.5"]}],
        "timing": {"request_timeout_s": 2, **timing},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def sim_margin(sim: Simulator) -> Decimal:
    async with httpx.AsyncClient(base_url=sim.url) as c:
        state = (await c.get("/sim/state")).json()
    acct = next(a for a in state["accounts"] if a["name"] == "A")
    return Decimal(acct["positions"][0]["margin"])


async def margin_calls(sim: Simulator) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=sim.url) as c:
        reqs = (await c.get("/sim/requests")).json()
    return [r for r in reqs if r["path"].endswith("/margin-balance")]


async def fault(sim: Simulator, **body: Any) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as c:
        (await c.post("/sim/faults", json={"account": "A", **body})).raise_for_status()


def no_secret_in(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            text = path.read_text()
            for secret in (KEY, SECRET, PASSPHRASE, "OK-ACCESS"):
                assert secret not in text, f"{secret!r} in {path}"
    for r in read_records(folder / "frames.jsonl"):
        if r["kind"] == "ws_out" and '"login"' in r["text"]:
            arg = json.loads(r["text"])["args"][0]
            assert arg["sign"] == arg["apiKey"] == arg["passphrase"] == "<redacted>"


async def test_probe_records_every_frame_derives_the_facts_and_restores_the_margin(
    tmp_path: Path, sim: Simulator
) -> None:
    cfg = load_config(write_config(tmp_path, sim))
    out = tmp_path / "capture"
    stdout = io.StringIO()
    run = await run_probe(cfg, "A", out, FAST, stdout=stdout)
    assert run.exit_code == 0, stdout.getvalue()
    assert await sim_margin(sim) == Decimal("20.29")  # net margin change zero

    facts = json.loads((out / "facts.json").read_text())
    assert facts == json.loads(json.dumps(run.facts, default=str))
    ws = facts["ws"]
    assert ws["login_code"] == "0" and ws["subscribe_ack"] is not None
    assert ws["snapshots"]["count"] >= 1 and ws["pages"]["curPage"]["types"] == ["int"]
    assert ws["event_type"]["absent"] == 0
    assert ws["closed_in_window"] is None
    assert facts["position"] == {"instId": CRO, "posSide": "long"}

    add, red = facts["margin_calls"]["add_1"], facts["margin_calls"]["reduce_1"]
    for call, delta in ((add, "1"), (red, "-1")):
        assert call["code"] == "0" and call["applied"] is True
        assert call["event_push"]["seen"] is True
        assert call["event_push"]["eventType"] == "event_update"
        assert call["event_push"]["lever_changed"] is False
        assert call["event_push"]["carries_transfer"] is True
        assert Decimal(call["rest_after"]["margin_delta"]) == Decimal(delta)
        assert call["answer"]["instId"] == CRO
    for call, sub_type in ((add, "160"), (red, "161")):
        bill = call["bill"]
        assert bill["available"] is True and bill["seen"] is True
        assert bill["bill"]["type"] == "6" and bill["bill"]["subType"] == sub_type
        assert Decimal(bill["bill"]["sz"]) == 1 and bill["latency_ms"] >= 0

    # estAvailTrans against the reactor's floor; the simulator's default reduce rule is the
    # strictest variant (initial margin at the higher of mark and avgPx, plus a closing-fee
    # reserve), so OKX-as-simulated allows less than the reactor's floor would take.
    lim = facts["reduce_limit"]
    assert lim["available"] is True and lim["margin"] == "20.29" and lim["lever"] == "10"
    est = Decimal(lim["est_avail_trans"])
    assert Decimal(lim["reactor_max_reduce"]) == Decimal("20.29") - Decimal(lim["reactor_floor"])
    assert Decimal(lim["est_minus_reactor"]) < 0
    above = facts["boundary"]["above_limit"]
    assert Decimal(above["amt"]) > est and Decimal(above["amt"]) - est <= Decimal("0.01")
    assert above["code"] == "59301" and above["as_expected"] is True
    at = facts["boundary"]["at_limit"]
    assert at["code"] == "0" and at["applied"] is True and Decimal(at["amt"]) <= est
    assert facts["reversal"]["net_left"] == "0" and facts["reversal"]["calls"] == 5
    amounts = [json.loads(c["body"]) for c in await margin_calls(sim)]
    assert [(a["type"], a["amt"]) for a in amounts] == [
        ("add", "1"),
        ("reduce", "1"),
        ("reduce", above["amt"]),
        ("reduce", at["amt"]),
        ("add", at["amt"]),
    ]

    records = read_records(out / "frames.jsonl")
    kinds = {r["kind"] for r in records}
    assert {"ws_open", "ws_out", "ws_in", "http_request", "http_response", "step"} <= kinds
    assert [r["seq"] for r in records] == list(range(len(records)))
    for name in ("ws_positions_snapshot", "margin_balance", "margin_balance_59301", "bills",
                 "bill_margin_transfer", "adjust_leverage_info", "README"):  # fmt: skip
        assert list(out.glob(f"{name}.*")), name
    assert json.loads((out / "source.json").read_text())["source"] == "reactor probe"
    no_secret_in(out)
    summary = stdout.getvalue()
    assert "add_1: add 1 -> code 0" in summary and "bill type 6/160 seen" in summary
    assert (
        "above_limit: reduce" in summary and "code 59301 (expected 59301, as expected)" in summary
    )
    assert "net margin moved by the probe 0" in summary


async def test_an_answer_lost_after_the_transfer_is_resolved_and_undone(
    tmp_path: Path, sim: Simulator
) -> None:
    cfg = load_config(write_config(tmp_path, sim, request_timeout_s=0.5))
    # The simulator applies the add, then holds the answer past the client's timeout.
    await fault(sim, kind="rest_delay", path=MARGIN_BALANCE,
                delay_s=2)  # fmt: skip
    run = await run_probe(cfg, "A", tmp_path / "out", FAST, stdout=io.StringIO())
    add = run.facts["margin_calls"]["add_1"]
    assert add["code"] == "ambiguous" and add["applied"] is True
    assert run.facts["margin_calls"]["reduce_1"]["applied"] is True
    assert run.exit_code == 0
    assert await sim_margin(sim) == Decimal("20.29")


async def test_a_refused_add_is_recorded_and_nothing_else_moves(
    tmp_path: Path, sim: Simulator
) -> None:
    cfg = load_config(write_config(tmp_path, sim))
    await fault(sim, kind="rest_error", path=MARGIN_BALANCE,
                code="50013")  # fmt: skip
    run = await run_probe(cfg, "A", tmp_path / "out", FAST, stdout=io.StringIO())
    assert run.facts["margin_calls"]["add_1"]["code"] == "50013"
    assert "reduce_1" not in run.facts["margin_calls"]
    assert run.exit_code == 0 and await sim_margin(sim) == Decimal("20.29")


async def test_a_closed_stream_is_a_fact_and_the_steps_reconnect(
    tmp_path: Path, sim_factory: Any
) -> None:
    sim: Simulator = await sim_factory(SCENARIO, price_walk=False, idle_timeout=0.5)
    cfg = load_config(write_config(tmp_path, sim))
    run = await run_probe(cfg, "A", tmp_path / "out", FAST, stdout=io.StringIO())
    closed = run.facts["ws"]["closed_in_window"]
    assert closed is not None and closed["code"] == 4004
    assert run.facts["margin_calls"]["add_1"]["event_push"]["seen"] is True  # second connection
    assert run.exit_code == 0


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reactor", "probe", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_end_to_end(tmp_path: Path, sim: Simulator) -> None:
    config = write_config(tmp_path, sim)
    code, out, err = await run_cli("--config", str(config), "--account", "A", "--out",
                                   str(tmp_path / "o"), "--window-s", "0.5",
                                   "--bill-wait-s", "0")  # fmt: skip
    assert code == 0, err
    assert out.startswith("probe of A on sim")
    assert "reduce_1: reduce 1 -> code 0" in out
    no_secret_in(tmp_path / "o")


async def test_live_runs_only_with_the_flag(tmp_path: Path, sim_factory: Any) -> None:
    # A live venue pointed at a simulator whose keys are live keys (no x-simulated-trading).
    live_keys = {**SCENARIO, "simulator": {"demo_keys": False}}
    sim: Simulator = await sim_factory(live_keys, price_walk=False)
    config = write_config(tmp_path, sim, kind="live")
    args = ["--config", str(config), "--account", "A", "--window-s", "0", "--bill-wait-s", "0"]
    code, out, err = await run_cli(*args, "--out", str(tmp_path / "o1"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "--i-understand-live" in err
    assert not (tmp_path / "o1").exists()
    assert await margin_calls(sim) == []
    code, out, err = await run_cli(*args, "--out", str(tmp_path / "o2"), "--i-understand-live")
    assert code == 0, err
    assert len(await margin_calls(sim)) >= 2 and await sim_margin(sim) == Decimal("20.29")


async def test_a_demo_probe_against_live_keys_stops_with_exit_1(
    tmp_path: Path, sim_factory: Any
) -> None:
    # Demo venue (x-simulated-trading: 1) with live keys: OKX answers 50101
    # (docs/spec/okx-fidelity.md §7.8).
    sim: Simulator = await sim_factory({**SCENARIO, "simulator": {"demo_keys": False}})
    cfg = load_config(write_config(tmp_path, sim))
    stdout = io.StringIO()
    run = await run_probe(cfg, "A", tmp_path / "out", FAST, stdout=stdout)
    assert run.exit_code == 1 and await margin_calls(sim) == []
    assert "positions not readable: 50101" in stdout.getvalue()


def _one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    assert reactor_main(["probe", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and needle in captured.err, captured.err


def test_bad_arguments_and_config_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "venue": {"kind": "demo"},
                "accounts": [{"name": "A"}, {"name": "M", "role": "main"}],
                "targets": [{"min_count": 0, "target": "10", "band": ["9.5", "10.5"]}],
            }
        )
    )
    base = ["--config", str(cfg), "--out", str(tmp_path / "o")]
    _one_line_exit_2(capsys, ["--config", str(cfg)], "required")
    _one_line_exit_2(capsys, [*base, "--account", "A", "--amount", "-1"], "--amount")
    _one_line_exit_2(capsys, [*base, "--account", "nobody"], "--account")
    _one_line_exit_2(capsys, [*base, "--account", "M"], "main account")
    _one_line_exit_2(capsys, [*base, "--account", "A"], "no credentials")  # nothing exported
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("old capture")
    full = ["--config", str(cfg), "--out", str(tmp_path / "full"), "--account", "A"]
    _one_line_exit_2(capsys, full, "not an empty folder")
    missing = ["--config", str(tmp_path / "nope.yaml"), "--out", "o", "--account", "A"]
    _one_line_exit_2(capsys, missing, "cannot read")


async def test_a_lenient_reduce_rule_shows_as_estavailtrans_at_the_reactor_floor(
    tmp_path: Path, sim_factory: Any
) -> None:
    # The other setting of the simulator's reduce-rule switch: initial margin at mark, no fee
    # reserve (the rule the reactor's floor was written against).
    lenient = {**SCENARIO, "mechanics": {"reduce_rule": {"im_basis": "mark", "fee_reserve": False}}}
    sim: Simulator = await sim_factory(lenient, price_walk=False)
    cfg = load_config(write_config(tmp_path, sim))
    opts = ProbeOptions(window_s=0, event_wait_s=3.0, bill_wait_s=0, at_limit=False)
    run = await run_probe(cfg, "A", tmp_path / "out", opts, stdout=io.StringIO())
    lim = run.facts["reduce_limit"]
    assert Decimal(lim["est_minus_reactor"]) >= 0  # the reactor's floor is the stricter one
    assert run.facts["boundary"]["above_limit"]["code"] == "59301"
    assert run.exit_code == 0 and await sim_margin(sim) == Decimal("20.29")


THREE = {
    **SCENARIO,
    "instruments": [
        *SCENARIO["instruments"],
        {"instId": "XRP-USDT-SWAP", "ctVal": "100", "markPx": "0.52"},
        {"instId": "DOGE-USDT-SWAP", "ctVal": "1000", "markPx": "0.1"},
    ],
    "accounts": [
        {
            **SCENARIO["accounts"][0],
            "positions": [
                *SCENARIO["accounts"][0]["positions"],
                {"instId": "XRP-USDT-SWAP", "posSide": "short", "pos": "2", "avgPx": "0.55",
                 "lever": "10", "margin": "10.1"},
                {"instId": "DOGE-USDT-SWAP", "posSide": "long", "pos": "1", "avgPx": "0.1",
                 "lever": "5", "margin": "20"},
            ],
        },
        SCENARIO["accounts"][1],
    ],
}  # fmt: skip


async def test_regular_snapshots_pages_and_a_silent_price_walk(
    tmp_path: Path, sim_factory: Any
) -> None:
    # time_scale 0.1: the default regular push (DOC-POS: "around per 5 seconds" without
    # extraParams) comes every 500 ms; pages of one position; the price walk moves marks.
    sim: Simulator = await sim_factory(THREE, price_walk=True, time_scale=0.1, page_size=1)
    cfg = load_config(write_config(tmp_path, sim))
    opts = ProbeOptions(window_s=2.2, event_wait_s=3.0, bill_wait_s=1.0, at_limit=False)
    run = await run_probe(cfg, "A", tmp_path / "out", opts, stdout=io.StringIO())
    ws = run.facts["ws"]
    snaps = ws["snapshots"]
    assert snaps["count"] >= 3, snaps
    assert snaps["pages_max"] == 3 and snaps["page_size_max"] == 1
    # The snapshot interval is the configured one (loose bounds: a shared test machine).
    assert 400 <= snaps["interval_ms"]["median"] <= 900, snaps
    assert ws["event_type"]["values"] == ["snapshot"] and ws["event_type"]["absent"] == 0
    assert ws["pages"]["curPage"]["types"] == ["int"]
    assert ws["pages"]["lastPage"]["types"] == ["bool"]
    assert ws["between_snapshots"]["pushes"] == 0  # mark moves are silent
    assert ws["p_time_present"] is True and ws["channel_conn_count"] is True
    add = run.facts["margin_calls"]["add_1"]
    assert add["event_push"]["eventType"] == "event_update"
    assert add["event_push"]["carries_transfer"] is True
    assert add["event_push"]["uTime_moved"] is True and add["event_push"]["lever_changed"] is False
    assert add["bill"]["seen"] is True
    assert run.exit_code == 0


async def test_a_cluster_without_event_type(tmp_path: Path, sim_factory: Any) -> None:
    # The 2024 push shape (CCXT-21565): no eventType, curPage or lastPage.
    sim: Simulator = await sim_factory(
        SCENARIO, price_walk=False, time_scale=0.1, legacy_push_fields=True
    )
    cfg = load_config(write_config(tmp_path, sim))
    opts = ProbeOptions(window_s=1.3, event_wait_s=3.0, bill_wait_s=0, at_limit=False)
    run = await run_probe(cfg, "A", tmp_path / "out", opts, stdout=io.StringIO())
    ws = run.facts["ws"]
    assert ws["event_type"]["present"] == 0 and ws["event_type"]["absent"] >= 2
    assert ws["pages"]["curPage"]["present"] == 0 and ws["pages"]["lastPage"]["present"] == 0
    assert ws["snapshots"]["count"] >= 2
    assert (tmp_path / "out" / "ws_positions_untyped.json").exists()
    assert run.exit_code == 0


async def test_an_interrupted_probe_still_writes_its_files(tmp_path: Path, sim: Simulator) -> None:
    cfg = load_config(write_config(tmp_path, sim))
    out = tmp_path / "out"
    opts = ProbeOptions(window_s=30.0)
    task = asyncio.create_task(run_probe(cfg, "A", out, opts, stdout=io.StringIO()))
    frames = out / "frames.jsonl"

    async def observing() -> None:
        while not (frames.exists() and '"observe"' in frames.read_text()):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(observing(), 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    facts = json.loads((out / "facts.json").read_text())
    assert facts["meta"]["failure"] == "interrupted"
    assert await margin_calls(sim) == []
