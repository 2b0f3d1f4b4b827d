"""HTTP status server: ``/healthz``, ``/api/status``, ``/metrics`` and ``/`` (read-only).

``extra_routes`` mounts the writes: ``POST /api/maintenance`` (:mod:`reactor.api.maintenance`)
and ``POST /api/pause`` / ``/api/resume`` (:mod:`reactor.api.pause`), both behind a bearer
token; everything else here only reads.

Loopback by default: it exposes positions and PnL, so putting it on a wider interface is an
explicit config decision. Every request builds a fresh snapshot from the :class:`StatusSource`;
apart from those endpoints, nothing here can change the reactor's state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from reactor.api.auth import NO_STORE as _NO_STORE
from reactor.log import get_logger
from reactor.status.metrics import Metrics
from reactor.status.model import StatusSnapshot, StatusSource
from reactor.status.page import render_page

log = get_logger(__name__)


class StatusServer:
    def __init__(
        self,
        source: StatusSource,
        metrics: Metrics,
        host: str = "127.0.0.1",
        port: int = 8787,
        *,
        extra_routes: Callable[[web.Application], None] | None = None,
    ) -> None:
        self._extra_routes = extra_routes  # e.g. POST /api/maintenance (its own auth)
        self._source = source
        self._metrics = metrics
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/api/status", self._api_status)
        app.router.add_get("/metrics", self._metrics_handler)
        if self._extra_routes is not None:
            self._extra_routes(app)
        return app

    async def start(self) -> str:
        """Listen and return the base URL (with the real port when ``port`` was 0)."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        self.url = f"http://{host}:{port}/"
        log.info("status.ready", url=self.url)
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers ------------------------------------------------------------------------------
    def _snapshot(self) -> StatusSnapshot:
        return self._source.status_snapshot()

    async def _healthz(self, _: web.Request) -> web.Response:
        """``state``: healthy (200), degraded (200: something needs attention, the reactor can
        still act, ``attention`` counts it) or down (503: ``reasons``). 200 for degraded so a
        load balancer or systemd check does not restart a reactor over a blocked position."""
        body: dict[str, Any]
        try:
            snap = self._snapshot()
            problems: tuple[str, ...] = snap.problems()
            items = snap.attention()
            counts = {k: n for k, n in snap.attention_counts(items).items() if n}
            state = snap.health(items)
        except Exception as exc:  # a broken source is unhealthy, not a 500 without a reason
            log.exception("status.snapshot.failed")
            problems = (f"status unavailable: {type(exc).__name__}",)
            counts, state = {}, "down"
        body = {"ok": not problems, "state": state, "reasons": list(problems), "attention": counts}
        return web.json_response(body, status=503 if problems else 200, headers=_NO_STORE)

    async def _api_status(self, _: web.Request) -> web.Response:
        return web.json_response(self._snapshot().to_json(), headers=_NO_STORE)

    async def _metrics_handler(self, _: web.Request) -> web.Response:
        text = self._metrics.render(self._snapshot())
        headers = {**_NO_STORE, "Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        return web.Response(body=text.encode(), headers=headers)

    async def _index(self, _: web.Request) -> web.Response:
        html = render_page(self._snapshot().to_json())
        return web.Response(text=html, content_type="text/html", charset="utf-8")
