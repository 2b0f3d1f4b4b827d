"""Sans-I/O state machine for one OKX private WebSocket connection (``positions`` and, when
maintenances are detected from fills, ``orders``; SWAP).

It turns text frames into typed events and builds the frames to send; it does no I/O, so the
whole protocol is unit-tested with OKX's captured payloads, and the asyncio driver
(:mod:`reactor.okx.ws`) stays thin. ``receive`` never raises: exchange input is untrusted and
a bad frame must never take the process down. It runs on every push, so it parses JSON once
and uses the hand-written :func:`parse_position`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from reactor.limits import InputRejected, loads_limited
from reactor.okx.credentials import Credentials
from reactor.okx.errors import WS_AUTH_CODES, WS_CLOCK_CODES, ErrorClass, Kind, classify_ws
from reactor.okx.models import PayloadError, Position, parse_position
from reactor.okx.orders import ORDERS_CHANNEL, OrderUpdate, orders_subscribe_arg, parse_orders_push
from reactor.okx.signing import ws_login_sign

PREVIEW_CHARS = 200
# The transport refuses frames over 16 MiB (ws.MAX_FRAME_BYTES); the parser checks again, and
# checks depth, so a frame can never raise RecursionError (reactor/limits.py).
MAX_FRAME_CHARS = 16 * 1024 * 1024
CHANNEL = "positions"
INST_TYPE = "SWAP"

State = Literal["new", "logging_in", "logged_in", "subscribed", "failed"]


def preview(text: str) -> str:
    """The first ~200 characters of untrusted input: enough to debug, never a whole frame."""
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


@dataclass(frozen=True, slots=True)
class InvalidItem:
    reason: str
    preview: str


@dataclass(frozen=True, slots=True)
class LoginOk:
    conn_id: str = ""


@dataclass(frozen=True, slots=True)
class LoginFailed:
    code: str
    msg: str

    @property
    def error_class(self) -> ErrorClass:
        """The code's one meaning (errors.py), as on every REST endpoint."""
        return classify_ws(self.code)

    @property
    def is_auth(self) -> bool:
        """Wrong or missing key, or no permission: retrying cannot help (unlike a clock)."""
        return self.error_class.stops_account

    @property
    def is_timestamp(self) -> bool:
        return self.error_class.kind is Kind.CLOCK


@dataclass(frozen=True, slots=True)
class Subscribed:
    conn_id: str = ""


@dataclass(frozen=True, slots=True)
class SubscribeFailed:
    code: str
    msg: str


@dataclass(frozen=True, slots=True)
class SnapshotPage:
    positions: list[Position]
    cur_page: int
    last_page: bool
    invalid: list[InvalidItem]


@dataclass(frozen=True, slots=True)
class Update:
    positions: list[Position]
    invalid: list[InvalidItem]


@dataclass(frozen=True, slots=True)
class OrdersUpdate:
    """An ``orders`` push (subscribed only when maintenances are detected from fills)."""

    orders: list[OrderUpdate]
    invalid: list[InvalidItem]


@dataclass(frozen=True, slots=True)
class Pong:
    pass


@dataclass(frozen=True, slots=True)
class Notice:
    code: str
    msg: str


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ``event: error`` not tied to a pending login or subscribe."""

    code: str
    msg: str


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str


@dataclass(frozen=True, slots=True)
class InvalidFrame:
    reason: str
    preview: str


WsEvent = (
    LoginOk
    | LoginFailed
    | Subscribed
    | SubscribeFailed
    | SnapshotPage
    | Update
    | OrdersUpdate
    | Pong
    | Notice
    | ServerError
    | Ignored
    | InvalidFrame
)

_PONG: list[WsEvent] = [Pong()]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


class PrivateChannelProtocol:
    """One connection's lifecycle: login -> subscribe ``positions`` -> pushes.

    A new instance is used per connection, so no state leaks across reconnects.
    """

    def __init__(
        self,
        account: str,
        credentials: Credentials,
        *,
        clock: Callable[[], float] = time.time,
        orders: bool = False,
    ) -> None:
        self.account = account
        self._credentials = credentials
        self._clock = clock
        self.orders = orders  # also subscribe ``orders`` (SWAP) on this connection
        self.state: State = "new"
        self._subscribe_pending = False
        self.orders_subscribed = False
        # The first push after the subscribe ack is the subscribe snapshot. OKX clusters in
        # 2024 sent it without eventType/curPage/lastPage (CCXT-21565), so a push with no
        # eventType in that place is taken as a one-page snapshot.
        self._first_push_pending = False

    def __repr__(self) -> str:
        return f"PrivateChannelProtocol(account={self.account!r}, state={self.state!r})"

    # -- frames to send -------------------------------------------------------------------

    def login_frame(self) -> str:
        """The login request. Contains the passphrase and a signature: never log it."""
        ts = str(int(self._clock()))
        creds = self._credentials
        self.state = "logging_in"
        return json.dumps(
            {
                "op": "login",
                "args": [
                    {
                        "apiKey": creds.api_key,
                        "passphrase": creds.passphrase,
                        "timestamp": ts,
                        "sign": ws_login_sign(creds.secret_key, ts),
                    }
                ],
            },
            separators=(",", ":"),
        )

    def subscribe_frame(self) -> str:
        """``positions`` (and ``orders`` when asked) in one request: one of the 480 per hour."""
        self._subscribe_pending = True
        args: list[dict[str, str]] = [{"channel": CHANNEL, "instType": INST_TYPE}]
        if self.orders:
            args.append(orders_subscribe_arg(INST_TYPE))
        return json.dumps({"op": "subscribe", "args": args}, separators=(",", ":"))

    @staticmethod
    def ping_frame() -> str:
        return "ping"

    # -- frames received ------------------------------------------------------------------

    def receive(self, text: str) -> list[WsEvent]:
        if text == "pong":
            return _PONG
        try:
            return self._receive(text)
        except Exception as exc:  # last line of defence: exchange input never kills us
            return [InvalidFrame(f"unhandled: {type(exc).__name__}", preview(_text(text)))]

    def _receive(self, text: str) -> list[WsEvent]:
        if not isinstance(text, str):
            return [InvalidFrame("not a text frame", preview(repr(text)))]
        try:
            msg = loads_limited(text, max_bytes=MAX_FRAME_CHARS, what="frame")
        except InputRejected as exc:
            reason = "not JSON" if exc.reason in ("not JSON", "not UTF-8") else str(exc)
            return [InvalidFrame(reason, preview(text))]
        if not isinstance(msg, dict):
            return [InvalidFrame(f"not an object: {type(msg).__name__}", preview(text))]
        event = msg.get("event")
        if event is not None:
            return [self._on_event(_text(event), msg, text)]
        if "data" in msg and "arg" in msg:
            return [self._on_push(msg, text)]
        return [InvalidFrame("neither event nor push", preview(text))]

    def _on_event(self, event: str, msg: dict[str, Any], text: str) -> WsEvent:
        code = _text(msg.get("code", ""))
        err_msg = _text(msg.get("msg", ""))
        conn_id = _text(msg.get("connId", ""))
        if event == "login":
            if code in ("0", ""):
                self.state = "logged_in"
                return LoginOk(conn_id)
            self.state = "failed"
            return LoginFailed(code, err_msg)
        if event == "subscribe":
            arg = msg.get("arg")
            if isinstance(arg, dict) and arg.get("channel") == CHANNEL:
                self._subscribe_pending = self.orders and not self.orders_subscribed
                self._first_push_pending = True
                self.state = "subscribed"
                return Subscribed(conn_id)
            if self.orders and isinstance(arg, dict) and arg.get("channel") == ORDERS_CHANNEL:
                self.orders_subscribed = True
                self._subscribe_pending = self.state != "subscribed"
                return Ignored("orders subscribed")
            return Ignored(f"subscribe ack for another channel: {preview(str(arg))}")
        if event == "error":
            if self.state == "logging_in" or code in WS_AUTH_CODES or code in WS_CLOCK_CODES:
                self.state = "failed"
                return LoginFailed(code, err_msg)
            if self._subscribe_pending:
                self._subscribe_pending = False
                return SubscribeFailed(code, err_msg)
            return ServerError(code, err_msg)
        if event == "notice":
            return Notice(code, err_msg)
        if event in ("channel-conn-count", "channel-conn-count-error", "unsubscribe"):
            return Ignored(event)
        return InvalidFrame(f"unknown event: {event[:40]}", preview(text))

    def _on_push(self, msg: dict[str, Any], text: str) -> WsEvent:
        arg = msg["arg"]
        if not isinstance(arg, dict):
            return InvalidFrame("arg is not an object", preview(text))
        channel = arg.get("channel")
        if channel == ORDERS_CHANNEL and self.orders:
            return self._on_orders(msg, text)
        if channel != CHANNEL:
            return InvalidFrame(f"unknown channel: {_text(channel)[:40]}", preview(text))
        data = msg["data"]
        if not isinstance(data, list):
            return InvalidFrame("data is not a list", preview(text))
        first, self._first_push_pending = self._first_push_pending, False
        event_type = msg.get("eventType")
        if event_type is None:
            event_type = "snapshot" if first else "event_update"
        if event_type not in ("snapshot", "event_update"):
            return InvalidFrame(f"unknown eventType: {_text(event_type)[:40]}", preview(text))
        positions: list[Position] = []
        invalid: list[InvalidItem] = []
        account = self.account
        for raw in data:
            try:
                positions.append(parse_position(account, raw))
            except PayloadError as exc:
                invalid.append(InvalidItem(str(exc), _item_preview(raw)))
        if event_type == "event_update":
            return Update(positions, invalid)
        cur_page = _page(msg.get("curPage", 1))
        last_page = _flag(msg.get("lastPage", True))
        if cur_page is None or last_page is None:
            return InvalidFrame("bad curPage/lastPage", preview(text))
        return SnapshotPage(positions, cur_page, last_page, invalid)

    def _on_orders(self, msg: dict[str, Any], text: str) -> WsEvent:
        try:
            push = parse_orders_push(self.account, msg)
        except PayloadError as exc:
            return InvalidFrame(str(exc), preview(text))
        invalid = [InvalidItem(i.reason, i.preview) for i in push.invalid]
        return OrdersUpdate(push.orders, invalid)


def _item_preview(raw: Any) -> str:
    try:
        return preview(json.dumps(raw, separators=(",", ":")))
    except (TypeError, ValueError):
        return preview(repr(raw))


def _page(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value in ("true", "True"):
        return True
    if value in ("false", "False"):
        return False
    return None
