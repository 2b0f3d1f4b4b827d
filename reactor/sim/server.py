"""The simulator's server: aiohttp glue around the sans-I/O OKX cores.

aiohttp serves OKX v5 REST (:mod:`reactor.sim.rest_api`), the private WebSocket at
``/ws/v5/private`` (:mod:`reactor.sim.ws_api`) and the ``/sim/`` admin JSON
(:mod:`reactor.sim.admin`) on one port. This module only converts requests and frames, runs
one writer per connection and schedules the price walk; what OKX answers is decided elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

from reactor.log import get_logger
from reactor.okx.endpoints import WS_PRIVATE_PATH
from reactor.sim import endpoints, risk_endpoints, trade_endpoints
from reactor.sim.admin import AdminApi
from reactor.sim.desk import Desk, DeskOrder
from reactor.sim.exchange import Change, Exchange, ExchangeError
from reactor.sim.faults import FaultPlan
from reactor.sim.funding import FundingClock, FundingTerms
from reactor.sim.market import PriceWalk
from reactor.sim.rest_api import RestApi, RestRequest, RestResponse
from reactor.sim.scenario import DeskSpec, Scenario
from reactor.sim.tls import TlsMaterial, make_tls, remove_tls
from reactor.sim.ws_api import Close, WsHub, WsOptions, WsSession
from reactor.sim.ws_limits import CLOSE_TRY_AGAIN_LATER, ConnectLimiter, WsLimits

log = get_logger(__name__)

WS_PATH = WS_PRIVATE_PATH
T = TypeVar("T")


class Simulator:
    """A loopback OKX v5 exchange seeded from a :class:`Scenario`."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        price_walk: bool | None = None,
        idle_timeout: float = 30.0,
        rate_limits: bool = True,
        stamp_pushes: bool = False,
        page_size: int | None = None,
        time_scale: float | None = None,
        legacy_push_fields: bool | None = None,
        close_on_login_failure: bool | None = None,
        demo_keys: bool | None = None,
        ws_limits: WsLimits | None = None,
        tls: bool | TlsMaterial = False,
        desk: bool | None = None,
    ) -> None:
        """Keyword settings left None take the scenario's ``simulator:`` values.

        ``tls``: serve https/wss on the port (OKX serves nothing else). True makes a fresh
        CA and server certificate at :meth:`start` (removed at :meth:`stop`); clients trust
        it through :attr:`ca_file`. A :class:`TlsMaterial` is used as given.
        ``desk``: run the scenario's ``desk:`` (default: when the scenario enables it).
        """
        self.scenario = scenario
        self._exchange = Exchange.from_scenario(scenario)
        walk = scenario.price_walk
        self._walk_enabled = price_walk if price_walk is not None else bool(walk and walk.enabled)
        self.stamp_pushes = stamp_pushes  # add "simTs" (send wall time) to pushes: benchmarks
        spec = scenario.simulator
        self.faults = FaultPlan()
        limits = ws_limits or WsLimits(
            connects_per_s=spec.ws_connects_per_s,
            refusal=spec.ws_connect_refusal,
            ops_per_hour=spec.ws_ops_per_hour,
            conns_per_channel=spec.ws_conns_per_channel,
        )
        # DOC-WS: new connections per second per IP (ws_limits.py); off with rate_limits
        self.connects = ConnectLimiter(limits.connects_per_s)
        options = WsOptions(
            idle_timeout_s=idle_timeout,
            page_size=_pick(page_size, spec.snapshot_page_size),
            time_scale=_pick(time_scale, spec.time_scale),
            legacy_push_fields=_pick(legacy_push_fields, spec.legacy_push_fields),
            close_on_login_failure=_pick(close_on_login_failure, spec.close_on_login_failure),
            limits=limits,
            rate_limits=rate_limits,
        )
        self.hub = WsHub(self._exchange, self.faults, options)
        self.rest = RestApi(
            self._exchange,
            self.faults,
            self.hub,
            rate_limits=rate_limits,
            demo_keys=_pick(demo_keys, spec.demo_keys),
        )
        endpoints.register(self.rest)
        trade_endpoints.register(self.rest, self.hub)
        risk_endpoints.register(self.rest)
        self.admin = AdminApi(self.rest, self.hub, self.faults)
        self._walk = PriceWalk(self._exchange, scenario.price_walk)
        self._wakers: dict[WsSession, asyncio.Event] = {}
        self._hub_sockets: dict[WsSession, web.WebSocketResponse] = {}
        self.hub.on_ready = self._wake
        self._hung: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._walk_task: asyncio.Task[None] | None = None
        self._funding_task: asyncio.Task[None] | None = None
        self._desk_spec = scenario.desk or DeskSpec()  # desk=True without a section: defaults
        self._desk_enabled = (
            desk if desk is not None else bool(scenario.desk and scenario.desk.enabled)
        )
        self.desk: Desk | None = None
        self._desk_task: asyncio.Task[None] | None = None
        self._url = ""
        self._tls_wanted = tls
        self._tls: TlsMaterial | None = tls if isinstance(tls, TlsMaterial) else None

    # ---- compatibility surface ----------------------------------------------------------
    @property
    def exchange(self) -> Exchange:
        return self._exchange

    @property
    def url(self) -> str:
        return self._url

    @property
    def ws_url(self) -> str:
        return "ws" + self._url.removeprefix("http") + WS_PATH

    @property
    def ca_file(self) -> Path | None:
        """The PEM CA that signed the server certificate (TLS only, once started)."""
        return None if self._tls is None else self._tls.ca_file

    @property
    def tls(self) -> TlsMaterial | None:
        return self._tls

    @property
    def on_changes(self) -> Callable[[list[Change]], None] | None:
        return self.hub.on_changes

    @on_changes.setter
    def on_changes(self, fn: Callable[[list[Change]], None] | None) -> None:
        self.hub.on_changes = fn

    @property
    def rate_limits(self) -> bool:
        return self.rest.rate_limits

    @rate_limits.setter
    def rate_limits(self, on: bool) -> None:
        self.rest.rate_limits = on
        self.hub.options.rate_limits = on

    def apply(self, changes: list[Change]) -> None:
        """Push changes made directly on :attr:`exchange` (benchmark drivers, tests)."""
        self.hub.changes(changes)

    # ---- lifecycle --------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._tls_wanted is True and self._tls is None:
            self._tls = await asyncio.to_thread(make_tls)  # openssl runs ~0.1 s
        app = web.Application()
        app.router.add_get(WS_PATH, self._ws_handler)
        app.router.add_route("*", "/{tail:.*}", self._http)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        ssl_context = None if self._tls is None else self._tls.server_context()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            if self._tls_wanted is True and self._tls is not None:
                remove_tls(self._tls)
                self._tls = None
            raise
        sock_host, sock_port = self._runner.addresses[0][:2]
        scheme = "http" if ssl_context is None else "https"
        self._url = f"{scheme}://{sock_host}:{sock_port}"
        if self._walk_enabled:
            self._walk_task = asyncio.create_task(self._price_walk())
        self._funding_task = asyncio.create_task(self._funding_loop())
        if self._desk_enabled:
            self.desk = Desk(self._exchange, self._desk_spec, time.monotonic())
            self._desk_task = asyncio.create_task(self._desk_loop(self.desk))
        log.info(
            "sim.started",
            url=self._url,
            ws_url=self.ws_url,
            price_walk=self._walk_enabled,
            desk=self._desk_enabled,
        )
        return self._url

    async def stop(self) -> None:
        for loop_task in (self._walk_task, self._desk_task, self._funding_task):
            if loop_task is not None:
                loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop_task
        for task in list(self._hung):
            task.cancel()
        for ws in list(self._hub_sockets.values()):
            await ws.close(code=1001, message=b"server shutdown")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tls_wanted is True and self._tls is not None:
            remove_tls(self._tls)  # made by start(): a fresh CA per run
            self._tls = None
        log.info("sim.stopped", url=self._url)

    # ---- HTTP -------------------------------------------------------------------------
    async def _http(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        if request.path.startswith("/sim/"):
            status, answer = self.admin.handle(request.method, request.path, body)
            return web.json_response(answer, status=status)
        req = RestRequest(
            method=request.method,
            raw_path=request.raw_path,
            query={k: v for k, v in request.query.items()},
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        response = self.rest.handle(req)
        if response.hang is not None:
            await self._hang(response.hang.delay_s)
        return _to_aiohttp(response)

    async def _hang(self, delay_s: float | None) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._hung.add(task)
        try:
            if delay_s is None:
                await asyncio.Event().wait()
            await asyncio.sleep(delay_s or 0)
        finally:
            self._hung.discard(task)

    # ---- WebSocket --------------------------------------------------------------------
    def _wake(self, session: WsSession) -> None:
        event = self._wakers.get(session)
        if event is not None:
            event.set()

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        if self.rest.rate_limits and not self.connects.allow(request.remote or ""):
            refusal = self.hub.options.limits.refusal
            log.info("sim.ws.refused", ip=request.remote, refusal=refusal)
            if refusal == "http_429":
                return web.Response(status=429, text="Too Many Requests")
            refused = web.WebSocketResponse(autoping=False)
            await refused.prepare(request)
            await refused.close(code=CLOSE_TRY_AGAIN_LATER, message=b"Try Again Later")
            return refused
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        session = self.hub.open()
        self._wakers[session] = asyncio.Event()
        self._hub_sockets[session] = ws
        writer = asyncio.create_task(self._write_loop(session, ws, request))
        try:
            async for msg in ws:
                now = self.hub.clock()
                if msg.type == WSMsgType.TEXT:
                    session.receive(msg.data, now)
                elif msg.type == WSMsgType.PING:
                    session.note_rx(now)
                    await ws.pong(msg.data)
                    session.note_tx(self.hub.clock())
                    continue
                elif msg.type == WSMsgType.ERROR:
                    break
                else:
                    session.note_rx(now)
                    continue
                self._wake(session)
        finally:
            self.hub.discard(session)
            self._wakers.pop(session, None)
            self._hub_sockets.pop(session, None)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if session.account is not None:
                log.info(
                    "sim.ws.closed",
                    account=session.account.name,
                    connId=session.conn_id,
                    code=ws.close_code,
                )
        return ws

    async def _write_loop(
        self, session: WsSession, ws: web.WebSocketResponse, request: web.Request
    ) -> None:
        """One writer per connection keeps frames in the order the session produced them."""
        wake = self._wakers[session]
        while True:
            for out in session.poll(self.hub.clock()):
                if ws.closed:
                    return
                if isinstance(out, Close):
                    if out.abrupt and request.transport is not None:
                        request.transport.abort()  # no close frame: the client sees EOF
                        return
                    await ws.close(code=out.code, message=out.reason.encode())
                    return
                text = out
                if self.stamp_pushes and text.startswith('{"arg"'):
                    # Benchmarks only: the wall time the push left, as an extra top-level field.
                    text = f'{text[:-1]},"simTs":{time.time():.6f}}}'
                try:
                    await ws.send_str(text)
                except ConnectionError:
                    return
            due = session.due()
            timeout = None if due is None else max(0.0, due - self.hub.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)
            wake.clear()

    # ---- price walk -------------------------------------------------------------------
    async def _price_walk(self) -> None:
        """Step every mark price each interval (demo liveliness)."""
        while True:
            await asyncio.sleep(self._walk.interval_s)
            self.hub.changes(self._walk.step())

    # ---- funding -----------------------------------------------------------------------
    async def _funding_loop(self) -> None:
        """Settle each instrument's funding on its clock (reactor/sim/funding.py); every
        instrument due at one instant settles in one batch, for every account."""
        terms = {
            i.inst_id: FundingTerms(i.funding_rate, i.funding_interval_s)
            for i in self._exchange.instruments.values()
        }
        clock = FundingClock(terms, time.time())
        while True:
            due = clock.due_at()
            if due is None:
                return
            await asyncio.sleep(max(0.0, due - time.time()))
            inst_ids = clock.take_due(time.time())
            if inst_ids:
                self.admin.settle(inst_ids)

    # ---- the simulated desk -----------------------------------------------------------
    async def _desk_loop(self, desk: Desk) -> None:
        """Sleep until the desk's next order is due, place it, repeat."""
        while True:
            await asyncio.sleep(desk.due_in(time.monotonic()))
            try:
                order = desk.poll(time.monotonic())
                if order is not None:
                    self.desk_fill(order)
            except Exception:  # a desk bug must not silently end the demo's fills
                log.exception("sim.desk.error")

    def desk_fill(self, order: DeskOrder) -> None:
        """One desk order through the exchange's order path (pushes ``orders`` and the
        ``positions`` event like a REST order)."""
        req = order.request
        fields: dict[str, Any] = {
            "account": order.account,
            "instId": req.inst_id,
            "posSide": req.pos_side,
            "side": req.side,
            "sz": str(req.sz),
            "tag": req.tag,
        }
        try:
            done = trade_endpoints.fill(self._exchange, self.hub, order.account, req)
        except ExchangeError as exc:
            log.info("sim.desk.refused", **fields, code=exc.code, msg=exc.msg)
            return
        margin = next(
            (c.position.get("margin") for c in done.changes if c.position["instId"] == req.inst_id),
            None,
        )
        log.info("sim.desk.fill", **fields, ordId=done.ack["ordId"], margin=margin)


def _pick(override: T | None, default: T) -> T:
    return default if override is None else override


def _to_aiohttp(response: RestResponse) -> web.Response:
    return web.Response(
        text=response.text(), status=response.status, content_type=response.content_type
    )
