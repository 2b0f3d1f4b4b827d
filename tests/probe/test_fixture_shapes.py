"""The simulator's payloads, as a probe captures them, against real OKX payloads in
``tests/fixtures/okx/``: every field OKX sent must be there with the same JSON type.

Two kinds of reference:
- a probe capture dropped in as ``tests/fixtures/okx/<name>/`` (its ``source.json`` says
  "reactor probe"), compared file by file with the same probe run against the simulator;
- the published payloads at the top of ``tests/fixtures/okx/`` (README there), compared with
  the simulator capture's file of the same kind (``PUBLISHED``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from reactor.config import load_config
from reactor.probe.driver import FACTS_FILE, SOURCE_FILE, run_probe
from reactor.probe.fixtures import field_types, shape_differences
from reactor.probe.script import ProbeOptions
from reactor.sim.server import Simulator
from tests.paths import FIXTURES
from tests.probe.test_probe_sim import SCENARIO, write_config

NOT_PAYLOADS = frozenset({FACTS_FILE, SOURCE_FILE})


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
        p.name: json.loads(p.read_text())
        for p in sorted(folder.glob("*.json"))
        if p.name not in NOT_PAYLOADS
    }


# Published payloads (tests/fixtures/okx/README.md) and the probe capture file of the same
# kind. Files not listed have no counterpart in the probe's steps.
PUBLISHED = {
    "bill_margin_transfer_ccxt.json": "bill_margin_transfer.json",
    "bills_doc.json": "bills.json",
    "adjust_leverage_info_doc.json": "adjust_leverage_info.json",
    "http_get_positions_nt.json": "positions.json",
    "http_get_positions_isolated_2025.json": "positions.json",
    "http_get_instruments_swap_nt.json": "instruments.json",
    "ws_positions_nt.json": "ws_positions_snapshot.json",
}
# Position fields OKX sends that the simulator does not (docs/spec/okx-fidelity.md §7.13: "many
# extra fields"); a difference outside this set fails, and the set may only shrink. Empty since the
# simulator writes the full field set of a live 2025 record (reactor/sim/position_record.py).
POSITION_FIELDS_NOT_SIMULATED: frozenset[str] = frozenset()
KNOWN = {
    "http_get_positions_nt.json": POSITION_FIELDS_NOT_SIMULATED,
    "ws_positions_nt.json": POSITION_FIELDS_NOT_SIMULATED,
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


async def test_published_payloads_match_the_simulator_capture(simulator_capture: Path) -> None:
    sim = payload_files(simulator_capture)
    problems = {}
    for published, captured in PUBLISHED.items():
        real = json.loads((FIXTURES / published).read_text())
        diff = set(shape_differences(real, sim[captured])) - KNOWN.get(published, frozenset())
        if diff:
            problems[published] = sorted(diff)
    assert problems == {}, yaml.safe_dump(problems)


@pytest.mark.parametrize("capture", probe_captures(), ids=lambda p: p.name)
async def test_probe_capture_matches_the_simulator(capture: Path, simulator_capture: Path) -> None:
    okx = payload_files(capture)
    sim = payload_files(simulator_capture)
    problems = {}
    for name, payload in okx.items():
        if name not in sim:
            continue
        # Same steps, same kind of position: the simulator may neither lack nor invent fields.
        invented = sorted(set(field_types(sim[name])) - set(field_types(payload)))
        diff = shape_differences(payload, sim[name]) + [f"invented {p}" for p in invented]
        if diff:
            problems[name] = diff
    assert problems == {}, yaml.safe_dump(problems)


def test_probe_captures_are_present_or_the_comparison_says_why() -> None:
    if not probe_captures():
        pytest.skip(
            "no probe capture in tests/fixtures/okx yet: run `reactor probe` against OKX demo "
            "trading and drop its folder there (docs/operations.md, Probing OKX demo trading)"
        )
