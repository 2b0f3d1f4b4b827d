"""The status server over a real socket: health, JSON, metrics and the HTML page."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from structlog.testing import capture_logs

from reactor.status.metrics import Metrics
from reactor.status.model import AccountStatus, StatusSnapshot
from reactor.status.server import StatusServer

from .snapshots import MutableSource, sample_snapshot


@pytest.fixture
async def served() -> AsyncIterator[tuple[MutableSource, Metrics, str]]:
    source, metrics = MutableSource(), Metrics()
    server = StatusServer(source, metrics, port=0)
    url = await server.start()
    try:
        yield source, metrics, url
    finally:
        await server.stop()


async def test_start_picks_free_port_and_logs_ready() -> None:
    server = StatusServer(MutableSource(), Metrics(), port=0)
    with capture_logs() as logs:
        url = await server.start()
    await server.stop()
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
    assert {"event": "status.ready", "url": url, "log_level": "info"} in logs


async def test_healthz(served: tuple[MutableSource, Metrics, str]) -> None:
    source, _, url = served
    async with httpx.AsyncClient(base_url=url) as c:
        ok = AccountStatus("sub-y", "sub", True, True, True, None, ())
        source.snapshot = replace(sample_snapshot(), accounts=(ok,))
        r = await c.get("/healthz")
        assert r.status_code == 200
        assert r.json() == {"ok": True, "state": "healthy", "reasons": [], "attention": {}}
        # sample_snapshot has one blocked position: alive and acting, but not all is well
        source.snapshot = sample_snapshot()
        r = await c.get("/healthz")
        assert r.status_code == 200
        assert r.json() == {
            "ok": True,
            "state": "degraded",
            "reasons": [],
            "attention": {"blocked": 1},
        }
        down = AccountStatus("sub-x", "sub", True, False, False, None, ())
        source.snapshot = replace(sample_snapshot(), accounts=(down,))
        r = await c.get("/healthz")
        assert r.status_code == 503
        assert r.json() == {
            "ok": False,
            "state": "down",
            "reasons": ["sub-x: not connected"],
            "attention": {"stale": 1},
        }


async def test_healthz_when_source_raises(served: tuple[MutableSource, Metrics, str]) -> None:
    source, _, url = served

    def broken() -> StatusSnapshot:
        raise RuntimeError("secret-free failure")

    source.status_snapshot = broken  # type: ignore[method-assign]
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.get("/healthz")
    assert r.status_code == 503
    assert r.json()["reasons"] == ["status unavailable: RuntimeError"]


async def test_api_status_and_metrics(served: tuple[MutableSource, Metrics, str]) -> None:
    _, metrics, url = served
    metrics.inc_adjustment("ok")
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.get("/api/status")
        assert r.status_code == 200
        assert r.json() == json.loads(json.dumps(sample_snapshot().to_json()))
        m = await c.get("/metrics")
    assert m.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'reactor_margin_adjustments_total{account="",result="ok"} 1.0' in m.text
    assert 'reactor_positions{account="sub-b",role="sub",status="ok"} 1.0' in m.text


async def test_index_embeds_snapshot_safely(served: tuple[MutableSource, Metrics, str]) -> None:
    source, _, url = served
    evil = AccountStatus("</script><b>x", "sub", True, True, True, None, ())
    source.snapshot = replace(sample_snapshot(), accounts=(evil,))
    async with httpx.AsyncClient(base_url=url) as c:
        r = await c.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'id="card-main"' in r.text and 'id="card-sub"' in r.text and 'id="card-pnl"' in r.text
    assert "</script><b>x" not in r.text
    assert "\\u003c/script>\\u003cb>x" in r.text


async def test_stop_releases_port() -> None:
    server = StatusServer(MutableSource(), Metrics(), port=0)
    url = await server.start()
    await server.stop()
    await server.stop()  # idempotent
    async with httpx.AsyncClient() as c:
        with pytest.raises(httpx.ConnectError):
            await c.get(url + "healthz")
