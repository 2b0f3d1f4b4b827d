"""The simulator's ``/sim/`` admin API, sans-I/O: tests and demos steer the exchange with it.

Not part of OKX: plain JSON in, ``(status, JSON)`` out. Errors are HTTP 400 with
``{"error": reason}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from reactor.log import get_logger
from reactor.okx import errors
from reactor.sim.exchange import Account, Change, ExchangeError, Instrument, fmt
from reactor.sim.faults import FaultPlan, RestFault
from reactor.sim.rest_api import RestApi
from reactor.sim.scenario import InstrumentSpec
from reactor.sim.ws_api import WsHub

log = get_logger(__name__)

AdminHandler = Callable[[dict[str, Any]], Any]


class BadRequest(Exception):
    """A 400 answer naming what is wrong with the admin request."""


class AdminApi:
    """``GET /sim/state``, ``POST /sim/mark-price`` ... as plain functions of JSON."""

    def __init__(self, rest: RestApi, hub: WsHub, faults: FaultPlan) -> None:
        self.rest = rest
        self.hub = hub
        self.faults = faults
        self.exchange = rest.exchange
        self._routes: dict[tuple[str, str], AdminHandler] = {
            ("GET", "/sim/state"): lambda raw: self.state(),
            ("POST", "/sim/mark-price"): self.mark_price,
            ("POST", "/sim/instruments"): self.list_instrument,
            ("POST", "/sim/positions"): self.positions,
            ("POST", "/sim/position-state"): self.position_state,
            ("POST", "/sim/faults"): self.fault,
            ("POST", "/sim/funding"): self.funding,
            ("GET", "/sim/requests"): lambda raw: self.rest.requests,
            ("POST", "/sim/reset-requests"): self.reset_requests,
        }

    def add(self, method: str, path: str, handler: AdminHandler) -> None:
        """Serve another admin route (``handler`` gets the JSON body, {} for GET)."""
        self._routes[(method.upper(), path)] = handler

    def knows(self, path: str) -> bool:
        return any(p == path for _, p in self._routes)

    def handle(self, method: str, path: str, body: str) -> tuple[int, Any]:
        route = self._routes.get((method.upper(), path))
        if route is None:
            if self.knows(path):
                return 405, {"code": "405", "msg": "Method Not Allowed"}
            return 404, {"code": "404", "msg": "Not Found"}
        try:
            raw: dict[str, Any] = {}
            if method.upper() == "POST":
                try:
                    parsed = json.loads(body)
                except ValueError:
                    raise BadRequest("body is not JSON") from None
                if not isinstance(parsed, dict):
                    raise BadRequest("body must be a JSON object")
                raw = parsed
            return 200, route(raw)
        except BadRequest as exc:
            return 400, {"error": str(exc)}

    # ---- routes -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        ex = self.exchange
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

    def account(self, raw: dict[str, Any]) -> Account:
        acct = self.exchange.accounts.get(str(raw.get("account")))
        if acct is None:
            raise BadRequest(f"unknown account {raw.get('account')!r}")
        return acct

    def mark_price(self, raw: dict[str, Any]) -> dict[str, Any]:
        inst_id = raw.get("instId")
        if inst_id not in self.exchange.instruments:
            raise BadRequest(f"unknown instId {inst_id!r}")
        changes = self.exchange.set_mark_price(str(inst_id), decimal_field(raw, "markPx"))
        self.hub.changes(changes)
        return {"ok": True, "changed": len(changes)}

    def list_instrument(self, raw: dict[str, Any]) -> dict[str, Any]:
        """List a new instrument while running, as OKX does (docs/spec/okx-fidelity.md §7.11); the
        body is a scenario ``instruments`` entry."""
        try:
            spec = InstrumentSpec.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(body)"
            raise BadRequest(f"{where}: {first['msg']}") from None
        if spec.instId in self.exchange.instruments:
            raise BadRequest(f"instId {spec.instId!r} is already listed")
        self.exchange.instruments[spec.instId] = instrument_from_spec(spec)
        log.info("sim.instrument.listed", instId=spec.instId)
        return {"ok": True, "instId": spec.instId}

    def positions(self, raw: dict[str, Any]) -> dict[str, Any]:
        acct = self.account(raw)
        side = raw.get("posSide")
        if side not in ("long", "short", "net"):
            raise BadRequest("posSide must be long, short or net")
        pos = decimal_field(raw, "pos")
        zero = pos == 0
        mode = raw.get("mgnMode", "isolated")
        if mode not in ("isolated", "cross"):
            raise BadRequest("mgnMode must be isolated or cross")
        c_time = raw.get("cTime")
        try:
            changes = self.exchange.set_position(
                acct.name,
                str(raw.get("instId")),
                str(side),
                pos=pos,
                avg_px=Decimal(1) if zero else decimal_field(raw, "avgPx"),
                lever=Decimal(1) if zero else decimal_field(raw, "lever"),
                margin=Decimal(0) if zero or mode == "cross" else decimal_field(raw, "margin"),
                mgn_mode=str(mode),
                c_time=int(c_time) if c_time is not None else None,
            )
        except ExchangeError as exc:
            raise BadRequest(exc.msg) from None
        self.hub.changes(changes)
        return {"ok": True, "changes": [c.position for c in changes]}

    def position_state(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Attach TP/SL orders to a position (``closeOrders``: how many, 0 cancels them;
        ``margin-balance`` reduces then answer 59302) and freeze it (``frozen``: "50020"
        liquidation, "50017" ADL, "" thaws; every margin call answers that code)."""
        acct = self.account(raw)
        side, mode = raw.get("posSide"), raw.get("mgnMode", "isolated")
        if side not in ("long", "short", "net"):
            raise BadRequest("posSide must be long, short or net")
        if mode not in ("isolated", "cross"):
            raise BadRequest("mgnMode must be isolated or cross")
        count = raw.get("closeOrders")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise BadRequest("closeOrders must be a whole number")
        frozen = raw.get("frozen")
        if frozen is not None and frozen not in ("", "50020", "50017"):
            raise BadRequest('frozen must be "50020", "50017" or ""')
        try:
            changes = self.exchange.set_position_state(
                acct.name,
                str(raw.get("instId")),
                str(side),
                str(mode),
                close_orders=count,
                frozen=frozen,
            )
        except ExchangeError as exc:
            raise BadRequest(exc.msg) from None
        self.hub.changes(changes)
        log.info(
            "sim.position.state",
            account=acct.name,
            instId=raw.get("instId"),
            posSide=side,
            closeOrders=count,
            frozen=frozen,
        )
        return {"ok": True, "changes": [c.position for c in changes]}

    def fault(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Inject a fault. ``drop_ws`` and ``ws_notice`` take ``account`` "*": every connection
        of the node, logged in or not (a service upgrade, docs/spec/okx-fidelity.md §11.2.4)."""
        kind = raw.get("kind")
        if raw.get("account") == "*" and kind in ("drop_ws", "ws_notice"):
            name = "*"
            sessions = list(self.hub.sessions)
        else:
            name = self.account(raw).name
            sessions = self.hub.sessions_of(name)
        if kind == "drop_ws":
            eof = raw.get("eof", False)
            if not isinstance(eof, bool):
                raise BadRequest("eof must be true or false")
            for s in sessions:
                # eof: cut the TCP connection without a close frame (1006; ISS-TG90)
                s.close(1006 if eof else 1001, "dropped by simulator", abrupt=eof)
        elif kind in ("rest_error", "rest_delay", "rest_gateway"):
            acct = self.account(raw)
            path = raw.get("path")
            if not isinstance(path, str) or not path.startswith("/"):
                raise BadRequest("path must be a request path such as /api/v5/account/positions")
            fault = RestFault(kind, acct.name, path.split("?")[0], count=int(raw.get("count", 1)))
            if kind == "rest_error":
                fault.code = str(raw.get("code", "50013"))
                status = raw.get("status")
                if status is not None:
                    # e.g. 200: DOC-ERR lists 50011 with HTTP 200 as well as 429 (§11.2.7)
                    if isinstance(status, bool) or status not in (200, 400, 401, 410, 429, 503):
                        raise BadRequest("status must be 200, 400, 401, 410, 429 or 503")
                    fault.http_status = int(status)
            elif kind == "rest_gateway":
                status, body = raw.get("status", 502), raw.get("body", "html")
                if status not in (500, 502, 503, 504):
                    raise BadRequest("status must be 500, 502, 503 or 504")
                if body not in ("html", "json"):
                    raise BadRequest("body must be html or json")
                fault.status, fault.body_kind = int(status), body
                fault.applied = raw.get("applied") is True
            else:
                delay = raw.get("delay_s")
                fault.delay_s = None if delay is None else float(delay)
            self.faults.add_rest(fault)
        elif kind == "raw_frame":
            frame = raw.get("frame")
            if not isinstance(frame, str):
                raise BadRequest("frame must be a string")
            for s in sessions:
                s.send_raw(frame)
        elif kind == "ws_login_error":
            code = raw.get("code")
            if not isinstance(code, str) or not code.isdigit():
                raise BadRequest("code must be an OKX error code such as 60032")
            self.faults.add_login_error(name, code, int(raw.get("count", 1)))
        elif kind == "ws_close":
            close_code = raw.get("code")
            if isinstance(close_code, bool) or not isinstance(close_code, int):
                raise BadRequest("code must be a WebSocket close code such as 4007")
            entry = errors.CLOSE_CODES.get(close_code)
            for s in sessions:
                s.close(close_code, entry.msg if entry is not None else "closed by simulator")
        elif kind == "ws_silent":
            self.faults.silence(name, float(raw.get("seconds", 0)))
        elif kind == "ws_quiet_close":
            seconds = raw.get("seconds")
            if seconds is not None and (
                isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0
            ):
                raise BadRequest("seconds must be a positive number or null")
            self.faults.set_quiet_close(name, None if seconds is None else float(seconds))
            for s in sessions:
                self.hub.wake(s)
        elif kind == "ws_channel_delay":
            channel, seconds = raw.get("channel"), raw.get("seconds")
            if not isinstance(channel, str) or not channel:
                raise BadRequest("channel must be a channel name such as orders")
            if seconds is not None and (
                isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0
            ):
                raise BadRequest("seconds must be a non-negative number or null")
            delay = None if seconds is None else float(seconds)
            self.faults.set_channel_delay(name, channel, delay)
        elif kind == "ws_notice":
            # DOC-WS: the notice comes "60 seconds prior to the upgrade", then the close; live
            # closes after it came without a close frame (ISS-TG90). close_after_s: null never.
            after = raw.get("close_after_s", 60)
            if after is not None and (
                isinstance(after, bool) or not isinstance(after, int | float) or after < 0
            ):
                raise BadRequest("close_after_s must be a non-negative number or null")
            how = raw.get("close", "eof")
            if how not in ("eof", "frame"):
                raise BadRequest("close must be eof or frame")
            now = self.hub.clock()
            for s in sessions:
                s.send_raw(
                    json.dumps(
                        {
                            "event": "notice",
                            "code": "64008",
                            "msg": "The connection will soon be closed for a service upgrade. "
                            "Please reconnect.",
                            "connId": s.conn_id,
                        },
                        separators=(",", ":"),
                    )
                )
                if after is not None:
                    s.schedule_close(now + float(after), abrupt=how == "eof")
        else:
            raise BadRequest(f"unknown fault kind {kind!r}")
        log.info("sim.fault", kind=kind, account=name, connections=len(sessions))
        return {"ok": True, "connections": len(sessions)}

    def funding(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Settle funding now (tests and benchmarks do not wait for the clock): ``instId``
        (default: every instrument with a funding rate), ``fundingRate`` to override the
        scenario's rate for this settlement (a signed number string)."""
        inst_id = raw.get("instId")
        if inst_id is not None and inst_id not in self.exchange.instruments:
            raise BadRequest(f"unknown instId {inst_id!r}")
        rate: Decimal | None = None
        if raw.get("fundingRate") is not None:
            rate = signed_decimal_field(raw, "fundingRate")
        if inst_id is not None:
            inst_ids = [str(inst_id)]
        else:
            inst_ids = [
                i.inst_id
                for i in self.exchange.instruments.values()
                if rate is not None or i.funding_rate != 0
            ]
        changes = self.settle(inst_ids, rate)
        return {"ok": True, "instIds": inst_ids, "changed": len(changes)}

    def settle(self, inst_ids: list[str], rate: Decimal | None = None) -> list[Change]:
        """Settle ``inst_ids`` in one go (one timestamp) and push every change."""
        changes: list[Change] = []
        for inst_id in inst_ids:
            changes.extend(self.exchange.settle_funding(inst_id, rate))
        self.hub.changes(changes)
        log.info("sim.funding.settled", instIds=inst_ids, changed=len(changes))
        return changes

    def reset_requests(self, raw: dict[str, Any]) -> dict[str, Any]:
        self.rest.requests.clear()
        return {"ok": True}


def _number(raw: dict[str, Any], name: str) -> Decimal:
    """A number (string or JSON number) from an admin body, not yet range-checked."""
    value = raw.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadRequest(f"{name} must be a number string")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise BadRequest(f"{name} is not a number: {value!r}") from None


def decimal_field(raw: dict[str, Any], name: str) -> Decimal:
    """A finite non-negative number (string or JSON number) from an admin body."""
    d = _number(raw, name)
    if not d.is_finite() or d < 0:
        raise BadRequest(f"{name} must be a finite non-negative number")
    return d


def signed_decimal_field(raw: dict[str, Any], name: str) -> Decimal:
    """A finite number of either sign (string or JSON number) from an admin body."""
    d = _number(raw, name)
    if not d.is_finite():
        raise BadRequest(f"{name} must be finite")
    return d


def instrument_from_spec(spec: InstrumentSpec) -> Instrument:
    return Instrument(
        inst_id=spec.instId,
        ct_val=spec.ctVal,
        mark_px=spec.markPx,
        mmr_rate=spec.mmrRate,
        lot_sz=spec.lotSz,
        tick_sz=spec.tickSz,
        ct_val_ccy=spec.ctValCcy or spec.instId.split("-")[0],
        funding_rate=spec.fundingRate,
        funding_interval_s=spec.fundingIntervalS,
    )
