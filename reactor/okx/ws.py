"""Asyncio driver for one account's private WebSocket, thin over :mod:`ws_protocol`.

It owns the connection lifecycle the protocol cannot: pacing connection starts across all
accounts, reconnecting with capped exponential backoff and full jitter, the ``ping``/``pong``
heartbeat that detects dead connections, proactive reconnects on OKX's 64008 notice, and
stopping an account for good when its credentials are wrong (no retry storm).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from reactor.backoff import Backoff
from reactor.fdlimit import log_if_emfile
from reactor.log import error_text, get_logger
from reactor.okx.credentials import Credentials
from reactor.okx.errors import CLOSE_CODES, WS_SERVICE_UPGRADE, classify_close
from reactor.okx.models import Position
from reactor.okx.orders import OrderUpdate
from reactor.okx.pacing import ConnectPacer
from reactor.okx.ws_protocol import (
    Ignored,
    InvalidFrame,
    InvalidItem,
    LoginFailed,
    LoginOk,
    Notice,
    OrdersUpdate,
    Pong,
    PrivateChannelProtocol,
    ServerError,
    SnapshotPage,
    Subscribed,
    SubscribeFailed,
    Update,
    WsEvent,
)
from reactor.redaction import redact_text

log = get_logger(__name__)
T = TypeVar("T")
MAX_FRAME_BYTES = 16 * 1024 * 1024
HEALTHY_AFTER_S = 10.0


def _deflate() -> ClientPerMessageDeflateFactory:
    """permessage-deflate as websockets offers it, but with a small window for what the client
    compresses (login, subscribe and "ping" only). The default compressor (32 KiB window,
    memLevel 5) held ~190 KiB per connection: 190 MB of the reactor's RSS at 1,000
    sub-accounts (bench: steady). Without a ``client_max_window_bits`` answer the client still
    uses 9 bits, which any server's 15-bit decompressor reads (RFC 7692 7.1.2.2). What the
    server sends is decompressed with the window it chose, as before."""
    return ClientPerMessageDeflateFactory(
        client_max_window_bits=9, compress_settings={"memLevel": 1}
    )


class SessionHandler(Protocol):
    """What a session reports. ``cur_page`` is the snapshot page number (1-based), so the
    book can drop a snapshot a reconnect interrupted."""

    def on_connected(self, account: str) -> None: ...
    def on_snapshot(
        self, account: str, positions: list[Position], *, last_page: bool, cur_page: int | None
    ) -> None: ...
    def on_update(self, account: str, positions: list[Position]) -> None: ...
    def on_disconnected(self, account: str, reason: str) -> None: ...
    def on_stopped(self, account: str, reason: str) -> None: ...
    def on_orders(self, account: str, orders: list[OrderUpdate]) -> None: ...


@dataclass(frozen=True, slots=True)
class _Outcome:
    reason: str
    then: Literal["backoff", "now", "stop"]
    healthy: bool  # reset the backoff (set by _connection, not by _serve)


class PrivateSession:
    """One account's private connection, kept alive until :meth:`stop` or an auth failure."""

    def __init__(
        self,
        account: str,
        url: str,
        credentials: Credentials,
        handler: SessionHandler,
        *,
        pacer: ConnectPacer,
        ping_interval_s: float = 20.0,
        pong_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        extra_headers: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        resync_clock: Callable[[], Awaitable[float]] | None = None,
        open_timeout_s: float = 10.0,
        orders: bool = False,
        protocol_class: type[PrivateChannelProtocol] = PrivateChannelProtocol,
    ) -> None:
        self.account = account
        self.orders = orders  # also subscribe ``orders``: counts from fills
        self.url = url
        self._credentials = credentials
        self._handler = handler
        self._pacer = pacer
        self._ping_interval_s = ping_interval_s
        self._pong_timeout_s = pong_timeout_s
        # Full jitter: accounts do not stampede.
        self._backoff = Backoff(backoff_initial_s, backoff_max_s, jitter=(0.0, 1.0))
        self._extra_headers = dict(extra_headers or {})
        self._clock = clock
        self._resync_clock = resync_clock  # e.g. OkxRestClient.sync_clock: offset to OKX time
        self._offset_s = 0.0
        self._open_timeout_s = open_timeout_s
        self._protocol_class = protocol_class  # a seam for benchmarks (frame arrival stamps)
        self._stop = asyncio.Event()
        self._snapshot_done = False
        self.connected = False
        self.logged_in = False
        self.stopped_reason: str | None = None
        self.connect_count = 0  # connections that reached "subscribed"
        # The account's book is stale from a lost subscription until the next full snapshot
        # (the handler marks it so); monotonic start of the current stale window, if any.
        self._stale_since: float | None = None
        self.stale_since_wall: float | None = None  # the same start on the wall clock
        self.last_stale_s: float | None = None  # how long the last (ended) window lasted
        self.stale_windows = 0  # ended stale windows (after a reconnect), for the status
        self._stale_reason = ""

    def __repr__(self) -> str:
        return f"PrivateSession(account={self.account!r}, connected={self.connected})"

    async def stop(self) -> None:
        """Ask :meth:`run` to end; it closes the connection and returns promptly."""
        self._stop.set()

    async def run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            done, outcome = await self._or_stop(self._connection(attempt))
            if not done or outcome is None or self._stop.is_set():
                break
            if outcome.then == "stop":
                return
            attempt = 0 if outcome.healthy else attempt
            attempt += 1
            delay = 0.0 if outcome.then == "now" else self._backoff.delay(attempt)
            log.info(
                "ws.reconnect",
                account=self.account,
                attempt=attempt,
                delay_s=round(delay, 3),
                reason=outcome.reason,
            )
            if delay > 0 and not (await self._or_stop(asyncio.sleep(delay)))[0]:
                break

    async def _or_stop(self, aw: Awaitable[T]) -> tuple[bool, T | None]:
        """Await ``aw`` unless stop() comes first (then cancel it). True if it finished."""
        task = asyncio.ensure_future(aw)
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.cancelled():
            return False, None
        return True, task.result()

    async def _connection(self, attempt: int) -> _Outcome:
        # A connection request counts from its start until a second after its answer: OKX
        # counts it on arrival, somewhere in between, so jitter can never put a fourth one
        # into OKX's second (counting at the start alone got 429s in the simulator).
        async with self._pacer.slot():
            log.info("ws.connecting", account=self.account, url=self.url, attempt=attempt)
            try:
                ws = await connect(
                    self.url,
                    additional_headers=self._extra_headers or None,
                    open_timeout=self._open_timeout_s,
                    ping_interval=None,  # OKX heartbeats at the application level ("ping")
                    close_timeout=2,
                    max_size=MAX_FRAME_BYTES,
                    proxy=None,
                    extensions=[_deflate()],
                )
            except Exception as exc:  # refused, DNS, TLS, HTTP status, timeout: all retried
                log_if_emfile(exc, account=self.account, what="ws connect")
                why = redact_text(f"connect failed: {error_text(exc, None)}")
                return _Outcome(why[:300], "backoff", False)
        reason = "closed"
        outcome: _Outcome | None = None
        was_connected = False
        close_code: int | None = None
        opened = time.monotonic()
        try:
            outcome = await self._serve(ws)
            reason = outcome.reason
        except ConnectionClosed as exc:
            close_code = exc.rcvd.code if exc.rcvd else None
            reason = f"connection closed: code={close_code}"
        except asyncio.CancelledError:
            reason = "stopped"
            raise
        except Exception as exc:  # a bug here must cost one connection, not the account
            reason = f"session error: {type(exc).__name__}"
            log.exception("ws.session.error", account=self.account)
        finally:
            was_connected = self.connected
            self.connected = False
            self.logged_in = False
            try:
                await ws.close()
            except asyncio.CancelledError:
                ws.transport.abort()
                raise
            level = log.info if reason == "stopped" else log.warning
            level("ws.disconnected", account=self.account, reason=reason)
            if was_connected:
                if self._stale_since is None:
                    self._stale_since = time.monotonic()
                    self.stale_since_wall = time.time()
                    self._stale_reason = reason
                self._notify(self._handler.on_disconnected, reason)
        if outcome is None and classify_close(close_code).stops_account:
            # 4007 "API key has been updated or deleted": the key is gone, as with 60032 at
            # login; reconnecting would only fail the login again (errors.py, DOC-WSERR).
            text = CLOSE_CODES[close_code].msg if close_code in CLOSE_CODES else ""
            return self._stop_account(f"closed {close_code}: {text}")
        # Only a connection that delivered its snapshot and then lived a while resets the
        # backoff: a server that accepts and drops at once must not be hammered.
        healthy = self._snapshot_done and time.monotonic() - opened >= HEALTHY_AFTER_S
        then = outcome.then if outcome is not None else "backoff"
        return _Outcome(reason, then, healthy or then == "now")

    async def _serve(self, ws: ClientConnection) -> _Outcome:
        proto = self._protocol_class(
            self.account, self._credentials, clock=self._now, orders=self.orders
        )
        self._snapshot_done = False
        await ws.send(proto.login_frame())  # never logged: it carries the passphrase
        loop = asyncio.get_running_loop()
        last_rx = last_tx = loop.time()
        # OKX always answers login and subscribe and then sends a full snapshot; without it the
        # account would stay stale forever, so a connection that is not ready in time is redone.
        ready_by: float | None = last_rx + self._ping_interval_s + self._pong_timeout_s
        ping_sent: float | None = None
        while True:
            now = loop.time()
            if ready_by is not None:
                if self._snapshot_done:
                    ready_by = None
                elif now >= ready_by:
                    state = proto.state
                    return _Outcome(f"not ready in time (state {state})", "backoff", False)
            if ping_sent is None:
                # OKX's recipe pings after N s with nothing received; pinging after N s with
                # nothing *sent* as well keeps a stricter server (one that closes quiet
                # clients, docs/spec/okx-fidelity.md §2) from dropping a busy connection.
                wait = self._ping_interval_s - (now - min(last_rx, last_tx))
                if wait <= 0:
                    await ws.send("ping")
                    ping_sent = last_tx = now
                    continue
            else:
                wait = self._pong_timeout_s - (now - ping_sent)
                if wait <= 0:
                    log.warning(
                        "ws.pong.timeout", account=self.account, waited_s=self._pong_timeout_s
                    )
                    return _Outcome("pong timeout", "backoff", self.connected)
            if ready_by is not None:
                wait = min(wait, ready_by - now)
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    frame = await ws.recv()
            except TimeoutError:
                continue
            last_rx = loop.time()
            text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
            for event in proto.receive(text):
                if isinstance(event, Pong):
                    ping_sent = None
                    continue
                outcome = await self._on_event(ws, proto, event)
                if outcome is not None:
                    return outcome
                if isinstance(event, LoginOk):
                    last_tx = loop.time()  # the subscribe frame went out

    async def _on_event(
        self, ws: ClientConnection, proto: PrivateChannelProtocol, event: WsEvent
    ) -> _Outcome | None:
        account = self.account
        if isinstance(event, Update):
            self._report_invalid(event.invalid)
            if event.positions:
                self._notify_update(event.positions)
        elif isinstance(event, OrdersUpdate):
            self._report_invalid(event.invalid)
            if event.orders:
                try:
                    self._handler.on_orders(account, event.orders)
                except Exception:
                    log.exception("ws.handler.error", account=account, callback="on_orders")
        elif isinstance(event, SnapshotPage):
            self._report_invalid(event.invalid)
            if event.last_page:
                self._snapshot_done = True
            try:
                self._handler.on_snapshot(
                    account, event.positions, last_page=event.last_page, cur_page=event.cur_page
                )
            except Exception:
                log.exception("ws.handler.error", account=account, callback="on_snapshot")
            if event.last_page:
                self._stale_ended()  # after the handler: the book is fresh again
        elif isinstance(event, LoginOk):
            self.logged_in = True
            await ws.send(proto.subscribe_frame())
        elif isinstance(event, Subscribed):
            self.connected = True
            self.connect_count += 1
            log.info("ws.connected", account=account, conn_id=event.conn_id)
            self._notify(self._handler.on_connected)
        elif isinstance(event, InvalidFrame):
            log.warning(
                "ws.frame.invalid",
                account=account,
                reason=redact_text(event.reason),
                preview=redact_text(event.preview),
            )
        elif isinstance(event, Notice):
            log.warning("ws.notice", account=account, code=event.code, msg=_msg(event.msg))
            if event.code == WS_SERVICE_UPGRADE:
                return _Outcome(f"notice {event.code}", "now", True)
        elif isinstance(event, LoginFailed):
            return await self._login_failed(event)
        elif isinstance(event, SubscribeFailed):
            log.error("ws.subscribe.failed", account=account, code=event.code, msg=_msg(event.msg))
            return _Outcome(f"subscribe failed {event.code}", "backoff", False)
        elif isinstance(event, ServerError):
            log.warning("ws.error", account=account, code=event.code, msg=_msg(event.msg))
        elif isinstance(event, Ignored):
            log.debug("ws.ignored", account=account, reason=event.reason)
        return None

    def _now(self) -> float:
        return self._clock() + self._offset_s

    def stale_for_s(self) -> float | None:
        """How long the book has been stale since the subscription was lost (None: it is
        not, or it was never fresh yet)."""
        return None if self._stale_since is None else time.monotonic() - self._stale_since

    def _stale_ended(self) -> None:
        """A full snapshot after a lost subscription: say how long the book was stale (a
        fleet reconnecting through the 3/s pacer is stale about N/3 s at the end)."""
        if self._stale_since is None:
            return
        self.last_stale_s = time.monotonic() - self._stale_since
        self._stale_since = None
        self.stale_since_wall = None
        self.stale_windows += 1
        log.info(
            "ws.book.stale",
            account=self.account,
            stale_s=round(self.last_stale_s, 3),
            reason=self._stale_reason,
        )

    async def _login_failed(self, event: LoginFailed) -> _Outcome:
        # OKX echoes the login request (key, passphrase, signature) in some errors (60012):
        # the message is scrubbed before it reaches a log line, a reason or the status page.
        msg = _msg(event.msg)
        fields = {"account": self.account, "code": event.code, "msg": msg}
        if event.is_timestamp:
            # Our clock and OKX's disagree: re-sync and retry with the session's back-off,
            # as often as it takes; a clock that steps twice must not stop the account.
            log.warning("ws.login.failed", retry=True, **fields)
            if self._resync_clock is not None:
                try:
                    self._offset_s = await self._resync_clock()
                except Exception as exc:
                    error = redact_text(error_text(exc, None))[:300]
                    log.warning("ws.clock.sync_failed", account=self.account, error=error)
            return _Outcome(f"login failed {event.code}", "backoff", False)
        if event.is_auth:
            log.error("ws.login.failed", retry=False, **fields)
            return self._stop_account(f"login failed {event.code}: {msg}")
        log.error("ws.login.failed", retry=True, **fields)
        return _Outcome(f"login failed {event.code}", "backoff", False)

    def _stop_account(self, reason: str) -> _Outcome:
        """Credentials or permission are wrong (errors.py): stop for good, no retry storm."""
        self.stopped_reason = reason
        log.error("account.stopped", account=self.account, reason=reason)
        self._notify(self._handler.on_stopped, reason)
        return _Outcome(reason, "stop", False)

    def _report_invalid(self, items: list[InvalidItem]) -> None:
        for item in items:
            log.warning(
                "ws.frame.invalid",
                account=self.account,
                reason=redact_text(item.reason),
                preview=redact_text(item.preview),
            )

    def _notify_update(self, positions: list[Position]) -> None:
        try:
            self._handler.on_update(self.account, positions)
        except Exception:
            log.exception("ws.handler.error", account=self.account, callback="on_update")

    def _notify(self, callback: Callable[..., None], *args: str) -> None:
        """A buggy handler must not take the connection down with it."""
        try:
            callback(self.account, *args)
        except Exception:
            log.exception("ws.handler.error", account=self.account, callback=callback.__name__)


def _msg(text: str) -> str:
    """An exchange message fit for logs: secrets masked first, then cut to 200 characters."""
    return redact_text(text)[:200]
