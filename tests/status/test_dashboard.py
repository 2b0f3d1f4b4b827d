"""Issue 20 item 11: the Grafana dashboard (deploy/grafana/) over the exporter's series, every
query evaluated by a real Prometheus scraping the real reactor (against the simulator); the
domain gauges (positions by status, USDT moved, maintenances) and ``reactor_build_info``."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from reactor.config import load_config
from reactor.service.app import LEDGER_FILE
from reactor.status.metrics import DomainFigures, Metrics, build_info
from reactor.store import SqliteLedger
from tests.engine.harness import running, set_credentials, wait_for, write_config
from tests.integration.e2e.test_reactor_e2e import cro_scenario
from tests.paths import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "okx-margin-reactor.json"
W, CRO = "Wu666666", "CRO-USDT-SWAP"
# Domain series that must hold data once the demo position was corrected.
MUST_HAVE_DATA = {
    "reactor_build_info",
    "reactor_positions",
    "reactor_margin_moved_usdt",
    "reactor_maintenances",
    "reactor_storage_ok",
}


def dashboard_queries() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    out = [(p["title"], t["expr"]) for p in doc["panels"] for t in p["targets"]]
    for var in doc["templating"]["list"]:
        if var["type"] == "query":  # Grafana's label_values(series, label) as PromQL
            m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["definition"])
            assert m, var["definition"]
            out.append((f"${var['name']}", f"group by ({m.group(2)}) ({m.group(1)})"))
    return out


def as_promql(expr: str) -> str:
    """Grafana's variables as Prometheus sees them with "All" selected."""
    return expr.replace("$account", ".*").replace("$__rate_interval", "1m")


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:reactor|process)_[a-z_]+|up)\b(?=\{|\s*\)|\s*/|\s*\[)", expr))


def test_dashboard_is_grafana_json_over_known_series() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] == "okx-margin-reactor" and doc["panels"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    exposition = Metrics().render()
    families = set(re.findall(r"^# TYPE (\w+) ", exposition, re.M))
    families |= {f + "_total" for f in families} | {f + "_bucket" for f in families}
    families |= {"up"} | {"reactor_" + n for n in ("positions", "accounts", "account_up")}
    families |= {"reactor_" + n for n in ("account_paused", "dry_run", "main_positions")}
    families |= {"reactor_main_positions_expected", "reactor_unrealized_pnl_usdt"}
    families |= {"reactor_storage_ok", "reactor_margin_moved_usdt", "reactor_maintenances"}
    for title, expr in dashboard_queries():
        names = metric_names(expr)
        assert names, (title, expr)
        assert names <= families, (title, names - families)


def test_domain_gauges_and_build_info() -> None:
    m = Metrics(process=False)
    version, revision = build_info()
    text = m.render()
    assert f'reactor_build_info{{revision="{revision}",version="{version}"}} 1.0' in text
    assert version and revision
    m.set_domain(lambda: DomainFigures({("A1", "add"): Decimal("12.5")}, {("A1", "cli"): 2}))
    text = m.render()
    assert 'reactor_margin_moved_usdt{account="A1",action="add"} 12.5' in text
    assert 'reactor_maintenances{account="A1",source="cli"} 2.0' in text

    def broken() -> DomainFigures:
        raise OSError("ledger gone")

    m.set_domain(broken)
    assert "reactor_build_info" in m.render()  # the rest of /metrics still renders


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs prometheus (apt-get)")
async def test_every_dashboard_query_against_a_real_prometheus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim_factory: Any
) -> None:
    scen = cro_scenario()
    sim = await sim_factory(scen, time_scale=0.1, price_walk=False)
    set_credentials(monkeypatch, scen)
    path = write_config(tmp_path, sim.url, [{"name": W}], cooldown_s=0.3)
    raw = yaml.safe_load(path.read_text())
    raw["status"] = {"enabled": True, "host": "127.0.0.1", "port": 0}
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    with SqliteLedger(cfg.state_dir / LEDGER_FILE) as ledger:
        assert ledger.record(W, CRO, "long", "m-1", source="cli") is not None

    prom_port = free_port()
    async with running(cfg) as (rt, _), httpx.AsyncClient(timeout=10) as http:
        assert rt.status_url is not None
        target = urlsplit(rt.status_url).netloc
        # The demo position is out of band: one margin call, accepted.
        metrics_url = rt.status_url.rstrip("/") + "/metrics"

        async def corrected() -> bool:
            return "reactor_margin_moved_usdt{" in (await http.get(metrics_url)).text

        await wait_for(corrected, timeout_s=20)
        conf = tmp_path / "prometheus.yml"
        conf.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "okx-margin-reactor",
                            "static_configs": [{"targets": [target]}],
                        }
                    ],
                }
            )
        )
        proc = await asyncio.create_subprocess_exec(
            "prometheus",
            f"--config.file={conf}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=(tmp_path / "prometheus.err").open("w"),
        )
        api = f"http://127.0.0.1:{prom_port}/api/v1"
        try:

            async def query(q: str) -> dict[str, Any]:
                r = await http.get(f"{api}/query", params={"query": q})
                return dict(r.json())

            async def scraped() -> bool:
                try:
                    got = await query('count_over_time(up{job="okx-margin-reactor"}[1m])')
                except httpx.HTTPError:
                    return False
                result = got.get("data", {}).get("result", [])
                return bool(result) and float(result[0]["value"][1]) >= 3

            await wait_for(scraped, timeout_s=40, interval_s=0.5)
            empty = []
            for title, expr in dashboard_queries():
                got = await query(as_promql(expr))
                assert got["status"] == "success", (title, expr, got)
                if not got["data"]["result"]:
                    empty.append(title)
                    assert not (metric_names(expr) & MUST_HAVE_DATA), (title, expr)
            # Only series nothing has happened to yet may be empty (no reconnect, no retry).
            assert set(empty) <= {"WebSocket reconnects", "Retried call delay"}, empty
            moved = await query('reactor_margin_moved_usdt{action="reduce"}')
            assert float(moved["data"]["result"][0]["value"][1]) == 9.97  # the demo's reduce
            maint = await query('reactor_maintenances{source="cli"}')
            assert float(maint["data"]["result"][0]["value"][1]) == 1
        finally:
            proc.terminate()
            await proc.wait()
