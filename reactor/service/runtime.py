"""What a running reactor holds (:class:`Runtime`), the seams tests and benchmarks use instead
of monkeypatching (:class:`StartHooks`), and how its long-lived tasks end: as events, never as
a silent dead loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import httpx

from reactor.config import Config
from reactor.engine import Engine
from reactor.log import error_text, get_logger
from reactor.okx.clock import ExchangeClock
from reactor.okx.pacing import ConnectPacer
from reactor.okx.rest import OkxRestClient
from reactor.okx.sign_gate import SignGate
from reactor.okx.ws import PrivateSession, SessionHandler
from reactor.okx.ws_protocol import PrivateChannelProtocol
from reactor.status.history import MarginRecorder
from reactor.status.metrics import Metrics
from reactor.status.model import StatusSnapshot, StatusSource
from reactor.status.snapshot import HISTORY_WINDOW_MS, EngineStatus
from reactor.store import Ledger
from reactor.store.state_dir import StateLock

if TYPE_CHECKING:
    from reactor.service.ha import HaRole

log = get_logger("reactor.service.runtime")


@dataclass(frozen=True)
class StartHooks:
    """Seams for tests and benchmarks, so they need no monkeypatching; the defaults (None) are
    production. ``transport(account)`` gives that account's REST client an httpx transport
    (None: httpx's own); ``session_handler(account, engine)`` wraps what a session reports to;
    ``protocol_class`` parses the private channel (a subclass may stamp frames on arrival);
    ``pacer`` paces WebSocket connection starts (OKX: 3 per second)."""

    pacer: ConnectPacer | None = None
    transport: Callable[[str], httpx.AsyncBaseTransport | None] | None = None
    session_handler: Callable[[str, SessionHandler], SessionHandler] | None = None
    protocol_class: type[PrivateChannelProtocol] = PrivateChannelProtocol

    def transport_for(self, account: str) -> httpx.AsyncBaseTransport | None:
        return self.transport(account) if self.transport is not None else None


@dataclass
class Runtime:
    """What a running reactor holds; tests and benchmarks reach in through it."""

    cfg: Config
    engine: Engine
    ledger: Ledger
    sessions: dict[str, PrivateSession]
    rest_url: str
    ws_url: str
    status_url: str | None = None
    sim: Any = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    lock: StateLock | None = None
    metrics: Metrics = field(default_factory=Metrics)
    dry_run: bool = False
    pacer: ConnectPacer = field(default_factory=ConnectPacer)
    exchange_clock: ExchangeClock = field(default_factory=ExchangeClock)  # every client's
    sign_gate: SignGate = field(default_factory=SignGate)  # every client's
    hooks: StartHooks = field(default_factory=StartHooks)
    # Clients of accounts a reload stopped: closed at stop, after their calls in flight.
    retired_clients: list[OkxRestClient] = field(default_factory=list)
    status_changed: asyncio.Event = field(default_factory=asyncio.Event)
    status_source: StatusSource | None = None
    # The margins OKX pushed, for the status page's charts (bounded; see MarginRecorder).
    margins: MarginRecorder = field(default_factory=lambda: MarginRecorder(HISTORY_WINDOW_MS))
    # The last SIGHUP's refusal (None: none, or a later reload was applied); in STATUS=.
    reload_refused: str | None = None
    # Pauses handed to the engine (account, instId, posSide): sync_pauses logs the changes.
    pauses_applied: frozenset[tuple[str, str | None, str | None]] = frozenset()
    ha: HaRole | None = None  # high availability (cfg.ha): the lease task's state

    @property
    def clients(self) -> dict[str, OkxRestClient]:
        """The running (enabled) accounts' REST clients: a view of the engine's accounts,
        which hold them (the one home; start-up and a reload put them there)."""
        return {
            name: cast(OkxRestClient, state.client)
            for name, state in self.engine.accounts.items()
            if state.enabled and state.client is not None
        }

    def status_snapshot(self) -> StatusSnapshot:
        """What ``/api/status`` shows now (the engine's read-only view)."""
        if self.status_source is None:
            self.status_source = WithSessionState(
                WithLedgerHealth(EngineStatus(self.engine, margins=self.margins), self.ledger),
                lambda: self.sessions,
            )
        return self.status_source.status_snapshot()

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Start a long-lived task whose failure is an event, never a silent dead loop."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_log_task_end)
        self.tasks.append(task)
        return task


class WithLedgerHealth:
    """The engine's status plus the ledger's own: a ledger file deleted or replaced is found by
    the poll loop before any write fails, and must make ``/healthz`` unhealthy at once."""

    def __init__(self, source: StatusSource, ledger: Ledger) -> None:
        self._source = source
        self._ledger = ledger

    def status_snapshot(self) -> StatusSnapshot:
        snap = self._source.status_snapshot()
        problem = self._ledger.problem
        if problem is None:
            return snap
        reason = f"ledger {problem.reason}: {problem}"[:300]
        if reason in snap.engine_problems:
            return snap
        return replace(snap, engine_problems=(*snap.engine_problems, reason), storage_ok=False)


class WithSessionState:
    """The status plus what only the private session knows: whether the account's socket is
    up (its one home: ``PrivateSession.connected``; an account without a session is not
    connected) and how long its book was stale after its subscription was lost (ws.book.stale).
    ``sessions`` is asked per snapshot, since a reload adds and removes sessions."""

    def __init__(
        self, source: StatusSource, sessions: Callable[[], dict[str, PrivateSession]]
    ) -> None:
        self._source = source
        self._sessions = sessions

    def status_snapshot(self) -> StatusSnapshot:
        snap = self._source.status_snapshot()
        sessions = self._sessions()
        accounts = []
        for a in snap.accounts:
            s = sessions.get(a.name)
            if s is None:
                accounts.append(replace(a, connected=False))
                continue
            since = s.stale_since_wall
            accounts.append(
                replace(
                    a,
                    connected=s.connected,
                    stale_since_ms=None if since is None else int(since * 1000),
                    last_stale_s=None if s.last_stale_s is None else round(s.last_stale_s, 3),
                )
            )
        return replace(snap, accounts=tuple(accounts))


def on_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's last resort ("Task exception was never retrieved", a failing callback) as an
    event on stdout like every other fact, instead of an unstructured line on stderr."""
    exc = context.get("exception")
    task = context.get("task") or context.get("future")
    name = task.get_name() if isinstance(task, asyncio.Task) else None
    log.error(
        "reactor.task.failed",
        task=name,
        error=error_text(exc) if isinstance(exc, BaseException) else str(context.get("message")),
        exc_info=exc if isinstance(exc, BaseException) else None,
    )


def _log_task_end(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()  # retrieved: never "Task exception was never retrieved"
    if exc is not None:
        log.error(
            "reactor.task.failed",
            task=task.get_name(),
            error=error_text(exc),
            exc_info=exc,
        )
