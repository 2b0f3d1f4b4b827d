"""The running reactor logs every pause it applies or lifts, however it was made (a CLI pause
from another process used to reach the engine without a line in the reactor's log)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reactor.config import load_config
from reactor.store import SqliteLedger
from tests.engine.harness import running, set_credentials, wait_for, write_config
from tests.integration.faults.common import FAST, account, cro, scenario


async def test_cli_pauses_are_logged_by_the_running_reactor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim_factory: Any
) -> None:
    scen = scenario(account("A", 1, [cro(margin="10")]))
    sim = await sim_factory(scen, price_walk=False)
    set_credentials(monkeypatch, scen)
    path = write_config(tmp_path, sim.url, [{"name": "A"}], **FAST)
    cfg = load_config(path)
    async with running(cfg) as (_rt, logs):
        with SqliteLedger(cfg.state_dir / "reactor.sqlite") as other:  # `reactor pause` elsewhere
            other.pause("A", "CRO-USDT-SWAP", "long", "hedging", source="cli")
        (applied,) = await wait_for(lambda: logs.events("control.pause.applied"))
        assert (applied["account"], applied["instId"], applied["posSide"]) == (
            "A",
            "CRO-USDT-SWAP",
            "long",
        )
        assert (applied["reason"], applied["source"]) == ("hedging", "cli")
        with SqliteLedger(cfg.state_dir / "reactor.sqlite") as other:
            other.resume("A", "CRO-USDT-SWAP", "long")
        (lifted,) = await wait_for(lambda: logs.events("control.pause.lifted"))
        assert lifted["instId"] == "CRO-USDT-SWAP"
        assert len(logs.events("control.pause.applied")) == 1  # logged once, not every tick
