"""The simulator's OKX v5 REST, sans-I/O: a request value in, a response value out.

:meth:`RestApi.handle` does what OKX's gateway does around every endpoint (signature check,
timestamp window, rate windows, the ``{"code","msg","data"}`` envelope, armed faults, the
request log); the endpoints themselves are plain functions registered with :meth:`RestApi.add`
(see :mod:`reactor.sim.endpoints`). The aiohttp glue in :mod:`reactor.sim.server` only converts
to and from these values, so every OKX answer is testable without a socket.

Adding an endpoint::

    def get_thing(call: Call) -> list[Any]:
        inst_id = call.require("instId")           # 50014 when missing
        if inst_id not in call.exchange.instruments:
            raise Reject("51001")
        call.publish_changes(changes)              # position changes -> ``positions`` pushes
        call.publish("orders", call.account.name, [order])   # any other registered channel
        return [...]                               # the envelope's "data"

    api.add("GET", "/api/v5/x/thing", get_thing, private=True, rate_limit=(20, 2.0))
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from reactor.okx import errors
from reactor.okx.pacing import SlidingWindow
from reactor.okx.signing import parse_iso_timestamp, rest_sign
from reactor.sim.exchange import Account, Change, Exchange
from reactor.sim.faults import FaultPlan

TIMESTAMP_WINDOW_S = 30.0

# Codes errors.py does not carry: 50002 (bad JSON), 51001 (unknown instrument); 50111 with
# OKX's exact text (NT http_error_invalid_access_key.json: no trailing period), 50004 with
# the DOC table's text and status.
_EXTRA_CODES = {
    "50002": ("Json data format error.", 400),
    "51001": ("Instrument ID does not exist.", 200),
    "50111": ("Invalid OK-ACCESS-KEY", 401),
    # DOC-ERR (docs/spec/okx-fidelity.md §11.2.7): 50001 with HTTP 503, 50005 with 410
    "50001": ("Service temporarily unavailable. Please try again later.", 503),
    "50005": ("API endpoint is inactive or unavailable.", 410),
    # DOC error table: HTTP 400 (docs/spec/okx-fidelity.md §7.10)
    "50004": (
        "API endpoint request timeout. (does not mean that the request was successful or "
        "failed, please check the request result).",
        400,
    ),
}


RATE_LIMIT_200_TEXT = (
    "Rate limit reached. Please refer to API documentation and throttle requests accordingly."
)


class Reject(Exception):
    """An OKX error answer for the current request (raised by endpoints and the gateway)."""

    def __init__(
        self,
        code: str,
        msg: str | None = None,
        data: list[Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.msg = msg if msg is not None else message(code)
        self.data = data  # e.g. a failed order's sCode/sMsg (place order answers code "1")
        self.status = status  # the HTTP status when not the code's own (a fault)


def message(code: str) -> str:
    return _EXTRA_CODES[code][0] if code in _EXTRA_CODES else errors.message(code)


def http_status(code: str) -> int:
    return _EXTRA_CODES[code][1] if code in _EXTRA_CODES else errors.HTTP_STATUS.get(code, 200)


@dataclass(frozen=True)
class RestRequest:
    """One HTTP request as the gateway sees it. ``raw_path`` is the path and query as sent
    (what the signature covers); ``headers`` keys are lower-case."""

    method: str
    raw_path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: str = ""

    @property
    def path(self) -> str:
        return self.raw_path.split("?", 1)[0]

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass(frozen=True)
class Hang:
    """Answer only after ``delay_s`` seconds (None: never); the request is applied already."""

    delay_s: float | None


@dataclass
class RestResponse:
    """What to send back. ``body`` is JSON-able unless ``content_type`` says otherwise."""

    status: int
    body: Any
    content_type: str = "application/json"
    hang: Hang | None = None

    def text(self) -> str:
        if self.content_type == "application/json":
            return json.dumps(self.body, separators=(",", ":"))
        return str(self.body)


def not_found() -> RestResponse:
    """OKX's 404 for an unknown path: the gateway's body with a numeric ``code`` (NT
    ``http_error_not_found.json``, captured 2026-09-29; docs/spec/okx-fidelity.md §7.1)."""
    body = {
        "code": 404,
        "data": {},
        "detailMsg": "",
        "error_code": "404",
        "error_message": "Not Found",
        "msg": "Not Found",
    }
    return RestResponse(404, body)


def envelope(
    code: str, msg: str, data: list[Any] | None = None, status: int | None = None
) -> RestResponse:
    """OKX's answer envelope; ``data`` is left out of auth and rate-limit errors (NT
    ``http_error_invalid_access_key.json``, ``http_error_rate_limit.json``). DOC-ERR lists
    50011 twice: 429 "Too Many Requests" and 200 with its longer text."""
    status = http_status(code) if status is None else status
    body: dict[str, Any] = {"code": code, "msg": msg}
    if code == "50011":
        body["msg"] = "Too Many Requests" if status == 429 else RATE_LIMIT_200_TEXT
    if status not in (401, 429):
        body["data"] = data if data is not None else []
    return RestResponse(status, body)


_GATEWAY_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def gateway_error(status: int, body_kind: str) -> RestResponse:
    """A 5xx from OKX's gateway rather than its API: an HTML page or the gateway's JSON with a
    numeric ``code`` (docs/spec/okx-fidelity.md §7.9, shape as NT ``http_error_not_found.json``)."""
    reason = _GATEWAY_REASONS.get(status, "Internal Server Error")
    if body_kind == "json":
        body = {
            "code": status,
            "data": {},
            "detailMsg": "",
            "error_code": str(status),
            "error_message": reason,
            "msg": reason,
        }
        return RestResponse(status, body)
    html = (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
    )
    return RestResponse(status, html, content_type="text/html")


class Publisher(Protocol):
    """Where endpoints send what they changed (the WebSocket side)."""

    def changes(self, changes: list[Change]) -> None: ...

    def records(self, channel: str, account: str, records: list[dict[str, Any]]) -> None: ...


@dataclass
class Call:
    """One request being answered by an endpoint."""

    request: RestRequest
    exchange: Exchange
    publisher: Publisher
    _account: Account | None = None
    _json: Any = field(default=None, repr=False)

    @property
    def account(self) -> Account:
        """The signed-in account (private endpoints only)."""
        if self._account is None:
            raise RuntimeError("public endpoint has no account")
        return self._account

    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query

    def publish_changes(self, changes: list[Change]) -> None:
        self.publisher.changes(changes)

    def publish(self, channel: str, account: str, records: list[dict[str, Any]]) -> None:
        self.publisher.records(channel, account, records)

    def json_body(self) -> dict[str, Any]:
        """The POST body as an object: 50000 when empty, 50002 when not a JSON object."""
        if self._json is None:
            if not self.request.body.strip():
                raise Reject("50000")
            try:
                raw = json.loads(self.request.body)
            except ValueError:
                raise Reject("50002") from None
            if not isinstance(raw, dict):
                raise Reject("50002")
            self._json = raw
        return dict(self._json)

    def require(self, name: str, source: Mapping[str, Any] | None = None) -> Any:
        """A parameter that must be present and non-empty (50014 otherwise)."""
        src = self.query if source is None else source
        value = src.get(name)
        if value in ("", None):
            raise Reject("50014", f"Parameter {name} cannot be empty.")
        return value


def parse_positive_decimal(name: str, value: Any) -> Decimal:
    """A strictly positive finite number sent as a string or number; 51000 otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Reject("51000", f"Parameter {name} error")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise Reject("51000", f"Parameter {name} error") from None
    if not d.is_finite() or d <= 0:
        raise Reject("51000", f"Parameter {name} error")
    return d


Endpoint = Callable[[Call], list[Any]]


@dataclass(frozen=True)
class Route:
    handler: Endpoint
    private: bool
    # (requests, window seconds) per account (OKX: per sub-account User ID), or None
    rate_limit: tuple[int, float] | None = None


class RestApi:
    """The REST gateway: routes, auth, rate windows, faults, request log."""

    def __init__(
        self,
        exchange: Exchange,
        faults: FaultPlan,
        publisher: Publisher,
        *,
        rate_limits: bool = True,
        demo_keys: bool = True,
        timestamp_window_s: float = TIMESTAMP_WINDOW_S,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.exchange = exchange
        self.faults = faults
        self.publisher = publisher
        self.rate_limits = rate_limits
        # The accounts' keys are demo-trading keys (OKX: a demo key needs x-simulated-trading: 1,
        # a live key must not send it; else 50101, docs/spec/okx-fidelity.md §7.8).
        self.demo_keys = demo_keys
        # OKX refuses a request signed further than this from its clock: 50102 (DOC: 30 s).
        self.timestamp_window_s = timestamp_window_s
        self._wall = wall_clock
        self._clock = clock
        self._routes: dict[tuple[str, str], Route] = {}
        self._hits: dict[tuple[str, str], SlidingWindow] = {}
        self._by_key: dict[str, Account] = {}
        self.requests: list[dict[str, Any]] = []  # the private request log (GET /sim/requests)

    # ---- registration -------------------------------------------------------------------
    def add(
        self,
        method: str,
        path: str,
        handler: Endpoint,
        *,
        private: bool,
        rate_limit: tuple[int, float] | None = None,
    ) -> None:
        """Serve ``method path`` with ``handler``; replaces an earlier registration."""
        self._routes[(method.upper(), path)] = Route(handler, private, rate_limit)

    def paths(self) -> set[str]:
        return {p for _, p in self._routes}

    def knows(self, path: str) -> bool:
        return any(p == path for _, p in self._routes)

    # ---- answering ----------------------------------------------------------------------
    def handle(self, req: RestRequest) -> RestResponse:
        """Answer one request (unknown path: 404; known path, wrong method: 405)."""
        route = self._routes.get((req.method.upper(), req.path))
        if route is None:
            if self.knows(req.path):
                return RestResponse(405, {"code": "405", "msg": "Method Not Allowed"})
            return not_found()
        if not route.private:
            try:
                return envelope("0", "", route.handler(Call(req, self.exchange, self.publisher)))
            except Reject as rej:
                return envelope(rej.code, rej.msg, rej.data)
        return self._private(route, req)

    def _private(self, route: Route, req: RestRequest) -> RestResponse:
        entry: dict[str, Any] = {
            "account": None,
            "method": req.method,
            "path": req.raw_path,
            "body": req.body,
            "code": "0",
            "time": self._wall(),
            # the signature's timestamp as sent: with "time", how old a request was when it
            # was handled (OKX's 50102 window; the benchmarks split a backlog with it)
            "signed": req.header("OK-ACCESS-TIMESTAMP"),
            "simulated": req.header("x-simulated-trading") == "1",
        }
        self.requests.append(entry)
        hang: Hang | None = None
        try:
            acct = self.authenticate(req)
            entry["account"] = acct.name
            gateway = self.faults.take_rest(("rest_gateway",), acct.name, req.path)
            if gateway is not None:
                entry["code"] = str(gateway.status)
                if gateway.applied:
                    with contextlib.suppress(Reject):
                        route.handler(Call(req, self.exchange, self.publisher, acct))
                return gateway_error(gateway.status, gateway.body_kind)
            self._rate_check(acct, req.path, route.rate_limit)
            err = self.faults.take_rest(("rest_error",), acct.name, req.path)
            if err is not None:
                raise Reject(err.code, status=err.http_status)
            delay = self.faults.take_rest(("rest_delay",), acct.name, req.path)
            if delay is not None:
                hang = Hang(delay.delay_s)
            call = Call(req, self.exchange, self.publisher, acct)
            response = envelope("0", "", route.handler(call))
        except Reject as rej:
            entry["code"] = rej.code
            response = envelope(rej.code, rej.msg, rej.data, rej.status)
        response.hang = hang
        return response

    def authenticate(self, req: RestRequest) -> Account:
        """OKX's header checks, in OKX's order of codes (DOC: REST authentication)."""
        key, sign = req.header("OK-ACCESS-KEY"), req.header("OK-ACCESS-SIGN")
        ts, phrase = req.header("OK-ACCESS-TIMESTAMP"), req.header("OK-ACCESS-PASSPHRASE")
        for value, code in ((key, "50103"), (sign, "50106"), (ts, "50107"), (phrase, "50104")):
            if not value:
                raise Reject(code)
        try:
            sent = parse_iso_timestamp(ts)
        except ValueError:
            raise Reject("50112") from None
        if abs(self._wall() - sent) > self.timestamp_window_s:
            raise Reject("50102")
        acct = self._account_by_key(key)
        if acct is None:
            raise Reject("50111")
        if (req.header("x-simulated-trading") == "1") != self.demo_keys:
            raise Reject("50101")
        if not secrets.compare_digest(phrase, acct.passphrase):
            raise Reject("50105")
        expected = rest_sign(acct.secret, ts, req.method, req.raw_path, req.body)
        if not secrets.compare_digest(sign, expected):
            raise Reject("50113")
        return acct

    def _account_by_key(self, key: str) -> Account | None:
        acct = self._by_key.get(key)
        if acct is None and len(self._by_key) != len(self.exchange.accounts):
            self._by_key = {a.api_key: a for a in self.exchange.accounts.values()}
            acct = self._by_key.get(key)
        return acct

    def _rate_check(self, acct: Account, path: str, limit: tuple[int, float] | None) -> None:
        if not self.rate_limits or limit is None:
            return
        window = self._hits.get((acct.name, path))
        if window is None:
            window = self._hits[(acct.name, path)] = SlidingWindow(*limit, clock=self._clock)
        if not window.try_acquire():
            raise Reject("50011")
