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
from reactor.okx import errors
from reactor.okx.signing import ws_login_sign
from reactor.sim.exchange import Account, Change, Exchange
from reactor.sim.faults import FaultPlan
from reactor.sim.ws_limits import OpsWindow, WsLimits

log = get_logger(__name__)

TIMESTAMP_WINDOW_S = 30.0
POSITIONS = "positions"
SUB_KEYS = ("channel", "instType", "instFamily", "instId")


@dataclass(frozen=True)
class Close:
    """Close the connection with this code and reason (the last output of a session);
    ``abrupt``: cut the TCP connection without a close frame (the client sees 1006/EOF)."""

    code: int
    reason: str
    abrupt: bool = False


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

    ``snapshot(account)`` returns the records a subscribe snapshot carries (and a regular
    snapshot, when ``regular``); None means the channel sends events only. ``dedupe`` names the
    record field under which events aggregated in one window collapse to the latest record;
    ``push_time`` the field stamped with the send time; ``conn_count`` sends OKX's
    ``channel-conn-count`` after a subscribe.
    """

    name: str
    snapshot: Callable[[str], list[dict[str, Any]]] | None = None
    regular: bool = False
    matches: Callable[[Mapping[str, str], Mapping[str, Any]], bool] = matches_instrument
    dedupe: str | None = None
    push_time: str | None = None
    conn_count: bool = False
    paged: bool = False  # eventType/curPage/lastPage on pushes (positions)


@dataclass
class WsOptions:
    """Transport settings of the simulator's WebSocket (see :class:`~reactor.sim.scenario.
    WebSocketSpec` for what each one stands for)."""

    idle_timeout_s: float = 30.0
    page_size: int = 100
    # Multiplies every regular-snapshot interval and the event window: tests run at 0.1.
    time_scale: float = 1.0
    # OKX clusters in 2024 sent no eventType/curPage/lastPage (CCXT-21565).
    legacy_push_fields: bool = False
    # Close the connection with 4001 after a failed login (DOC-WS close codes; likely).
    close_on_login_failure: bool = True
    # DOC-WS request and connection-count limits (reactor/sim/ws_limits.py).
    limits: WsLimits = field(default_factory=WsLimits)
    # False (benchmarks): no per-connection request window.
    rate_limits: bool = True


# DOC-POS: "updateInterval": "0" = events only; "2000"/"3000"/"4000" = every N ms; absent or
# any other value = "around per 5 seconds".
_INTERVALS_MS = {"0": None, "2000": 2000, "3000": 3000, "4000": 4000}
DEFAULT_INTERVAL_MS = 5000
# DOC-POS: event pushes are aggregated over about 50 ms.
EVENT_WINDOW_S = 0.05


def regular_interval_s(extra_params: str | None, scale: float = 1.0) -> float | None:
    """Seconds between regular snapshots for a subscription's ``extraParams`` (None: events
    only)."""
    value: Any = None
    if extra_params:
        try:
            parsed = json.loads(extra_params)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            value = parsed.get("updateInterval")
    ms = (
        _INTERVALS_MS.get(value, DEFAULT_INTERVAL_MS)
        if isinstance(value, str)
        else DEFAULT_INTERVAL_MS
    )
    return None if ms is None else ms / 1000 * scale


@dataclass(eq=False)
class Subscription:
    arg: dict[str, str]  # channel, instType, instFamily, instId as the client sent them
    channel: Channel
    interval_s: float | None = None  # regular snapshots (None: events only)
    next_regular: float | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    # Event pushes held back by the ``ws_channel_delay`` fault: (send at, records).
    held: list[tuple[float, list[dict[str, Any]]]] = field(default_factory=list)


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
        self.last_tx = now
        self._unsubscribed_since: float | None = now  # no subscription since then
        self._flush_at: float | None = None
        self._ops = OpsWindow(hub.options.limits.ops_per_hour)
        # A close scheduled by the ``ws_notice`` fault (a service upgrade): (when, abrupt).
        self._close_at: tuple[float, bool] | None = None
        # Pings swallowed by a ``ws_silent`` fault: a client that sent one is bound to time out
        # waiting for its pong and reconnect, so a test can tell the fault still has effects.
        self.pings_unanswered = 0

    # ---- input -----------------------------------------------------------------------
    def note_rx(self, now: float) -> None:
        """Any frame from the client (text, binary, protocol ping) arrived."""
        self.last_rx = now

    def note_tx(self, now: float) -> None:
        """A frame went to the client outside :meth:`poll` (a protocol pong)."""
        self.last_tx = now

    def receive(self, text: str, now: float) -> None:
        """One text frame from the client."""
        self.note_rx(now)
        if text == "ping":
            if self._silent():
                self.pings_unanswered += 1
            else:
                self._send("pong")
            return
        try:
            req = json.loads(text)
        except ValueError:
            self._error("60012", f"Illegal request: {text[:100]}")
            return
        op = req.get("op") if isinstance(req, dict) else None
        args = req.get("args") if isinstance(req, dict) else None
        req_id = req.get("id") if isinstance(req, dict) else None
        rid = req_id if isinstance(req_id, str) and req_id else None
        if op in ("login", "subscribe", "unsubscribe") and not self._op_allowed(now):
            # DOC-WS: 480 login/subscribe/unsubscribe requests per connection per hour
            self._error("60014", "Requests too frequent.", rid)
        elif op == "login":
            self._login(args)
        elif op in ("subscribe", "unsubscribe") and isinstance(args, list) and args:
            self._subscribe(str(op), args, text, rid, now)
        else:
            self._error("60012", f"Illegal request: {text[:100]}", rid)

    def close(self, code: int, reason: str, *, abrupt: bool = False) -> None:
        """Queue a close (admin faults, shutdown); ``abrupt``: no close frame."""
        if not self._closed:
            self._closed = True
            self._out.append(Close(code, reason, abrupt))
            self.hub.wake(self)

    def schedule_close(self, at: float, *, abrupt: bool) -> None:
        """Close at ``at`` (hub clock): OKX closes a connection about 60 s after its 64008
        notice (DOC-WS), live without a close frame (ISS-TG90; docs/spec/okx-fidelity.md
        §11.2.4)."""
        self._close_at = (at, abrupt)
        self.hub.wake(self)

    # ---- output ----------------------------------------------------------------------
    def poll(self, now: float) -> list[Out]:
        """Everything to send now, in order: replies, then event pushes, then regular
        snapshots (DOC-POS: "the system will send the event push first"), then a close."""
        if not self._closed:
            if self._flush_at is not None and now >= self._flush_at:
                self._flush_events(now)
            for sub in self.subs:
                while sub.held and sub.held[0][0] <= now:
                    _, records = sub.held.pop(0)
                    self._send(self._push(sub, "event_update", records))
            for sub in self.subs:
                if sub.next_regular is not None and now >= sub.next_regular:
                    assert sub.interval_s is not None
                    # Skip missed beats instead of bursting after a stall.
                    while sub.next_regular <= now:
                        sub.next_regular += sub.interval_s
                    self._snapshot(sub, "snapshot")
            if self._close_at is not None and now >= self._close_at[0]:
                abrupt = self._close_at[1]
                self._closed = True
                if abrupt:
                    self._out.append(Close(1006, "service upgrade", abrupt=True))
                else:
                    self._out.append(Close(1001, "service upgrade"))
            reason = None if self._closed else self._idle_reason(now)
            if reason is not None:
                self._closed = True
                self._out.append(Close(4004, reason))
        out, self._out = self._out, []
        if out:
            self.last_tx = now
        return out

    def due(self) -> float | None:
        """When :meth:`poll` must run next even if nothing arrives (None: only on input)."""
        if self._closed:
            return None
        idle = self.hub.options.idle_timeout_s
        times = [max(self.last_rx, self.last_tx) + idle]
        if self._unsubscribed_since is not None:
            times.append(self._unsubscribed_since + idle)
        quiet = self._quiet_limit()
        if quiet is not None:
            times.append(self.last_rx + quiet)
        if self._flush_at is not None:
            times.append(self._flush_at)
        if self._close_at is not None:
            times.append(self._close_at[0])
        times.extend(s.next_regular for s in self.subs if s.next_regular is not None)
        times.extend(s.held[0][0] for s in self.subs if s.held)
        return min(times)

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- internals -------------------------------------------------------------------
    def _idle_reason(self, now: float) -> str | None:
        """DOC-WS: "The connection will break automatically if the subscription is not
        established or data has not been pushed for more than 30 seconds" (docs/spec/okx-fidelity.md
        §2): frames either way count. The ``ws_quiet_close`` fault adds a stricter rule."""
        idle = self.hub.options.idle_timeout_s
        if now - max(self.last_rx, self.last_tx) >= idle:
            return "No data received in 30s"
        if self._unsubscribed_since is not None and now - self._unsubscribed_since >= idle:
            return "No data received in 30s"
        quiet = self._quiet_limit()
        if quiet is not None and now - self.last_rx >= quiet:
            return "No data received in 30s"
        return None

    def _op_allowed(self, now: float) -> bool:
        return not self.hub.options.rate_limits or self._ops.allow(now)

    def _quiet_limit(self) -> float | None:
        if self.account is None:
            return None
        return self.hub.faults.quiet_close_s(self.account.name)

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

    def _error(self, code: str, msg: str, rid: str | None = None) -> None:
        head: dict[str, Any] = {"id": rid} if rid else {}
        self._send({**head, "event": "error", "code": code, "msg": msg, "connId": self.conn_id})

    def _login(self, args: Any) -> None:
        if self.account is not None:
            # DOC-WSERR 60031 (docs/spec/okx-fidelity.md §11.2.7); the first login stays (no close
            # listed).
            self._error(
                "60031", "The WebSocket endpoint does not allow multiple or repeated logins."
            )
            return
        code, msg = self._check_login(args)
        if code == "0":
            return
        self._error(code, msg)
        if self.hub.options.close_on_login_failure:
            # DOC-WS close-code table: 4001 "Login Failed" (docs/spec/okx-fidelity.md §7.7, likely).
            self._closed = True
            self._out.append(Close(4001, "Login Failed"))

    def _check_login(self, args: Any) -> tuple[str, str]:
        arg = args[0] if isinstance(args, list) and len(args) == 1 else None
        fields = ("apiKey", "passphrase", "timestamp", "sign")
        if not isinstance(arg, dict) or any(f not in arg for f in fields):
            return "60009", "Login failed."
        key, phrase, ts, sign = (arg[f] for f in fields)
        if isinstance(ts, bool) or not isinstance(ts, str | int):
            return "60009", "Login failed."
        ts_text = str(ts)
        acct = self.hub.account_by_key(key) if isinstance(key, str) else None
        try:
            skew = abs(self.hub.wall_clock() - float(ts_text))
        except ValueError:
            skew = math.inf
        if math.isnan(skew):
            skew = math.inf
        forced = self.hub.faults.take_login_error(acct.name) if acct is not None else None
        if acct is None:
            code, msg = "60005", "Invalid OK-ACCESS-KEY"
        elif forced is not None:  # the ws_login_error fault
            code, msg = forced, errors.message(forced)
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
            return "0", ""
        log.info(
            "sim.ws.login", account=acct.name if acct else None, connId=self.conn_id, code=code
        )
        return code, msg

    def _subscribe(self, op: str, args: list[Any], text: str, rid: str | None, now: float) -> None:
        if self.account is None:
            self._error("60011", "Please log in", rid)
            return
        for arg in args:
            if (
                not isinstance(arg, dict)
                or arg.get("channel") not in self.hub.channels
                or not isinstance(arg.get("instType"), str)
                or not all(isinstance(v, str) for v in arg.values())
            ):
                self._error("60012", f"Illegal request: {text[:100]}", rid)
                return
        head: dict[str, Any] = {"id": rid} if rid else {}
        for arg in args:
            # The ack's arg leaves extraParams out (ccxt PR #23704 demo capture, 2024-09-13).
            sub_arg = {k: v for k, v in arg.items() if k in SUB_KEYS}
            channel = self.hub.channels[sub_arg["channel"]]
            if op == "unsubscribe":
                self.subs = [s for s in self.subs if s.arg != sub_arg]
                if not self.subs:
                    self._unsubscribed_since = now
                self._send({**head, "event": "unsubscribe", "arg": sub_arg, "connId": self.conn_id})
                continue
            had_channel = any(s.channel.name == channel.name for s in self.subs)
            sub = next((s for s in self.subs if s.arg == sub_arg), None)
            if sub is None:
                sub = Subscription(sub_arg, channel)
                self.subs.append(sub)
            if not had_channel and self._over_channel_limit(sub, head, now):
                continue
            self._unsubscribed_since = None
            if channel.regular:
                sub.interval_s = regular_interval_s(
                    arg.get("extraParams"), self.hub.options.time_scale
                )
                sub.next_regular = None if sub.interval_s is None else now + sub.interval_s
            # DOC-POS: the ack echoes "id" and "arg"; CCXT-21565: then channel-conn-count,
            # then the first snapshot.
            self._send({**head, "event": "subscribe", "arg": sub_arg, "connId": self.conn_id})
            if channel.conn_count:
                count = self.hub.connection_count(self.account.name, channel.name)
                self._send(
                    {
                        "event": "channel-conn-count",
                        "channel": channel.name,
                        "connCount": str(count),
                        "connId": self.conn_id,
                    }
                )
            self._snapshot(sub, "snapshot")

    def _over_channel_limit(self, sub: Subscription, head: dict[str, Any], now: float) -> bool:
        """DOC-WS connection count limit: beyond it, the usual acknowledgement, then
        ``channel-conn-count-error``, and the subscription is terminated."""
        assert self.account is not None
        limit = self.hub.options.limits.conns_per_channel
        if not (sub.channel.conn_count and limit):
            return False
        count = self.hub.connection_count(self.account.name, sub.channel.name)
        if count <= limit:
            return False
        self.subs.remove(sub)
        if not self.subs and self._unsubscribed_since is None:
            self._unsubscribed_since = now
        self._send({**head, "event": "subscribe", "arg": sub.arg, "connId": self.conn_id})
        self._send(
            {
                "event": "channel-conn-count-error",
                "channel": sub.channel.name,
                "connCount": str(count - 1),
                "connId": self.conn_id,
            }
        )
        log.info(
            "sim.ws.channel_limit",
            account=self.account.name,
            channel=sub.channel.name,
            connId=self.conn_id,
            connCount=count - 1,
        )
        return True

    def _snapshot(self, sub: Subscription, event: str) -> None:
        """A full snapshot of ``sub`` in pages of ``page_size`` (DOC-POS: only positions
        with ``pos`` != 0; an empty account is one page of ``data: []``, CCXT-21565)."""
        assert self.account is not None
        if sub.channel.snapshot is None or self._silent():
            return
        data = [
            r for r in sub.channel.snapshot(self.account.name) if sub.channel.matches(sub.arg, r)
        ]
        size = max(1, self.hub.options.page_size)
        pages = [data[i : i + size] for i in range(0, len(data), size)] or [[]]
        for n, page in enumerate(pages, start=1):
            self._send(self._push(sub, event, page, (n, n == len(pages))))

    def _push(
        self,
        sub: Subscription,
        event: str,
        data: list[dict[str, Any]],
        page: tuple[int, bool] | None = None,
    ) -> dict[str, Any]:
        assert self.account is not None
        channel = sub.channel
        if channel.push_time:
            stamp = str(int(self.hub.wall_clock() * 1000))
            data = [{**r, channel.push_time: stamp} for r in data]
        msg: dict[str, Any] = {"arg": {**sub.arg, "uid": self.account.uid}}
        if channel.paged and not self.hub.options.legacy_push_fields:
            msg["eventType"] = event
            if page is not None:
                msg["curPage"], msg["lastPage"] = page
        msg["data"] = data
        return msg

    def deliver(self, channel: str, records: list[dict[str, Any]], now: float) -> bool:
        """Event records of this session's account on ``channel``, held for the event window;
        True if the window just opened (the transport must wake the session)."""
        if self.account is None or self._closed or self._silent():
            return False
        held = False
        for sub in self.subs:
            if sub.channel.name != channel:
                continue
            data = [r for r in records if sub.channel.matches(sub.arg, r)]
            if data:
                sub.pending.extend(data)
                held = True
        if not held or self._flush_at is not None:
            return False
        self._flush_at = now + EVENT_WINDOW_S * self.hub.options.time_scale
        return True

    def _flush_events(self, now: float) -> None:
        self._flush_at = None
        if self._silent():
            for sub in self.subs:
                sub.pending.clear()
                sub.held.clear()
            return
        for sub in self.subs:
            if not sub.pending:
                continue
            records, sub.pending = sub.pending, []
            key = sub.channel.dedupe
            if key is not None:
                latest: dict[Any, dict[str, Any]] = {}
                for r in records:
                    latest.pop(r.get(key), None)  # keep the order of the latest changes
                    latest[r.get(key)] = r
                records = list(latest.values())
            assert self.account is not None
            delay = self.hub.faults.channel_delay_s(self.account.name, sub.channel.name)
            if delay > 0 or sub.held:  # held pushes keep their order behind earlier ones
                sub.held.append((now + delay, records))
                continue
            self._send(self._push(sub, "event_update", records))


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
        self.add_channel(
            Channel(
                POSITIONS,
                snapshot=lambda account: [
                    p for p in exchange.positions(account) if p["pos"] != "0"
                ],
                regular=True,
                dedupe="posId",
                push_time="pTime",  # DOC-POS: pTime is the push time
                conn_count=True,
                paged=True,
            )
        )

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

    def connection_count(self, account: str, channel: str) -> int:
        """Connections of ``account`` subscribed to ``channel`` (``channel-conn-count``)."""
        return sum(
            1 for s in self.sessions_of(account) if any(x.channel.name == channel for x in s.subs)
        )

    def sessions_of(self, account: str) -> list[WsSession]:
        return list(self._by_account.get(account, ()))

    def publish(self, channel: str, account: str, records: Iterable[dict[str, Any]]) -> None:
        """Event records of ``account`` on ``channel``, to every subscribed session."""
        batch = list(records)
        if not batch:
            return
        now = self.clock()
        for session in self.sessions_of(account):
            if session.deliver(channel, batch, now):
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
