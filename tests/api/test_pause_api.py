"""Pause and resume without a restart: ``POST /api/pause`` / ``/api/resume`` (bearer token),
the ledger (the CLI's path, and restarts), the page data and the metrics; the real reactor
against the simulator over real sockets."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reactor import log as logging_setup
from reactor.config import load_config
from reactor.service import app
from reactor.service.app import LEDGER_FILE
from reactor.store import SqliteLedger
from tests.engine.harness import (
    LogCapture,
    SimAdmin,
    running,
    set_credentials,
    wait_for,
    write_config,
)
from tests.integration.e2e.test_reactor_e2e import cro_scenario

W, CRO = "Wu666666", "CRO-USDT-SWAP"
TOKEN = "t0ken-for-tests-only"


def _config(tmp_path: Path, url: str) -> Any:
    path = write_config(tmp_path, url, [{"name": W}], cooldown_s=0.3)
    raw = yaml.safe_load(path.read_text())
    raw["status"] = {"enabled": True, "host": "127.0.0.1", "port": 0}
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def _row(status: dict[str, Any]) -> dict[str, Any]:
    (acc,) = status["accounts"]
    (pos,) = acc["positions"]
    return dict(pos)


async def test_pause_resume_over_http_and_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim_factory: Any
) -> None:
    scen = cro_scenario()
    sim = await sim_factory(scen, time_scale=0.1, price_walk=False)
    set_credentials(monkeypatch, scen)
    monkeypatch.setenv("REACTOR_API_TOKEN", TOKEN)
    cfg = _config(tmp_path, sim.url)
    # paused before start (as `reactor pause` writes it): survives the restart
    with SqliteLedger(cfg.state_dir / LEDGER_FILE) as ledger:
        assert ledger.pause(W, CRO, "long", "before start", source="cli")
    admin = SimAdmin(sim.url)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with running(cfg) as (rt, logs), httpx.AsyncClient(base_url=rt.status_url) as http:
        assert logs.events("control.pauses.loaded")[0]["pauses"] == 1
        await wait_for(lambda: rt.engine.book.is_fresh(W))
        await asyncio.sleep(0.5)
        assert await admin.margin_calls() == []
        row = _row((await http.get("/api/status")).json())
        assert (row["status"], row["reason"]) == ("paused", "paused: before start")
        metrics = (await http.get("/metrics")).text
        assert f'reactor_positions{{account="{W}",role="sub",status="paused"}} 1' in metrics

        body = {"account": W, "instId": CRO, "posSide": "long"}
        assert (await http.post("/api/resume", json=body)).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await http.post("/api/resume", json=body, headers=wrong)).status_code == 401
        bad = await http.post("/api/resume", json={"account": W, "instId": CRO}, headers=auth)
        assert bad.status_code == 400 and "posSide" in bad.json()["error"]
        unknown = await http.post("/api/resume", json={"account": "x"}, headers=auth)
        assert unknown.status_code == 404
        ok = await http.post("/api/resume", json=body, headers=auth)
        assert (ok.status_code, ok.json()) == (200, {"ok": True, "changed": True})
        await wait_for(admin.margin_calls)
        p = await wait_for(lambda: admin.position(W, CRO, "long"))
        # 20.29 - 9.97: the reduce OKX's estAvailTrans allows (strictest simulator rule)
        assert Decimal(p["margin"]) == Decimal("10.32")
        assert logs.events("control.resumed")[0]["source"] == "api"

        # the whole account, with a reason, from the API
        paused = await http.post("/api/pause", json={"account": W, "reason": "desk"}, headers=auth)
        assert paused.json() == {"ok": True, "changed": True}
        acc = (await http.get("/api/status")).json()["accounts"][0]
        assert (acc["paused"], acc["pausedReason"]) == (True, "desk")
        metrics = (await http.get("/metrics")).text
        assert f'reactor_account_paused{{account="{W}",role="sub"}} 1.0' in metrics
        await admin.set_position(
            account=W,
            instId=CRO,
            posSide="long",
            margin="25",
            pos="108",
            avgPx="0.0905",
            lever="10",
        )
        await asyncio.sleep(0.8)
        assert len(await admin.margin_calls()) == 1

        # resumed by another process (the CLI): the ledger poll applies it
        with SqliteLedger(cfg.state_dir / LEDGER_FILE) as other:
            assert other.resume(W)
        await wait_for(lambda: len(logs.events("margin.adjust.ok")) == 2)
        acc = (await http.get("/api/status")).json()["accounts"][0]
        assert acc["paused"] is False
    assert TOKEN not in "\n".join(logs.lines)


async def test_without_a_token_the_api_refuses_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim_factory: Any
) -> None:
    scen = cro_scenario()
    sim = await sim_factory(scen, price_walk=False)
    set_credentials(monkeypatch, scen)
    monkeypatch.delenv("REACTOR_API_TOKEN", raising=False)
    cfg = _config(tmp_path, sim.url)
    async with running(cfg) as (rt, _), httpx.AsyncClient(base_url=rt.status_url) as http:
        r = await http.post(
            "/api/pause", json={"account": W}, headers={"Authorization": "Bearer x"}
        )
        assert r.status_code == 503 and "REACTOR_API_TOKEN" in r.json()["error"]
    with SqliteLedger(cfg.state_dir / LEDGER_FILE) as ledger:
        assert ledger.pauses() == []


async def test_dry_run_config_key_and_the_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim_factory: Any
) -> None:
    scen = cro_scenario()
    sim = await sim_factory(scen, price_walk=False)
    set_credentials(monkeypatch, scen)
    cfg = _config(tmp_path, sim.url).model_copy(update={"dry_run": True})
    admin = SimAdmin(sim.url)
    logs = LogCapture()
    logging_setup.configure("debug", "json", stream=logs)  # type: ignore[arg-type]
    rt = await app.start(cfg)  # dry_run None: the config's key
    try:
        assert rt.dry_run is True
        http = httpx.AsyncClient(base_url=rt.status_url)
        await wait_for(lambda: logs.events("margin.adjust.dry_run"))
        status = (await http.get("/api/status")).json()
        assert (status["venue"], status["dryRun"]) == ("sim", True)
        assert 'reactor_info{dry_run="true",venue="sim"} 1.0' in (await http.get("/metrics")).text
        assert await admin.margin_calls() == []
        await http.aclose()
    finally:
        await app.stop(rt)
    # `reactor run --no-dry-run` overrides the key
    async with running(cfg, dry_run=False) as (rt, logs):
        await wait_for(lambda: logs.events("margin.adjust.ok"))
        assert rt.status_snapshot().dry_run is False


async def test_one_token_for_every_write_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim_factory: Any
) -> None:
    """``maintenance.api_token_env`` names the one variable: pause/resume and maintenance."""
    scen = cro_scenario()
    sim = await sim_factory(scen, price_walk=False)
    set_credentials(monkeypatch, scen)
    monkeypatch.delenv("REACTOR_API_TOKEN", raising=False)
    cfg = _config(tmp_path, sim.url)
    cfg = cfg.model_copy(
        update={"maintenance": cfg.maintenance.model_copy(update={"api_token_env": "DESK_TOKEN"})}
    )
    async with running(cfg) as (rt, _), httpx.AsyncClient(base_url=rt.status_url) as http:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        closed = await http.post("/api/pause", json={"account": W}, headers=auth)
        assert closed.status_code == 503 and "DESK_TOKEN" in closed.json()["error"]
    monkeypatch.setenv("DESK_TOKEN", TOKEN)
    async with running(cfg) as (rt, _), httpx.AsyncClient(base_url=rt.status_url) as http:
        ok = await http.post("/api/pause", json={"account": W}, headers=auth)
        assert ok.status_code == 200
        body = {"account": W, "instId": CRO, "posSide": "long", "ordId": "1", "cTime": "1"}
        maint = await http.post("/api/maintenance", json=body, headers=auth)
        assert maint.status_code in (200, 201), maint.text
