"""The old-poller baseline works (not a benchmark: no timing is asserted)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import yaml

from bench.poller import OldPoller, old_decision, old_floor
from reactor.okx.credentials import Credentials
from reactor.okx.rest import OkxRestClient
from tests.conftest import SCENARIOS


def test_old_formula_forgets_ct_val() -> None:
    raw = {"pos": "108", "markPx": "0.095", "lever": "10", "margin": "20.29", "mgnMode": "isolated"}
    assert old_floor(raw) == Decimal("1.026")  # the real initial margin is 10.26
    assert old_decision(raw) == ("reduce", Decimal("5.00"))


async def test_poller_brings_the_cro_case_into_band(sim_factory: Any) -> None:
    raw = yaml.safe_load((SCENARIOS / "cro.yaml").read_text())
    # The seed incident: OKX accepted 15.29 -> 10.29 (docs/spec/okx-fidelity.md §4), which a
    # closing-fee reserve (the default, strictest rule) would refuse: initial margin only, as
    # observed.
    raw["mechanics"] = {"reduce_rule": {"im_basis": "max", "fee_reserve": False}}
    sim = await sim_factory(raw, price_walk=False)
    acct = sim.exchange.accounts["Wu666666"]
    client = OkxRestClient(
        sim.url, Credentials(acct.api_key, acct.secret, acct.passphrase), simulated=True
    )
    poller = OldPoller({"Wu666666": client}, interval_s=0.2)
    task = asyncio.create_task(poller.run())
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if poller.stats.rounds >= 3:
                break
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()
    margin = acct.positions[("CRO-USDT-SWAP", "long", "isolated")].margin
    assert Decimal("9.5") <= margin <= Decimal("10.5")
    assert poller.stats.calls == 2  # 5 U at most per call: 20.29 -> 15.29 -> 10.29
    assert poller.stats.codes["0"] == 2
