"""`make run-paper` wiring: demo venue URLs and the x-simulated-trading header."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from reactor.config import DEMO_REST_URL, DEMO_WS_PRIVATE_URL, load_config
from tests.engine.harness import SimAdmin, running, set_credentials, wait_for, write_config
from tests.integration.e2e.test_reactor_e2e import cro_scenario
from tests.paths import REPO


def test_paper_profile_points_at_okx_demo_trading():
    cfg = load_config(REPO / "deploy" / "config.paper.yaml")
    assert cfg.venue.kind == "demo"
    assert cfg.venue.urls() == (DEMO_REST_URL, DEMO_WS_PRIVATE_URL)
    assert DEMO_WS_PRIVATE_URL == "wss://wspap.okx.com:8443/ws/v5/private"
    assert cfg.venue.simulated_trading


def test_paper_refuses_to_start_without_credentials():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKX_")}
    res = subprocess.run(
        [sys.executable, "-m", "reactor", "run", "--config", "deploy/config.paper.yaml"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env=env,
    )
    assert res.returncode == 2
    for var in ("OKX_WU666666_API_KEY", "OKX_WU666666_SECRET_KEY", "OKX_WU666666_PASSPHRASE"):
        assert var in res.stderr


async def test_demo_profile_sends_simulated_trading_header(tmp_path, monkeypatch, sim_factory):
    scenario = cro_scenario()
    sim = await sim_factory(scenario)
    set_credentials(monkeypatch, scenario)
    path = write_config(tmp_path, sim.url, [{"name": "Wu666666"}])
    raw = yaml.safe_load(path.read_text())
    raw["venue"]["kind"] = "demo"  # the demo profile, pointed at the simulator
    path.write_text(yaml.safe_dump(raw))
    admin = SimAdmin(sim.url)
    async with running(load_config(path)):
        await wait_for(admin.margin_calls)
        calls = await admin.requests()
    assert calls and all(c["simulated"] for c in calls)
    await admin.aclose()


async def test_live_profile_sends_no_simulated_header(tmp_path, monkeypatch, sim_factory):
    scenario = cro_scenario()
    sim = await sim_factory(scenario, demo_keys=False)  # live keys: the header would be 50101
    set_credentials(monkeypatch, scenario)
    path = write_config(tmp_path, sim.url, [{"name": "Wu666666"}])
    raw = yaml.safe_load(path.read_text())
    raw["venue"]["kind"] = "live"
    path.write_text(yaml.safe_dump(raw))
    admin = SimAdmin(sim.url)
    async with running(load_config(path)):
        await wait_for(admin.margin_calls)
        calls = await admin.requests()
    assert calls and not any(c["simulated"] for c in calls)
    assert all(c["code"] != "50101" for c in calls)
    await admin.aclose()
