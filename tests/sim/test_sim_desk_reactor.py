"""The real reactor against a simulator whose desk fills a position: the fill moves the
isolated margin out of its band and the reactor brings it back (real sockets)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from reactor.config import load_config
from tests.conftest import SimFactory
from tests.engine.harness import running, set_credentials, wait_for, write_config

SCENARIO = {
    "instruments": [
        {"instId": "CRO-USDT-SWAP", "ctVal": "10", "markPx": "0.095", "tickSz": "0.00001"}
    ],
    "accounts": [
        {
            "name": "Desk1",
            "apiKey": "desk-key-1",
            "secretKey": "desk-secret-1",
            "passphrase": "desk-pass-1",
            "balance": "1000",
            "positions": [
                {
                    "instId": "CRO-USDT-SWAP",
                    "posSide": "long",
                    "pos": "108",
                    "avgPx": "0.095",
                    "lever": "20",
                    "margin": "10",
                }
            ],
        }
    ],
    # One maintenance buy of 50 % (54 contracts: +2.565 of initial margin) 1.5 s after start.
    "desk": {
        "interval_s": 600,
        "first_after_s": 1.5,
        "maint_share": 1,
        "size_pct": [50, 50],
        "seed": 1,
    },
    "simulator": {"time_scale": 0.1},
}


async def test_reactor_corrects_a_desk_fill(
    sim_factory: SimFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = await sim_factory(SCENARIO, price_walk=False)
    set_credentials(monkeypatch, SCENARIO)
    cfg = load_config(write_config(tmp_path, sim.url, [{"name": "Desk1"}]))
    acct = sim.exchange.accounts["Desk1"]
    position = acct.isolated("CRO-USDT-SWAP", "long")
    assert position is not None
    async with running(cfg) as (_rt, logs):
        await wait_for(lambda: logs.events("book.snapshot"), 10)
        await wait_for(lambda: acct.orders, 10)  # the desk's fill
        [order] = acct.orders.values()
        assert order.req.tag == "maint" and order.req.sz == 54
        assert position.pos == 162
        await wait_for(lambda: Decimal("9.5") <= position.margin <= Decimal("10.5"), 10)
    calls = [r for r in sim.rest.requests if r["path"].endswith("margin-balance")]
    assert len(calls) == 1 and calls[0]["code"] == "0"
    body = json.loads(calls[0]["body"])
    # Margin 10 + 54 x 10 x 0.095 / 20 = 12.565 after the fill; reduced by 2.56 (rounded down
    # to OKX's 0.01 step) to 10.005.
    assert (body["type"], Decimal(body["amt"])) == ("reduce", Decimal("2.56"))
    assert position.margin == Decimal("10.005")
    fill = next(e for e in logs.events("sim.desk.fill"))
    assert (fill["tag"], fill["margin"]) == ("maint", "12.565")


async def test_tagged_desk_fills_raise_the_target(
    sim_factory: SimFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``maintenance.detect: {tag: maint}`` (as config.yaml sets it for make run) each
    desk fill is a maintenance: counts 1, 2, 3 take the target 10 -> 20 -> 30."""
    scenario = {
        **SCENARIO,
        "desk": {
            "interval_s": 3,
            "first_after_s": 1.0,
            "maint_share": 1,
            "size_pct": [20, 20],
            "seed": 1,
        },
    }
    sim = await sim_factory(scenario, price_walk=False)
    set_credentials(monkeypatch, scenario)
    path = write_config(tmp_path, sim.url, [{"name": "Desk1"}])
    raw = yaml.safe_load(path.read_text())
    raw["maintenance"] = {"detect": {"tag": "maint"}}
    path.write_text(yaml.safe_dump(raw))
    position = sim.exchange.accounts["Desk1"].isolated("CRO-USDT-SWAP", "long")
    assert position is not None
    async with running(load_config(path)) as (_rt, logs):
        await wait_for(lambda: len(logs.events("maintenance.recorded")) >= 3, 20)
        await wait_for(lambda: Decimal("28.5") <= position.margin <= Decimal("31.5"), 10)
        sent = [e for e in logs.events("margin.adjust.sent") if e["instId"] == "CRO-USDT-SWAP"]
    targets = [e["target"] for e in sent]
    assert "20" in targets and "30" in targets
    assert targets.index("20") < targets.index("30")
    assert all(e["action"] == "add" for e in sent if e["target"] in ("20", "30"))
