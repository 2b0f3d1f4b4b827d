"""The simulator's server: OKX v5 REST, the private WebSocket and the ``/sim/`` admin API.

aiohttp serves all three on one port: REST routes, the WebSocket upgrade at
``/ws/v5/private`` and the admin JSON, which ``websockets``' own server cannot do without
hand-written HTTP parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import WSMsgType, web

from reactor.log import get_logger
from reactor.okx import errors
from reactor.okx.signing import parse_iso_timestamp, rest_sign, ws_login_sign
from reactor.sim.exchange import Account, Change, Exchange, ExchangeError, fmt
from reactor.sim.scenario import Scenario

log = get_logger(__name__)

WS_PATH = "/ws/v5/private"
SNAPSHOT_PAGE_SIZE = 100
TIMESTAMP_WINDOW_S = 30.0
RATE_WINDOW_S = 2.0
# path -> requests allowed per RATE_WINDOW_S per account (OKX: per sub-account User ID)
RATE_LIMITS = {
    "/api/v5/account/positions": 10,
    "/api/v5/account/balance": 10,
    "/api/v5/account/position/margin-balance": 20,
}
# Codes errors.py does not carry: 50002 (bad JSON), 51001 (unknown instrument).
_EXTRA_CODES = {
    "50002": ("Json data format error.", 400),
    "51001": ("Instrument ID does not exist.", 200),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Reject(Exception):
    """An OKX error answer for the current request."""

    def __init__(self, code: str, msg: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.msg = msg if msg is not None else _message(code)


def _message(code: str) -> str:
    return _EXTRA_CODES[code][0] if code in _EXTRA_CODES else errors.message(code)


def _status(code: str) -> int:
    return _EXTRA_CODES[code][1] if code in _EXTRA_CODES else errors.HTTP_STATUS.get(code, 200)


def _envelope(code: str, msg: str, data: list[Any] | None = None) -> web.Response:
    status = _status(code)
    body: dict[str, Any] = {"code": code, "msg": msg}
    if code == "50011":
        body["msg"] = "Too Many Requests"
    if status not in (401, 429):  # OKX leaves "data" out of auth and rate-limit errors
        body["data"] = data if data is not None else []
    return web.json_response(body, status=status)


@dataclass(eq=False)
class _Conn:
    """One private WebSocket connection."""

    ws: web.WebSocketResponse
    conn_id: str
    outbox: asyncio.Queue[str]
    account: Account | None = None
    subs: list[dict[str, str]] | None = None
    stamp: bool = False

    async def write_loop(self) -> None:
        """One writer per connection keeps frames in the order they were produced."""
        while True:
            text = await self.outbox.get()
            if self.ws.closed:
                return
            if self.stamp and text.startswith('{"arg"'):
                # Benchmarks only: the wall time the push left, as an extra top-level field.
                text = f'{text[:-1]},"simTs":{time.time():.6f}}}'
            try:
                await self.ws.send_str(text)
            except ConnectionError:
                return


@dataclass
class _Fault:
    kind: str
    account: str
    path: str
    code: str = ""
    delay_s: float | None = None
    count: int = 1


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
    ) -> None:
        self.scenario = scenario
        self._exchange = Exchange.from_scenario(scenario)
        walk = scenario.price_walk
        self._walk_enabled = price_walk if price_walk is not None else bool(walk and walk.enabled)
        self.idle_timeout = idle_timeout
        self.rate_limits = rate_limits
        self.stamp_pushes = stamp_pushes  # add "simTs" (send wall time) to pushes: benchmarks
        # Called with every batch of position changes before it is pushed (benchmarks track
        # time out of band with it).
        self.on_changes: Callable[[list[Change]], None] | None = None
        self._by_key = {a.api_key: a for a in self._exchange.accounts.values()}
        self._conns: set[_Conn] = set()
        self._faults: list[_Fault] = []
        self._silent_until: dict[str, float] = {}
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._requests: list[dict[str, Any]] = []
        self._hung: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._walk_task: asyncio.Task[None] | None = None
        self._url = ""

    # ---- lifecycle --------------------------------------------------------------------
    @property
    def exchange(self) -> Exchange:
        return self._exchange

    @property
    def url(self) -> str:
        return self._url

    @property
    def ws_url(self) -> str:
        return "ws" + self._url.removeprefix("http") + WS_PATH

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(middlewares=[self._catch_all])
        r = app.router
        r.add_get("/api/v5/public/time", self._public_time)
        r.add_get("/api/v5/public/instruments", self._public_instruments)
        r.add_get("/api/v5/account/positions", self._private(self._positions))
        r.add_get("/api/v5/account/balance", self._private(self._balance))
        r.add_post("/api/v5/account/position/margin-balance", self._private(self._margin_balance))
        r.add_get(WS_PATH, self._ws_handler)
        r.add_get("/sim/state", self._admin_state)
        r.add_post("/sim/mark-price", self._admin_mark_price)
        r.add_post("/sim/positions", self._admin_positions)
        r.add_post("/sim/faults", self._admin_faults)
        r.add_get("/sim/requests", self._admin_requests)
        r.add_post("/sim/reset-requests", self._admin_reset_requests)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sock_host, sock_port = self._runner.addresses[0][:2]
        self._url = f"http://{sock_host}:{sock_port}"
        if self._walk_enabled:
            self._walk_task = asyncio.create_task(self._price_walk())
        log.info("sim.started", url=self._url, ws_url=self.ws_url, price_walk=self._walk_enabled)
        return self._url

    async def stop(self) -> None:
        if self._walk_task is not None:
            self._walk_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._walk_task
        for task in list(self._hung):
            task.cancel()
        for conn in list(self._conns):
            await conn.ws.close(code=1001, message=b"server shutdown")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        log.info("sim.stopped", url=self._url)

    # ---- plumbing ---------------------------------------------------------------------
    @web.middleware
    async def _catch_all(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return web.json_response({"code": "404", "msg": "Not Found"}, status=404)
        except web.HTTPMethodNotAllowed:
            return web.json_response({"code": "405", "msg": "Method Not Allowed"}, status=405)

    def _authenticate(self, request: web.Request, body: str) -> Account:
        h = request.headers
        key, sign = h.get("OK-ACCESS-KEY", ""), h.get("OK-ACCESS-SIGN", "")
        ts, phrase = h.get("OK-ACCESS-TIMESTAMP", ""), h.get("OK-ACCESS-PASSPHRASE", "")
        for value, code in ((key, "50103"), (sign, "50106"), (ts, "50107"), (phrase, "50104")):
            if not value:
                raise _Reject(code)
        try:
            sent = parse_iso_timestamp(ts)
        except ValueError:
            raise _Reject("50112") from None
        if abs(time.time() - sent) > TIMESTAMP_WINDOW_S:
            raise _Reject("50102")
        acct = self._by_key.get(key)
        if acct is None:
            raise _Reject("50111")
        if not secrets.compare_digest(phrase, acct.passphrase):
            raise _Reject("50105")
        expected = rest_sign(acct.secret, ts, request.method, request.raw_path, body)
        if not secrets.compare_digest(sign, expected):
            raise _Reject("50113")
        return acct

    def _rate_check(self, acct: Account, path: str) -> None:
        limit = RATE_LIMITS.get(path)
        if not self.rate_limits or limit is None:
            return
        now = time.monotonic()
        hits = self._hits.setdefault((acct.name, path), deque())
        while hits and now - hits[0] >= RATE_WINDOW_S:
            hits.popleft()
        if len(hits) >= limit:
            raise _Reject("50011")
        hits.append(now)

    def _take_fault(self, kind: str, acct: Account, path: str) -> _Fault | None:
        for f in self._faults:
            if f.kind == kind and f.account == acct.name and f.path == path and f.count > 0:
                f.count -= 1
                if f.count == 0:
                    self._faults.remove(f)
                return f
        return None

    def _private(self, fn: Callable[[Account, web.Request, str], list[Any]]) -> Handler:
        """Wrap a private endpoint: signature, rate limit, faults, recording."""

        async def handler(request: web.Request) -> web.StreamResponse:
            body = await request.text()
            entry: dict[str, Any] = {
                "account": None,
                "method": request.method,
                "path": request.raw_path,
                "body": body,
                "code": "0",
                "time": time.time(),
                "simulated": request.headers.get("x-simulated-trading") == "1",
            }
            self._requests.append(entry)
            delay: _Fault | None = None
            try:
                acct = self._authenticate(request, body)
                entry["account"] = acct.name
                self._rate_check(acct, request.path)
                err = self._take_fault("rest_error", acct, request.path)
                if err is not None:
                    raise _Reject(err.code)
                delay = self._take_fault("rest_delay", acct, request.path)
                data = fn(acct, request, body)
                response = _envelope("0", "", data)
            except _Reject as rej:
                entry["code"] = rej.code
                response = _envelope(rej.code, rej.msg)
            if delay is not None:
                await self._hang(delay.delay_s)
            return response

        return handler

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

    def apply(self, changes: list[Change]) -> None:
        """Push changes made directly on :attr:`exchange` (benchmark drivers, tests)."""
        self._apply(changes)

    def _apply(self, changes: list[Change]) -> None:
        """Push every change to the subscribed connections of its account, one push each."""
        if self.on_changes is not None:
            self.on_changes(changes)
        by_account: dict[str, list[dict[str, str]]] = {}
        for c in changes:
            by_account.setdefault(c.account, []).append(c.position)
            if c.position["pos"] == "0":
                log.info(
                    "sim.position.closed",
                    account=c.account,
                    instId=c.position["instId"],
                    posSide=c.position["posSide"],
                    markPx=c.position["markPx"],
                )
        for conn in list(self._conns):
            if conn.account is None or conn.subs is None:
                continue
            positions = by_account.get(conn.account.name)
            if positions and not self._silent(conn.account.name):
                for sub in conn.subs:
                    data = [p for p in positions if _matches(sub, p)]
                    if data:
                        self._send(conn, self._push(conn.account, sub, "event_update", data))

    def _silent(self, account: str) -> bool:
        return time.monotonic() < self._silent_until.get(account, 0.0)

    @staticmethod
    def _push(acct: Account, sub: dict[str, str], event: str, data: list[Any]) -> dict[str, Any]:
        return {"arg": {**sub, "uid": acct.uid}, "eventType": event, "data": data}

    @staticmethod
    def _send(conn: _Conn, msg: dict[str, Any] | str) -> None:
        text = msg if isinstance(msg, str) else json.dumps(msg, separators=(",", ":"))
        conn.outbox.put_nowait(text)

    # ---- public REST --------------------------------------------------------------------
    async def _public_time(self, request: web.Request) -> web.Response:
        return _envelope("0", "", [{"ts": str(int(time.time() * 1000))}])

    async def _public_instruments(self, request: web.Request) -> web.Response:
        inst_type = request.query.get("instType", "")
        if not inst_type:
            return _envelope("50014", "Parameter instType cannot be empty.")
        if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
            return _envelope("51000", "Parameter instType error")
        want = request.query.get("instId", "")
        data = [
            {
                "instType": "SWAP",
                "instId": i.inst_id,
                "uly": i.inst_id.removesuffix("-SWAP"),
                "instFamily": i.inst_id.removesuffix("-SWAP"),
                "ctVal": fmt(i.ct_val),
                "ctValCcy": i.ct_val_ccy,
                "ctMult": "1",
                "ctType": "linear",
                "settleCcy": "USDT",
                "lotSz": fmt(i.lot_sz),
                "minSz": fmt(i.lot_sz),
                "tickSz": fmt(i.tick_sz),
                "lever": "75",
                "state": "live",
            }
            for i in self._exchange.instruments.values()
            if inst_type == "SWAP" and want in ("", i.inst_id)
        ]
        return _envelope("0", "", data)

    # ---- private REST -------------------------------------------------------------------
    def _positions(self, acct: Account, request: web.Request, body: str) -> list[Any]:
        q = request.query
        inst_type = q.get("instType", "")
        if inst_type not in ("", "MARGIN", "SWAP", "FUTURES", "OPTION"):
            raise _Reject("51000", "Parameter instType error")
        inst_ids = {s for s in q.get("instId", "").split(",") if s}
        pos_ids = {s for s in q.get("posId", "").split(",") if s}
        if inst_type not in ("", "SWAP"):
            return []
        return [
            p
            for p in self._exchange.positions(acct.name)
            if (not inst_ids or p["instId"] in inst_ids) and (not pos_ids or p["posId"] in pos_ids)
        ]

    def _balance(self, acct: Account, request: web.Request, body: str) -> list[Any]:
        ccys = {s for s in request.query.get("ccy", "").split(",") if s}
        iso_eq = upl = frozen = Decimal(0)
        for p in acct.positions.values():
            m = self._exchange.metrics(p)
            upl += m.upl
            if p.mgn_mode == "isolated":
                iso_eq += p.margin + m.upl
                frozen += p.margin
        eq = (
            acct.balance
            + iso_eq
            + sum(
                (
                    self._exchange.metrics(p).upl
                    for p in acct.positions.values()
                    if p.mgn_mode == "cross"
                ),
                Decimal(0),
            )
        )
        now = str(int(time.time() * 1000))
        detail = {
            "ccy": "USDT",
            "eq": fmt(eq),
            "cashBal": fmt(acct.balance + frozen),
            "availBal": fmt(acct.balance),
            "availEq": fmt(acct.balance),
            "frozenBal": fmt(frozen),
            "isoEq": fmt(iso_eq),
            "upl": fmt(upl),
            "eqUsd": fmt(eq),
            "uTime": now,
        }
        details = [detail] if not ccys or "USDT" in ccys else []
        return [{"totalEq": fmt(eq), "adjEq": "", "uTime": now, "details": details}]

    def _margin_balance(self, acct: Account, request: web.Request, body: str) -> list[Any]:
        if not body.strip():
            raise _Reject("50000")
        try:
            raw = json.loads(body)
        except ValueError:
            raise _Reject("50002") from None
        if not isinstance(raw, dict):
            raise _Reject("50002")
        fields: dict[str, Any] = {k: v for k, v in raw.items() if v not in ("", None)}
        for name in ("instId", "posSide", "type", "amt"):
            if name not in fields:
                raise _Reject("50014", f"Parameter {name} cannot be empty.")
        inst_id, side, kind, amt_raw = (fields[k] for k in ("instId", "posSide", "type", "amt"))
        if not isinstance(inst_id, str):
            raise _Reject("51000", "Parameter instId error")
        if side not in ("long", "short", "net"):
            raise _Reject("51000", "Parameter posSide error")
        if kind not in ("add", "reduce"):
            raise _Reject("51000", "Parameter type error")
        if isinstance(amt_raw, bool) or not isinstance(amt_raw, str | int | float):
            raise _Reject("51000", "Parameter amt error")
        try:
            amt = Decimal(str(amt_raw))
        except InvalidOperation:
            raise _Reject("51000", "Parameter amt error") from None
        if not amt.is_finite() or amt <= 0:
            raise _Reject("51000", "Parameter amt error")
        if inst_id not in self._exchange.instruments:
            raise _Reject("51001")
        try:
            result, changes = self._exchange.margin_balance(acct.name, inst_id, side, kind, amt)
        except ExchangeError as exc:
            raise _Reject(exc.code, exc.msg) from None
        self._apply(changes)
        return [result]

    # ---- private WebSocket --------------------------------------------------------------
    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Conn(
            ws=ws, conn_id=secrets.token_hex(4), outbox=asyncio.Queue(), stamp=self.stamp_pushes
        )
        self._conns.add(conn)
        writer = asyncio.create_task(conn.write_loop())
        try:
            while True:
                try:
                    msg = await ws.receive(timeout=self.idle_timeout)
                except TimeoutError:
                    await ws.close(code=4004, message=b"No data received in 30s")
                    break
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
                if msg.type == WSMsgType.ERROR:
                    break
                if msg.type != WSMsgType.TEXT:
                    continue
                self._ws_message(conn, msg.data)
        finally:
            self._conns.discard(conn)
            writer.cancel()
            if conn.account is not None:
                log.info(
                    "sim.ws.closed",
                    account=conn.account.name,
                    connId=conn.conn_id,
                    code=ws.close_code,
                )
        return ws

    def _ws_error(self, conn: _Conn, code: str, msg: str) -> None:
        self._send(conn, {"event": "error", "code": code, "msg": msg, "connId": conn.conn_id})

    def _ws_message(self, conn: _Conn, text: str) -> None:
        if text == "ping":
            if conn.account is None or not self._silent(conn.account.name):
                self._send(conn, "pong")
            return
        try:
            req = json.loads(text)
        except ValueError:
            self._ws_error(conn, "60012", f"Illegal request: {text[:100]}")
            return
        op = req.get("op") if isinstance(req, dict) else None
        args = req.get("args") if isinstance(req, dict) else None
        if op == "login":
            self._ws_login(conn, args)
        elif op in ("subscribe", "unsubscribe") and isinstance(args, list) and args:
            self._ws_subscribe(conn, op, args, text)
        else:
            self._ws_error(conn, "60012", f"Illegal request: {text[:100]}")

    def _ws_login(self, conn: _Conn, args: Any) -> None:
        arg = args[0] if isinstance(args, list) and len(args) == 1 else None
        fields = ("apiKey", "passphrase", "timestamp", "sign")
        if not isinstance(arg, dict) or any(f not in arg for f in fields):
            self._ws_error(conn, "60009", "Login failed.")
            return
        key, phrase, ts, sign = (arg[f] for f in fields)
        if isinstance(ts, bool) or not isinstance(ts, str | int):
            self._ws_error(conn, "60009", "Login failed.")
            return
        ts_text = str(ts)
        acct = self._by_key.get(key) if isinstance(key, str) else None
        try:
            skew = abs(time.time() - float(ts_text))
        except ValueError:
            skew = math.inf
        if math.isnan(skew):
            skew = math.inf
        if acct is None:
            code, msg = "60005", "Invalid OK-ACCESS-KEY"
        elif skew > TIMESTAMP_WINDOW_S:
            code, msg = "60006", "Timestamp request expired"
        elif not isinstance(phrase, str) or not secrets.compare_digest(phrase, acct.passphrase):
            code, msg = "60024", "Wrong passphrase"
        elif not isinstance(sign, str) or not secrets.compare_digest(
            sign, ws_login_sign(acct.secret, ts_text)
        ):
            code, msg = "60007", "Invalid sign"
        else:
            conn.account = acct
            self._send(conn, {"event": "login", "code": "0", "msg": "", "connId": conn.conn_id})
            log.info("sim.ws.login", account=acct.name, connId=conn.conn_id, code="0")
            return
        log.info(
            "sim.ws.login", account=acct.name if acct else None, connId=conn.conn_id, code=code
        )
        self._ws_error(conn, code, msg)

    def _ws_subscribe(self, conn: _Conn, op: str, args: list[Any], text: str) -> None:
        if conn.account is None:
            self._ws_error(conn, "60011", "Please log in")
            return
        for arg in args:
            if (
                not isinstance(arg, dict)
                or arg.get("channel") != "positions"
                or not isinstance(arg.get("instType"), str)
                or not all(isinstance(v, str) for v in arg.values())
            ):
                self._ws_error(conn, "60012", f"Illegal request: {text[:100]}")
                return
        subs = conn.subs if conn.subs is not None else []
        for arg in args:
            sub = {
                k: v for k, v in arg.items() if k in ("channel", "instType", "instFamily", "instId")
            }
            if op == "unsubscribe":
                subs = [s for s in subs if s != sub]
                self._send(conn, {"event": "unsubscribe", "arg": sub, "connId": conn.conn_id})
                continue
            if sub not in subs:
                subs.append(sub)
            self._send(conn, {"event": "subscribe", "arg": sub, "connId": conn.conn_id})
            self._snapshot(conn, sub)
        conn.subs = subs

    def _snapshot(self, conn: _Conn, sub: dict[str, str]) -> None:
        assert conn.account is not None
        if self._silent(conn.account.name):
            return
        data = [p for p in self._exchange.positions(conn.account.name) if _matches(sub, p)]
        pages = [data[i : i + SNAPSHOT_PAGE_SIZE] for i in range(0, len(data), SNAPSHOT_PAGE_SIZE)]
        pages = pages or [[]]
        for n, page in enumerate(pages, start=1):
            msg = self._push(conn.account, sub, "snapshot", page)
            msg["curPage"] = n
            msg["lastPage"] = n == len(pages)
            self._send(conn, msg)

    # ---- admin API ----------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        ex = self._exchange
        return {
            "instruments": [
                {
                    "instId": i.inst_id,
                    "ctVal": fmt(i.ct_val),
                    "markPx": fmt(i.mark_px),
                    "mmrRate": fmt(i.mmr_rate),
                }
                for i in ex.instruments.values()
            ],
            "accounts": [
                {
                    "name": a.name,
                    "uid": a.uid,
                    "main": a.main,
                    "balance": fmt(a.balance),
                    "positions": ex.positions(a.name),
                }
                for a in ex.accounts.values()
            ],
        }

    async def _admin_state(self, request: web.Request) -> web.Response:
        return web.json_response(self._state())

    async def _admin_json(self, request: web.Request) -> dict[str, Any]:
        try:
            raw = await request.json()
        except ValueError:
            raise _bad("body is not JSON") from None
        if not isinstance(raw, dict):
            raise _bad("body must be a JSON object")
        return raw

    def _admin_account(self, raw: dict[str, Any]) -> Account:
        acct = self._exchange.accounts.get(str(raw.get("account")))
        if acct is None:
            raise _bad(f"unknown account {raw.get('account')!r}")
        return acct

    async def _admin_mark_price(self, request: web.Request) -> web.Response:
        raw = await self._admin_json(request)
        inst_id = raw.get("instId")
        if inst_id not in self._exchange.instruments:
            raise _bad(f"unknown instId {inst_id!r}")
        changes = self._exchange.set_mark_price(str(inst_id), _dec(raw, "markPx"))
        self._apply(changes)
        return web.json_response({"ok": True, "changed": len(changes)})

    async def _admin_positions(self, request: web.Request) -> web.Response:
        raw = await self._admin_json(request)
        acct = self._admin_account(raw)
        side = raw.get("posSide")
        if side not in ("long", "short", "net"):
            raise _bad("posSide must be long, short or net")
        pos = _dec(raw, "pos")
        zero = pos == 0
        mode = raw.get("mgnMode", "isolated")
        if mode not in ("isolated", "cross"):
            raise _bad("mgnMode must be isolated or cross")
        c_time = raw.get("cTime")
        try:
            changes = self._exchange.set_position(
                acct.name,
                str(raw.get("instId")),
                str(side),
                pos=pos,
                avg_px=Decimal(1) if zero else _dec(raw, "avgPx"),
                lever=Decimal(1) if zero else _dec(raw, "lever"),
                margin=Decimal(0) if zero or mode == "cross" else _dec(raw, "margin"),
                mgn_mode=str(mode),
                c_time=int(c_time) if c_time is not None else None,
            )
        except ExchangeError as exc:
            raise _bad(exc.msg) from None
        self._apply(changes)
        return web.json_response({"ok": True, "changes": [c.position for c in changes]})

    async def _admin_faults(self, request: web.Request) -> web.Response:
        raw = await self._admin_json(request)
        kind = raw.get("kind")
        acct = self._admin_account(raw)
        conns = [c for c in self._conns if c.account is acct]
        if kind == "drop_ws":
            for c in conns:
                await c.ws.close(code=1001, message=b"dropped by simulator")
        elif kind in ("rest_error", "rest_delay"):
            path = raw.get("path")
            if not isinstance(path, str) or not path.startswith("/"):
                raise _bad("path must be a request path such as /api/v5/account/positions")
            fault = _Fault(kind, acct.name, path.split("?")[0], count=int(raw.get("count", 1)))
            if kind == "rest_error":
                fault.code = str(raw.get("code", "50013"))
            else:
                delay = raw.get("delay_s")
                fault.delay_s = None if delay is None else float(delay)
            self._faults.append(fault)
        elif kind == "raw_frame":
            frame = raw.get("frame")
            if not isinstance(frame, str):
                raise _bad("frame must be a string")
            for c in conns:
                self._send(c, frame)
        elif kind == "ws_silent":
            self._silent_until[acct.name] = time.monotonic() + float(raw.get("seconds", 0))
        elif kind == "ws_notice":
            for c in conns:
                self._send(
                    c,
                    {
                        "event": "notice",
                        "code": "64008",
                        "msg": "The connection will soon be closed for a service upgrade. "
                        "Please reconnect.",
                        "connId": c.conn_id,
                    },
                )
        else:
            raise _bad(f"unknown fault kind {kind!r}")
        log.info("sim.fault", kind=kind, account=acct.name, connections=len(conns))
        return web.json_response({"ok": True, "connections": len(conns)})

    async def _admin_requests(self, request: web.Request) -> web.Response:
        return web.json_response(self._requests)

    async def _admin_reset_requests(self, request: web.Request) -> web.Response:
        self._requests.clear()
        return web.json_response({"ok": True})

    # ---- price walk ---------------------------------------------------------------------
    async def _price_walk(self) -> None:
        """Move every mark price by a bounded random step each interval (demo liveliness)."""
        spec = self.scenario.price_walk
        interval = spec.interval_s if spec else 1.0
        max_step = (spec.max_step_pct if spec else Decimal("0.2")) / 100
        rng = random.Random(spec.seed if spec else None)
        while True:
            await asyncio.sleep(interval)
            for inst in list(self._exchange.instruments.values()):
                step = Decimal(rng.randint(-1000, 1000)) / 1000 * max_step
                px = (inst.mark_px * (1 + step)).quantize(inst.tick_sz)
                if px > 0:
                    self._apply(self._exchange.set_mark_price(inst.inst_id, px))


def _matches(sub: dict[str, str], position: dict[str, str]) -> bool:
    if sub.get("instType") not in ("SWAP", "ANY"):
        return False
    inst_id = sub.get("instId")
    family = sub.get("instFamily")
    if inst_id and position["instId"] != inst_id:
        return False
    return not family or position["instId"].startswith(family + "-SWAP")


def _bad(reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": reason}), content_type="application/json")


def _dec(raw: dict[str, Any], name: str) -> Decimal:
    value = raw.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _bad(f"{name} must be a number string")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise _bad(f"{name} is not a number: {value!r}") from None
    if not d.is_finite() or d < 0:
        raise _bad(f"{name} must be a finite non-negative number")
    return d
