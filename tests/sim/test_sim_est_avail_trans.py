"""``simulator.est_avail_trans``: every setting over the wire (docs/spec/okx-fidelity.md §11.2.1).
The reduce rule (59301) never changes; only the estimate adjust-leverage-info gives of it does."""

from __future__ import annotations

import json
from decimal import Decimal as D
from typing import Any

import pytest

from reactor.sim.scenario import ScenarioError, load_scenario, scenario_from_dict
from reactor.sim.server import Simulator
from tests.conftest import SCENARIOS
from tests.sim.helpers import MARGIN, signed

CRO = "CRO-USDT-SWAP"
EXACT = D("9.9787")  # 20.29 - 10.26 - 0.0513: the default (strictest) reduce rule's limit
INFO = (
    "/api/v5/account/adjust-leverage-info?instType=SWAP&mgnMode=isolated&lever={lever}"
    f"&instId={CRO}&posSide=long"
)


async def cro_sim(sim_factory: Any, **simulator: Any) -> Simulator:
    raw = load_scenario(SCENARIOS / "cro.yaml").model_dump(mode="json")
    raw["simulator"] = {**raw["simulator"], **simulator}
    for a in raw["accounts"]:  # model_dump masks secrets
        a["secretKey"], a["passphrase"] = "sim-secret-wu666666", "sim-pass-wu666666"
    sim: Simulator = await sim_factory(scenario_from_dict(raw), price_walk=False)
    return sim


async def estimate(sim: Simulator, lever: str = "10") -> str:
    res = (await signed(sim.url, "GET", INFO.format(lever=lever))).json()
    assert res["code"] == "0"
    value: str = res["data"][0]["estAvailTrans"]
    return value


async def reduce(sim: Simulator, amt: D) -> str:
    body = {"instId": CRO, "posSide": "long", "type": "reduce", "amt": str(amt)}
    code: str = (await signed(sim.url, "POST", MARGIN, json.dumps(body))).json()["code"]
    return code


async def test_exact_is_the_default_and_the_59301_boundary(sim_factory: Any) -> None:
    sim = await cro_sim(sim_factory)
    assert D(await estimate(sim)) == EXACT
    assert await reduce(sim, EXACT + D("0.0001")) == "59301"
    assert await reduce(sim, EXACT) == "0"


async def test_optimistic_overstates_so_a_capped_reduce_gets_59301(sim_factory: Any) -> None:
    sim = await cro_sim(sim_factory, est_avail_trans="optimistic", est_avail_trans_delta="0.7")
    est = D(await estimate(sim))
    assert est == EXACT + D("0.7")
    assert await reduce(sim, est) == "59301"  # the cap OKX gave is refused
    assert await reduce(sim, EXACT) == "0"  # the rule itself is unchanged
    assert D(await estimate(sim)) == D("0.7")  # nothing left, still a positive estimate


async def test_pessimistic_understates_and_never_goes_below_zero(sim_factory: Any) -> None:
    sim = await cro_sim(sim_factory, est_avail_trans="pessimistic", est_avail_trans_delta="3")
    est = D(await estimate(sim))
    assert est == EXACT - 3
    assert await reduce(sim, est) == "0"
    assert D(await estimate(sim)) == 0  # 3 left by the rule, the estimate says 0
    assert await reduce(sim, D(2)) == "0"  # margin OKX would still have released


async def test_empty_answers_blank_at_every_lever(sim_factory: Any) -> None:
    sim = await cro_sim(sim_factory, est_avail_trans="empty")
    assert await estimate(sim) == ""
    assert await estimate(sim, lever="5") == ""
    assert await reduce(sim, EXACT) == "0"  # reduces still work under the rule


def test_the_switch_is_validated() -> None:
    raw = load_scenario(SCENARIOS / "cro.yaml").model_dump(mode="json")
    for a in raw["accounts"]:
        a["secretKey"], a["passphrase"] = "s", "p"
    for bad in ({"est_avail_trans": "random"}, {"est_avail_trans_delta": "-1"}):
        with pytest.raises(ScenarioError, match="est_avail_trans"):
            scenario_from_dict({**raw, "simulator": bad})
