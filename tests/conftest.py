"""Shared fixtures: a real simulator on a loopback port, started in the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from reactor.sim.scenario import Scenario, load_scenario, scenario_from_dict
from reactor.sim.server import Simulator

# The PostgreSQL fixtures (pg_cluster, pg_dsn), for any test folder that needs them.
pytest_plugins = ["tests.store.pg"]

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

SimFactory = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def sim_factory() -> AsyncIterator[SimFactory]:
    """``await sim_factory(scenario, **Simulator kwargs)``: scenario is a dict, a path or a
    :class:`Scenario`; the simulator listens on 127.0.0.1:<free port> and stops at teardown."""
    started: list[Simulator] = []

    async def make(scenario: dict[str, Any] | str | Path | Scenario, **kwargs: Any) -> Simulator:
        if isinstance(scenario, Scenario):
            sc = scenario
        elif isinstance(scenario, dict):
            sc = scenario_from_dict(scenario)
        else:
            sc = load_scenario(scenario)
        sim = Simulator(sc, **kwargs)
        await sim.start("127.0.0.1", 0)
        started.append(sim)
        return sim

    yield make
    for sim in reversed(started):
        await sim.stop()


@pytest.fixture
async def sim(sim_factory: SimFactory) -> Simulator:
    """The CRO case (scenarios/cro.yaml), no price walk."""
    return await sim_factory(SCENARIOS / "cro.yaml", price_walk=False)
