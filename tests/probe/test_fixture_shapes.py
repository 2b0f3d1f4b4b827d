"""A probe capture dropped into ``tests/fixtures/okx/<name>/`` is compared, file by file, with
what the simulator sends for the same steps: every field the venue sent must be there, with
the same JSON type (README: "Probing OKX demo trading").
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from reactor.config import load_config
from reactor.probe.driver import SOURCE_FILE, run_probe
from reactor.probe.fixtures import field_types, shape_differences
from reactor.probe.script import ProbeOptions
from reactor.sim.server import Simulator
from tests.probe.test_probe_sim import SCENARIO, write_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "okx"


def probe_captures() -> list[Path]:
    """Folders written by ``reactor probe`` (their source.json says so)."""
    out = []
    for source in sorted(FIXTURES.glob(f"*/{SOURCE_FILE}")):
        try:
            if json.loads(source.read_text()).get("source") == "reactor probe":
                out.append(source.parent)
        except ValueError:
            continue
    return out


def payload_files(folder: Path) -> dict[str, Any]:
    return {
        str(p.relative_to(folder)): json.loads(p.read_text())
        for sub in ("rest", "ws")
        for p in sorted((folder / sub).rglob("*.json"))
    }


def test_field_types_and_differences() -> None:
    okx = {"code": "0", "data": [{"pos": "1", "cTime": "1", "closeOrderAlgo": []}]}
    assert field_types(okx) == {
        "code": "string",
        "data": "array",
        "data[]": "object",
        "data[].cTime": "string",
        "data[].closeOrderAlgo": "array",
        "data[].pos": "string",
    }
    same = {"code": "0", "data": [{"pos": "2", "cTime": "9", "closeOrderAlgo": [], "x": 1}]}
    assert shape_differences(okx, same) == []  # extra fields are not differences
    sim = {"code": 0, "data": [{"pos": "2"}]}
    assert shape_differences(okx, sim) == [
        "type of code: string in the reference, number here",
        "missing data[].cTime (string)",
        "missing data[].closeOrderAlgo (array)",
    ]


@pytest.fixture
async def simulator_capture(tmp_path: Path, sim_factory: Any) -> Path:
    """What the simulator sends for the probe's steps, in the probe's layout."""
    sim: Simulator = await sim_factory(SCENARIO, price_walk=False)
    cfg = load_config(write_config(tmp_path, sim))
    out = tmp_path / "sim-capture"
    opts = ProbeOptions(window_s=0.5, event_wait_s=3.0, bill_wait_s=0.5, bill_poll_s=0.25)
    run = await run_probe(cfg, "A", out, opts, stdout=io.StringIO())
    assert run.failure is None
    return out


async def test_the_simulator_capture_has_the_fixture_layout(simulator_capture: Path) -> None:
    files = payload_files(simulator_capture)
    assert {"ws/positions.snapshot.json", "rest/account/positions.json"} <= set(files)


@pytest.mark.parametrize("capture", probe_captures(), ids=lambda p: p.name)
async def test_probe_capture_matches_the_simulator(capture: Path, simulator_capture: Path) -> None:
    okx = payload_files(capture)
    sim = payload_files(simulator_capture)
    problems = {
        name: diff
        for name, payload in okx.items()
        if name in sim and (diff := shape_differences(payload, sim[name]))
    }
    assert problems == {}, yaml.safe_dump(problems)


def test_probe_captures_are_present_or_the_comparison_says_why() -> None:
    if not probe_captures():
        pytest.skip(
            "no probe capture in tests/fixtures/okx yet: run `reactor probe` against OKX demo "
            "trading and drop its folder there (README, Probing OKX demo trading)"
        )
