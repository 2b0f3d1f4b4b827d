"""The simulator's OKX private WebSocket, sans-I/O: the server-side mirror of
:mod:`reactor.okx.ws_protocol`.

A :class:`WsSession` is one connection: feed it client text with :meth:`WsSession.receive`,
take what to send with :meth:`WsSession.poll` (text frames and at most one :class:`Close`), and
wake it again at :meth:`WsSession.due`. A :class:`WsHub` holds the sessions and the registered
channels and routes published records to the subscribed sessions. The aiohttp glue in
:mod:`reactor.sim.server` only moves frames and sleeps until ``due``.

Adding a channel (``orders``, say)::

    hub.add_channel(Channel("orders", inst_types=frozenset({"SWAP", "ANY"})))
    hub.publish("orders", account_name, [order_record])     # -> event pushes

A channel with ``snapshot`` set sends the account's records at subscribe (and, with
``regular=True``, as regular snapshots); one without sends events only.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reactor.log import get_logger
from reactor.okx.signing import ws_login_sign
from reactor.sim.exchange import Account, Change, Exchange
from reactor.sim.faults import FaultPlan

log = get_logger(__name__)

TIMESTAMP_WINDOW_S = 30.0
POSITIONS = "positions"
SUB_KEYS = ("channel", "instType", "instFamily", "instId")


@dataclass(frozen=True)
class Close:
    """Close the connection with this code and reason (the last output of a session)."""

    code: int
    reason: str


Out = str | Close


def matches_instrument(sub: Mapping[str, str], record: Mapping[str, Any]) -> bool:
    """Does a record belong to a subscription's ``instType``/``instFamily``/``instId``?"""
    if sub.get("instType") not in ("SWAP", "ANY"):
        return False
    inst_id = sub.get("instId")
    family = sub.get("instFamily")
    if inst_id and record.get("instId") != inst_id:
        return False
    return not family or str(record.get("instId", "")).startswith(family + "-SWAP")


@dataclass(frozen=True)
class Channel:
    """A private channel the simulator serves.

    ``snapshot(account)`` returns the records a subscribe snapshot (and a regular snapshot, when
    ``regular``) carries; None means the channel sends events only.
    """

    name: str
    snapshot: Callable[[str], list[dict[str, Any]]] | None = None
    regular: bool = False
    matches: Callable[[Mapping[str, str], Mapping[str, Any]], bool] = matches_instrument


@dataclass
class WsOptions:
    """Transport settings of the simulator's WebSocket."""

    idle_timeout_s: float = 30.0
    page_size: int = 100


@dataclass
class Subscription:
    arg: dict[str, str]  # channel, instType, instFamily, instId as the client sent them
    channel: Channel
    extra: dict[str, str] = field(default_factory=dict)


class WsSession:
    """One private WebSocket connection."""

    def __init__(self, hub: WsHub, conn_id: str, now: float) -> None:
        self.hub = hub
        self.conn_id = conn_id
        self.account: Account | None = None
        self.subs: list[Subscription] = []
        self._out: list[Out] = []
        self._closed = False
        self.last_rx = now

    # ---- input -----------------------------------------------------------------------
    def note_rx(self, now: float) -> None:
        """Any frame from the client (text, binary, protocol ping) arrived."""
        self.last_rx = now

    def receive(self, text: str, now: float) -> None:
        """One text frame from the client."""
        self.note_rx(now)
        if text == "ping":
            if not self._silent():
                self._send("pong")
            return
        try:
            req = json.loads(text)
        except ValueError:
            self._error("60012", f"Illegal request: {text[:100]}")
            return
        op = req.get("op") if isinstance(req, dict) else None
        args = req.get("args") if isinstance(req, dict) else None
        if op == "login":
            self._login(args)
        elif op in ("subscribe", "unsubscribe") and isinstance(args, list) and args:
            self._subscribe(str(op), args, text)
        else:
            self._error("60012", f"Illegal request: {text[:100]}")

    def close(self, code: int, reason: str) -> None:
        """Queue a close (admin faults, shutdown)."""
        if not self._closed:
            self._closed = True
            self._out.append(Close(code, reason))
            self.hub.wake(self)

    # ---- output ----------------------------------------------------------------------
    def poll(self, now: float) -> list[Out]:
        """Everything to send now, in order; time-driven closes included."""
        if not self._closed and now - self.last_rx >= self.hub.options.idle_timeout_s:
            self._closed = True
            self._out.append(Close(4004, "No data received in 30s"))
        out, self._out = self._out, []
        return out

    def due(self) -> float | None:
        """When :meth:`poll` must run next even if nothing arrives (None: only on input)."""
        if self._closed:
            return None
        return self.last_rx + self.hub.options.idle_timeout_s

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- internals -------------------------------------------------------------------
    def _silent(self) -> bool:
        return self.account is not None and self.hub.faults.silent(self.account.name)

    def _send(self, msg: dict[str, Any] | str) -> None:
        if self._closed:
            return
        self._out.append(msg if isinstance(msg, str) else dumps(msg))

    def send_raw(self, frame: str) -> None:
        """Queue a frame as is (the ``raw_frame`` fault)."""
        self._send(frame)
        self.hub.wake(self)

    def _error(self, code: str, msg: str) -> None:
        self._send({"event": "error", "code": code, "msg": msg, "connId": self.conn_id})

    def _login(self, args: Any) -> None:
        arg = args[0] if isinstance(args, list) and len(args) == 1 else None
        fields = ("apiKey", "passphrase", "timestamp", "sign")
        if not isinstance(arg, dict) or any(f not in arg for f in fields):
            self._error("60009", "Login failed.")
            return
        key, phrase, ts, sign = (arg[f] for f in fields)
        if isinstance(ts, bool) or not isinstance(ts, str | int):
            self._error("60009", "Login failed.")
            return
        ts_text = str(ts)
        acct = self.hub.account_by_key(key) if isinstance(key, str) else None
        try:
            skew = abs(self.hub.wall_clock() - float(ts_text))
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
            self.account = acct
            self.hub.bind(self)
            self._send({"event": "login", "code": "0", "msg": "", "connId": self.conn_id})
            log.info("sim.ws.login", account=acct.name, connId=self.conn_id, code="0")
            return
        log.info(
            "sim.ws.login", account=acct.name if acct else None, connId=self.conn_id, code=code
        )
        self._error(code, msg)

    def _subscribe(self, op: str, args: list[Any], text: str) -> None:
        if self.account is None:
            self._error("60011", "Please log in")
            return
        for arg in args:
            if (
                not isinstance(arg, dict)
                or arg.get("channel") not in self.hub.channels
                or not isinstance(arg.get("instType"), str)
                or not all(isinstance(v, str) for v in arg.values())
            ):
                self._error("60012", f"Illegal request: {text[:100]}")
                return
        for arg in args:
            sub_arg = {k: v for k, v in arg.items() if k in SUB_KEYS}
            channel = self.hub.channels[sub_arg["channel"]]
            if op == "unsubscribe":
                self.subs = [s for s in self.subs if s.arg != sub_arg]
                self._send({"event": "unsubscribe", "arg": sub_arg, "connId": self.conn_id})
                continue
            sub = next((s for s in self.subs if s.arg == sub_arg), None)
            if sub is None:
                sub = Subscription(sub_arg, channel)
                self.subs.append(sub)
            self._send({"event": "subscribe", "arg": sub_arg, "connId": self.conn_id})
            self._snapshot(sub)

    def _snapshot(self, sub: Subscription) -> None:
        assert self.account is not None
        if sub.channel.snapshot is None or self._silent():
            return
        data = [
            r for r in sub.channel.snapshot(self.account.name) if sub.channel.matches(sub.arg, r)
        ]
        size = self.hub.options.page_size
        pages = [data[i : i + size] for i in range(0, len(data), size)] or [[]]
        for n, page in enumerate(pages, start=1):
            msg = self._push(sub, "snapshot", page)
            msg["curPage"] = n
            msg["lastPage"] = n == len(pages)
            self._send(msg)

    def _push(self, sub: Subscription, event: str, data: list[Any]) -> dict[str, Any]:
        assert self.account is not None
        return {"arg": {**sub.arg, "uid": self.account.uid}, "eventType": event, "data": data}

    def deliver(self, channel: str, records: list[dict[str, Any]]) -> bool:
        """Event records of this session's account on ``channel``; True if anything queued."""
        if self.account is None or self._silent():
            return False
        queued = False
        for sub in self.subs:
            if sub.channel.name != channel:
                continue
            data = [r for r in records if sub.channel.matches(sub.arg, r)]
            if data:
                self._send(self._push(sub, "event_update", data))
                queued = True
        return queued


class WsHub:
    """Every open session and the channels they can subscribe to."""

    def __init__(
        self,
        exchange: Exchange,
        faults: FaultPlan,
        options: WsOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.exchange = exchange
        self.faults = faults
        self.options = options or WsOptions()
        self.clock = clock
        self.wall_clock = wall_clock
        self.channels: dict[str, Channel] = {}
        self.sessions: set[WsSession] = set()
        # Set by the transport: called when a session has output ready before its ``due``.
        self.on_ready: Callable[[WsSession], None] = lambda session: None
        # Called with every batch of position changes before it is pushed (benchmarks track
        # time out of band with it).
        self.on_changes: Callable[[list[Change]], None] | None = None
        self._by_key: dict[str, Account] = {}
        self._by_account: dict[str, set[WsSession]] = {}
        self.add_channel(Channel(POSITIONS, snapshot=exchange.positions, regular=True))

    def add_channel(self, channel: Channel) -> None:
        self.channels[channel.name] = channel

    def open(self, conn_id: str | None = None) -> WsSession:
        session = WsSession(self, conn_id or secrets.token_hex(4), self.clock())
        self.sessions.add(session)
        return session

    def discard(self, session: WsSession) -> None:
        self.sessions.discard(session)
        if session.account is not None:
            self._by_account.get(session.account.name, set()).discard(session)

    def bind(self, session: WsSession) -> None:
        """A session logged in: index it by account for :meth:`publish`."""
        if session in self.sessions and session.account is not None:
            self._by_account.setdefault(session.account.name, set()).add(session)

    def wake(self, session: WsSession) -> None:
        self.on_ready(session)

    def sessions_of(self, account: str) -> list[WsSession]:
        return list(self._by_account.get(account, ()))

    def publish(self, channel: str, account: str, records: Iterable[dict[str, Any]]) -> None:
        """Event records of ``account`` on ``channel``, to every subscribed session."""
        batch = list(records)
        if not batch:
            return
        for session in self.sessions_of(account):
            if session.deliver(channel, batch):
                self.wake(session)

    # ---- the rest_api.Publisher interface ------------------------------------------------
    def changes(self, changes: list[Change]) -> None:
        """Position changes from the exchange: to the ``positions`` channel, per account."""
        if self.on_changes is not None:
            self.on_changes(changes)
        by_account: dict[str, list[dict[str, Any]]] = {}
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
        for account, records in by_account.items():
            self.publish(POSITIONS, account, records)

    def records(self, channel: str, account: str, records: list[dict[str, Any]]) -> None:
        self.publish(channel, account, records)

    def account_by_key(self, key: str) -> Account | None:
        acct = self._by_key.get(key)
        if acct is None and len(self._by_key) != len(self.exchange.accounts):
            self._by_key = {a.api_key: a for a in self.exchange.accounts.values()}
            acct = self._by_key.get(key)
        return acct


def dumps(msg: Any) -> str:
    return json.dumps(msg, separators=(",", ":"))
