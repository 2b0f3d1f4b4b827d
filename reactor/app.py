"""Process wiring for ``reactor run``: config -> clients, sessions, engine, loops; clean stop.

Everything here is I/O glue; the decisions live in :mod:`reactor.engine` and below.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import os
import random
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from reactor.config import AccountConfig, Config, ConfigError, load_config, resolve_credentials
from reactor.control_api import ControlApi
from reactor.engine import AccountState, Engine, EngineSettings
from reactor.fdlimit import raise_nofile_limit
from reactor.ledger import Ledger, LedgerError, MaintenanceRecord, Pause
from reactor.log import get_logger
from reactor.maintenance import FillGate
from reactor.maintenance_api import MaintenanceApi
from reactor.okx.credentials import Credentials
from reactor.okx.errors import OkxError
from reactor.okx.models import PayloadError, parse_instrument
from reactor.okx.pacing import ConnectPacer
from reactor.okx.rest import AmbiguousOutcome, OkxRestClient, RequestNotSent
from reactor.okx.ws import PrivateSession, SessionHandler
from reactor.okx.ws_protocol import PrivateChannelProtocol
from reactor.redaction import register_secrets
from reactor.state_dir import StartupError, StateLock, prepare_state_dir
from reactor.status.metrics import Metrics
from reactor.status.model import StatusSnapshot, StatusSource
from reactor.status.server import StatusServer
from reactor.status.snapshot import EngineStatus
from reactor.systemd import SystemdNotifier, run_status, run_watchdog, status_text

log = get_logger("reactor.app")

LEDGER_FILE = "reactor.sqlite"
DRAIN_TIMEOUT_S = 10.0
# Start-up calls to the exchange (instruments) that fail for a network reason are retried
# with capped exponential back-off and jitter, in the process, until they work or SIGTERM.
START_BACKOFF_INITIAL_S = 0.5
START_BACKOFF_MAX_S = 30.0
# Ledger writes wait at most this long for another writer (the CLI) before failing typed:
# the ledger is written from the event loop, which must never stall for seconds.
LEDGER_BUSY_TIMEOUT_MS = 500

__all__ = [
    "LEDGER_FILE",
    "Runtime",
    "StartCancelled",
    "StartupError",
    "reload",
    "run",
    "start",
    "stop",
]


class StartCancelled(Exception):
    """SIGTERM/SIGINT arrived while start-up was still retrying: exit cleanly."""


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
    clients: dict[str, OkxRestClient]
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
    hooks: StartHooks = field(default_factory=StartHooks)
    # Clients of accounts a reload stopped: closed at stop, after their calls in flight.
    retired_clients: list[OkxRestClient] = field(default_factory=list)
    status_changed: asyncio.Event = field(default_factory=asyncio.Event)
    status_source: StatusSource | None = None

    def status_snapshot(self) -> StatusSnapshot:
        """What ``/api/status`` shows now (the engine's read-only view)."""
        if self.status_source is None:
            self.status_source = WithLedgerHealth(EngineStatus(self.engine), self.ledger)
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


def _on_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's last resort ("Task exception was never retrieved", a failing callback) as an
    event on stdout like every other fact, instead of an unstructured line on stderr."""
    exc = context.get("exception")
    task = context.get("task") or context.get("future")
    name = task.get_name() if isinstance(task, asyncio.Task) else None
    log.error(
        "reactor.task.failed",
        task=name,
        error=_short(exc) if isinstance(exc, BaseException) else str(context.get("message")),
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
            error=f"{type(exc).__name__}: {exc}"[:300],
            exc_info=exc,
        )


def _embedded_credentials(cfg: Config, scenario: Any) -> dict[str, Credentials]:
    by_name = {a.name: a for a in scenario.accounts}
    out = {}
    for acc in cfg.enabled_accounts():
        sim_acc = by_name.get(acc.name)
        if sim_acc is None:
            raise ConfigError(
                f"accounts: {acc.name}: not in the simulator scenario {cfg.venue.scenario}"
            )
        out[acc.name] = Credentials(
            sim_acc.apiKey,
            sim_acc.secretKey.get_secret_value(),
            sim_acc.passphrase.get_secret_value(),
        )
    return out


async def _load_ct_vals(client: OkxRestClient) -> dict[str, Decimal]:
    out = {}
    for raw in await client.get_instruments("SWAP"):
        try:
            inst = parse_instrument(raw)
        except PayloadError as exc:
            log.warning("rest.payload.invalid", what="instrument", reason=str(exc))
            continue
        out[inst.inst_id] = inst.ct_val
    return out


async def _with_start_retries(
    what: str,
    call: Callable[[], Awaitable[Any]],
    stop_event: asyncio.Event | None,
    *,
    initial_s: float = START_BACKOFF_INITIAL_S,
    max_s: float = START_BACKOFF_MAX_S,
) -> Any:
    """Run ``call`` until it succeeds; network and exchange-side failures wait and retry.

    A reactor started while OKX (or the network) is briefly away must come up by itself
    rather than exit and depend on its supervisor; each failure is a ``reactor.start.retry``
    event. SIGTERM during the wait raises :class:`StartCancelled`.
    """
    attempt = 0
    while True:
        try:
            return await call()
        except (OkxError, RequestNotSent, AmbiguousOutcome) as exc:
            attempt += 1
            ceiling = min(max_s, initial_s * 2 ** (attempt - 1))
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)
            log.warning(
                "reactor.start.retry",
                what=what,
                attempt=attempt,
                delay_s=round(delay, 3),
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
        if stop_event is None:
            await asyncio.sleep(delay)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), delay)
        if stop_event.is_set():
            raise StartCancelled(what)


def _check_port_free(host: str, port: int) -> None:
    """Refuse a status port another process listens on before touching the exchange."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupError(_port_problem(host, port, exc)) from None


def _port_problem(host: str, port: int, exc: OSError) -> str:
    why = "in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
    return f"status.port: {host}:{port} {why}"


def _open_ledger(cfg: Config) -> Ledger:
    path = cfg.state_dir / LEDGER_FILE
    new = not path.exists()
    try:
        ledger = Ledger(path, busy_timeout_ms=LEDGER_BUSY_TIMEOUT_MS)
    except LedgerError as exc:
        raise StartupError(str(exc)) from None
    if new:  # visible: a ledger expected elsewhere means maintenance counts start at 0
        log.warning("ledger.created", path=str(path))
    return ledger


# Generation-0 threshold: the hot path allocates many short-lived, acyclic objects (parsed
# positions, log dicts) that reference counting frees; with the default (2,000) the collector
# ran so often over 10,000 live positions that its pauses were the latency tail (own-share
# p99 at 5,000 pushes/s: 7-13 ms by default, 2.1 ms with this; see README, Performance).
GC_THRESHOLDS = (100_000, 50, 1_000)


def tune_gc() -> None:
    """The reactor owns its process: make cyclic GC rare and keep start-up objects out of it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def start(
    cfg: Config,
    *,
    dry_run: bool | None = None,
    stop_event: asyncio.Event | None = None,
    hooks: StartHooks | None = None,
) -> Runtime:
    """Build and start everything. ``dry_run`` None: the config's ``dry_run`` key.

    Raises ConfigError / StartupError (one line, exit 2) before anything touches the exchange:
    the state dir is checked and locked (one controller per state dir), the ledger opened, the
    status port checked. Then network failures are retried in-process (``reactor.start.retry``).
    """
    if not cfg.enabled_accounts():
        raise StartupError("accounts: every account is disabled; nothing to run")
    asyncio.get_running_loop().set_exception_handler(_on_loop_exception)
    creds = None if cfg.venue.embedded else resolve_credentials(cfg)
    prepare_state_dir(cfg.state_dir)
    lock = StateLock(cfg.state_dir)
    lock.acquire()
    cleanup: list[Callable[[], Awaitable[None]]] = []
    try:
        if cfg.status.enabled:
            _check_port_free(cfg.status.host, cfg.status.port)
        ledger = _open_ledger(cfg)

        async def close_ledger() -> None:
            ledger.close()

        cleanup.append(close_ledger)
        dry = cfg.dry_run if dry_run is None else dry_run
        rt = await _start_locked(
            cfg, creds, ledger, dry, stop_event, cleanup, hooks or StartHooks()
        )
    except BaseException:
        for undo in reversed(cleanup):
            with contextlib.suppress(Exception):
                await undo()
        lock.release()
        raise
    rt.lock = lock
    return rt


async def _start_locked(
    cfg: Config,
    creds: dict[str, Credentials] | None,
    ledger: Ledger,
    dry_run: bool,
    stop_event: asyncio.Event | None,
    cleanup: list[Callable[[], Awaitable[None]]],
    hooks: StartHooks,
) -> Runtime:
    sim = None
    if cfg.venue.embedded:
        from reactor.sim.scenario import ScenarioError, load_scenario
        from reactor.sim.server import Simulator

        assert cfg.venue.scenario is not None
        try:
            scenario = load_scenario(cfg.venue.scenario)
        except ScenarioError as exc:  # unreadable or invalid: one line, exit 2
            raise StartupError("venue.scenario: " + " ".join(str(exc).split())) from None
        creds = _embedded_credentials(cfg, scenario)
        sim = Simulator(scenario, price_walk=cfg.venue.price_walk)
        await sim.start("127.0.0.1", 0)
        cleanup.append(sim.stop)
        rest_url, ws_url = sim.url, sim.ws_url
        log.info("sim.embedded", url=rest_url, scenario=str(cfg.venue.scenario))
    else:
        assert creds is not None
        rest_url, ws_url = cfg.venue.urls()

    timeout = cfg.timing.request_timeout_s
    simulated = cfg.venue.simulated_trading
    clients = {
        name: OkxRestClient(
            rest_url,
            c,
            simulated=simulated,
            timeout_s=timeout,
            account=name,
            transport=hooks.transport_for(name),
        )
        for name, c in creds.items()
    }
    for client in clients.values():
        cleanup.append(client.aclose)
    first = next(iter(clients.values()))
    ct_vals = await _with_start_retries("instruments", lambda: _load_ct_vals(first), stop_event)
    accounts = {
        a.name: AccountState(a.name, a.role, clients.get(a.name), enabled=a.enabled)
        for a in cfg.accounts
    }
    settings = EngineSettings(
        policy=cfg.policy_config(),
        debounce_s=cfg.timing.debounce_ms / 1000,
        leading_edge=cfg.timing.leading_edge,
        cooldown_s=cfg.timing.cooldown_s,
        max_moved_per_hour=cfg.policy.max_moved_per_hour,
        main_expected_positions=cfg.main.expected_positions,
        dry_run=dry_run,
        retry_max_s=cfg.timing.retry_max_s,
        pre_reduce_check=True,  # estAvailTrans caps every reduce
        foreign_transfer_limit=cfg.policy.foreign_transfer_limit,
        foreign_transfer_window_s=cfg.policy.foreign_transfer_window_s,
    )
    metrics = Metrics()
    maint = cfg.maintenance
    rule = maint.rule()  # None: counts from records only, the orders channel is not read
    engine = Engine(
        settings,
        accounts,
        ct_vals,
        ledger,
        observer=metrics,
        fills=FillGate(rule, grace_ms=maint.grace_ms) if rule is not None else None,
        recovery_sources=tuple(maint.recover_from),
    )
    try:
        engine.recover_journal()
        pauses = ledger.pauses()
    except LedgerError as exc:
        raise StartupError(str(exc)) from None
    engine.on_paused(pause_map(pauses))
    if pauses:
        log.info("control.pauses.loaded", pauses=len(pauses))
    pacer = hooks.pacer or ConnectPacer()
    rt = Runtime(cfg, engine, ledger, {}, {}, rest_url, ws_url, sim=sim, metrics=metrics)
    rt.dry_run, rt.pacer, rt.hooks = dry_run, pacer, hooks
    status_url = None
    server = None
    source = WithLedgerHealth(
        EngineStatus(engine, venue=cfg.venue.kind, dry_run=dry_run, journal=ledger.journal_since),
        ledger,
    )
    rt.status_source = source
    if cfg.status.enabled:
        api = _maintenance_api(rt)
        server = StatusServer(
            source,
            metrics,
            cfg.status.host,
            cfg.status.port,
            extra_routes=_routes(_control_api(rt), api),
        )
        try:
            status_url = await server.start()
        except OSError as exc:
            raise StartupError(_port_problem(cfg.status.host, cfg.status.port, exc)) from None
        cleanup.append(server.stop)
    rt.clients.update(clients)
    rt.status_url = status_url
    for name, c in creds.items():
        _start_session(rt, name, c)
    rt.spawn("reconcile", _reconcile_loop(rt))
    rt.spawn("ledger", _ledger_loop(rt))
    if server is not None:
        rt.spawn("status", _hold(server.stop))
    log.info(
        "reactor.started",
        accounts=len(cfg.enabled_accounts()),
        venue=cfg.venue.kind,
        rest_url=rest_url,
        dry_run=dry_run,
        instruments=len(ct_vals),
    )
    return rt


def _maintenance_api(rt: Runtime) -> MaintenanceApi:
    """``POST /api/maintenance`` with the token from the environment (closed without one)."""
    token = os.environ.get(rt.cfg.maintenance.api_token_env, "")
    if token:
        register_secrets([token])  # never in a log line, even echoed back by a client

    def managed() -> list[str]:  # asked per request: a config reload may add accounts
        return [a.name for a in rt.cfg.accounts if a.role == "sub" and a.enabled]

    def recorded(rec: MaintenanceRecord) -> None:
        rt.engine.on_counts_changed({(rec.account, rec.inst_id, rec.pos_side)})

    return MaintenanceApi(rt.ledger, token, managed, on_recorded=recorded)


def _start_session(rt: Runtime, name: str, creds: Credentials) -> PrivateSession:
    """The account's private WebSocket session, started (paced with every other account's)."""
    cfg, timing = rt.cfg, rt.cfg.timing
    wrap = rt.hooks.session_handler
    session = PrivateSession(
        name,
        rt.ws_url,
        creds,
        wrap(name, rt.engine) if wrap else rt.engine,
        pacer=rt.pacer,
        extra_headers={"x-simulated-trading": "1"} if cfg.venue.simulated_trading else None,
        ping_interval_s=timing.ws_ping_interval_s,
        pong_timeout_s=timing.ws_pong_timeout_s,
        backoff_max_s=timing.ws_backoff_max_s,
        resync_clock=rt.clients[name].sync_clock,  # after 60006: OKX's clock, with back-off
        # Counts from fills: orders on the same connection (managed sub-accounts only).
        orders=cfg.maintenance.rule() is not None and _role(cfg, name) == "sub",
        protocol_class=rt.hooks.protocol_class,
    )
    rt.sessions[name] = session
    rt.spawn(f"ws:{name}", session.run())
    return session


def _role(cfg: Config, name: str) -> str:
    return next((a.role for a in cfg.accounts if a.name == name), "sub")


def _routes(*apis: ControlApi | MaintenanceApi) -> Callable[[web.Application], None]:
    """The status server's write endpoints, each with its own bearer-token check."""

    def add(app_: web.Application) -> None:
        for api in apis:
            api.add_routes(app_)

    return add


def pause_map(pauses: list[Pause]) -> dict[tuple[str, str | None, str | None], str]:
    """The ledger's pauses as the engine's input (key -> reason)."""
    return {p.key: p.reason for p in pauses}


def _sync_pauses(rt: Runtime) -> None:
    """Hand the ledger's pauses to the engine (the whole set; the engine diffs)."""
    rt.engine.on_paused(pause_map(rt.ledger.pauses()))
    rt.status_changed.set()


def _control_api(rt: Runtime) -> ControlApi:
    """``POST /api/pause`` and ``/api/resume`` with the maintenance API's token: one variable
    (``maintenance.api_token_env``, default ``REACTOR_API_TOKEN``) for every write endpoint."""
    token = os.environ.get(rt.cfg.maintenance.api_token_env, "")
    if token:
        register_secrets([token])  # never in a log line, even echoed back by a client

    def apply() -> None:
        try:
            _sync_pauses(rt)
        except LedgerError as exc:  # the poll loop reports the ledger; it retries on change
            log.error("ledger.unavailable", reason=getattr(exc, "reason", "error"), error=str(exc))

    return ControlApi(
        rt.ledger,
        token,
        lambda: [a.name for a in rt.cfg.accounts],
        apply,
        token_env=rt.cfg.maintenance.api_token_env,
    )


async def _hold(on_cancel: Callable[[], Awaitable[None]]) -> None:
    """A task that runs ``on_cancel`` when the runtime stops."""
    try:
        await asyncio.Event().wait()
    finally:
        await on_cancel()


async def _reconcile_loop(rt: Runtime) -> None:
    while True:
        await asyncio.sleep(rt.cfg.timing.reconcile_interval_s)
        for name in list(rt.clients):
            try:
                await rt.engine.reconcile_account(name)
            except Exception as exc:  # one bad pass must not end reconciling for good
                log.exception(
                    "reactor.task.error", task="reconcile", account=name, error=_short(exc)
                )


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


async def _ledger_loop(rt: Runtime) -> None:
    """Notice maintenance records written by other processes (the CLI) within a poll tick,
    and a ledger file deleted or replaced under us (``ledger.unavailable``)."""
    ledger = rt.ledger
    version: int | None = None
    last_id = last_audit = 0
    problem: str | None = None
    while True:
        try:
            ledger.check()
            if version is None:
                version = ledger.data_version()
                records = ledger.list_maintenance()
                last_id = records[-1].id if records else 0
                audits = ledger.audit_after(0)
                last_audit = audits[-1].id if audits else 0
            else:
                now = ledger.data_version()
                if now != version:
                    version = now
                    last_id = _new_records(rt, last_id)
                    last_audit = _new_voids(rt, last_audit)
                    _sync_pauses(rt)  # `reactor pause`/`resume` from another process
        except LedgerError as exc:
            if problem != str(exc):
                problem = str(exc)
                reason = getattr(exc, "reason", "error")
                log.error("ledger.unavailable", reason=reason, error=problem[:300])
        except Exception as exc:
            log.exception("reactor.task.error", task="ledger", error=_short(exc))
        else:
            if problem is not None:
                problem = None
                log.info("ledger.recovered")
        await asyncio.sleep(rt.cfg.timing.ledger_poll_ms / 1000)


def _new_records(rt: Runtime, last_id: int) -> int:
    fresh = rt.ledger.records_after(last_id)
    if not fresh:
        return last_id
    keys = {(r.account, r.inst_id, r.pos_side) for r in fresh}
    for r in fresh:
        log.info(
            "maintenance.seen",
            account=r.account,
            instId=r.inst_id,
            posSide=r.pos_side,
            key=r.key,
        )
    rt.engine.on_counts_changed(keys)
    return fresh[-1].id


def _new_voids(rt: Runtime, last_audit: int) -> int:
    """``reactor maintenance void`` in another process: the count (and target) may drop."""
    fresh = rt.ledger.audit_after(last_audit)
    if not fresh:
        return last_audit
    keys = set()
    for entry in fresh:
        for rec in rt.ledger.find(entry.key, entry.account):
            if rec.id == entry.record_id:
                keys.add((rec.account, rec.inst_id, rec.pos_side))
                log.info(
                    "maintenance.void.seen",
                    account=rec.account,
                    instId=rec.inst_id,
                    posSide=rec.pos_side,
                    key=rec.key,
                )
    if keys:
        rt.engine.on_counts_changed(keys)
    return fresh[-1].id


async def stop(rt: Runtime) -> None:
    log.info("reactor.stopping")
    rt.metrics.stopping()  # the disconnects that follow are not reconnects
    try:
        for session in rt.sessions.values():
            await session.stop()
        await rt.engine.drain(DRAIN_TIMEOUT_S)
        for task in rt.tasks:
            task.cancel()
        await asyncio.gather(*rt.tasks, return_exceptions=True)
        for client in [*rt.clients.values(), *rt.retired_clients]:
            await client.aclose()
        rt.ledger.close()
        if rt.sim is not None:
            await rt.sim.stop()
    finally:
        if rt.lock is not None:
            rt.lock.release()
    log.info("reactor.stopped", calls_sent=rt.engine.calls_sent)


async def run(cfg: Config, *, dry_run: bool | None = None, config_path: Path | None = None) -> int:
    """``reactor run``: start, serve until SIGINT/SIGTERM, stop cleanly; SIGHUP reloads the
    config from ``config_path`` (accounts only; see :func:`reload`).

    Start-up problems (StartupError, ConfigError) propagate: the CLI prints one line, exit 2.
    """
    raise_nofile_limit(accounts=len(cfg.enabled_accounts()))
    stop_event = asyncio.Event()
    reload_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop_event.set)
    # Installed before start-up: SIGHUP's default action would end the process (exit 129).
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGHUP, reload_event.set)
    notifier = SystemdNotifier()
    notifier.status(f"starting: {len(cfg.enabled_accounts())} accounts")
    try:
        rt = await start(cfg, dry_run=dry_run, stop_event=stop_event)
    except StartCancelled:
        log.info("reactor.stopped", calls_sent=0)
        return 0
    except StartupError as exc:
        log.error("reactor.start.failed", error=str(exc))
        raise
    tune_gc()
    notifier.ready(status_text(rt.status_snapshot(), dry_run=rt.dry_run))
    helpers = [
        asyncio.create_task(run_watchdog(notifier, lambda: True)),
        asyncio.create_task(
            run_status(
                notifier,
                lambda: status_text(rt.status_snapshot(), dry_run=rt.dry_run),
                wake=rt.status_changed,
            )
        ),
        asyncio.create_task(_reload_loop(rt, config_path, reload_event)),
    ]
    await stop_event.wait()
    notifier.stopping()
    for task in helpers:
        task.cancel()
    await asyncio.gather(*helpers, return_exceptions=True)
    await stop(rt)
    return 0


async def _reload_loop(rt: Runtime, path: Path | None, wake: asyncio.Event) -> None:
    """One reload per SIGHUP (several signals during a reload fold into one more)."""
    while True:
        await wake.wait()
        wake.clear()
        if path is None:
            log.error("reactor.reload.refused", error="no config file to reload from")
            continue
        try:
            await reload(rt, path)
        except Exception as exc:  # a bug in a reload must not end the service
            log.exception("reactor.task.error", task="reload", error=_short(exc))


_RELOADABLE = frozenset({"accounts"})


def _reload_problem(old: Config, new: Config) -> str | None:
    """Why ``new`` cannot replace ``old`` in the running process, or None."""
    before, after = old.model_dump(), new.model_dump()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    fixed = [k for k in changed if k not in _RELOADABLE]
    if fixed:
        return f"a reload changes accounts only; restart to change {', '.join(fixed)}"
    if not new.enabled_accounts():
        return "accounts: every account is disabled; nothing to run"
    for acc in new.accounts:
        was = next((a for a in old.accounts if a.name == acc.name), None)
        if was is not None and was.role != acc.role:
            return f"accounts: {acc.name}: role changed; restart to change an account's role"
    return None


def _reload_credentials(rt: Runtime, new: Config, names: list[str]) -> dict[str, Credentials]:
    if not names:
        return {}
    if new.venue.embedded:
        from reactor.sim.scenario import load_scenario

        assert new.venue.scenario is not None
        every = _embedded_credentials(new, load_scenario(new.venue.scenario))
    else:
        every = resolve_credentials(new)  # the credentials file is read again, once
    return {n: every[n] for n in names}


async def reload(rt: Runtime, path: Path) -> bool:
    """Apply the config at ``path``: accounts added, removed, enabled or disabled, without
    touching the others' connections. A config that does not load, changes anything but
    ``accounts``, or lacks credentials for an account to start is refused
    (``reactor.reload.refused``) and the running one stays. True when applied."""
    old = rt.cfg
    try:
        new = load_config(path)
        problem = _reload_problem(old, new)
        if problem is not None:
            raise ConfigError(f"{path}: {problem}")
        was = {a.name for a in old.enabled_accounts()}
        now = {a.name: a for a in new.enabled_accounts()}
        to_start = [n for n in now if n not in was]
        creds = _reload_credentials(rt, new, to_start)
    except ConfigError as exc:
        log.error("reactor.reload.refused", config=str(path), error=str(exc)[:500])
        return False
    names = {a.name for a in new.accounts}
    to_stop = sorted(was - set(now))
    for name in to_stop:
        session = rt.sessions.pop(name, None)
        if session is not None:
            await session.stop()
        rt.engine.on_account_disabled(name, removed=name not in names)
        client = rt.clients.pop(name, None)
        if client is not None:
            rt.retired_clients.append(client)
    for acc in new.accounts:
        if not acc.enabled and acc.name not in rt.engine.accounts:
            rt.engine.on_account_enabled(AccountState(acc.name, acc.role, None, enabled=False))
    rt.cfg = new
    for name in to_start:
        client = OkxRestClient(
            rt.rest_url,
            creds[name],
            simulated=new.venue.simulated_trading,
            timeout_s=new.timing.request_timeout_s,
            account=name,
            transport=rt.hooks.transport_for(name),
        )
        rt.clients[name] = client
        rt.engine.on_account_enabled(AccountState(name, now[name].role, client, enabled=True))
        _start_session(rt, name, creds[name])
    old_names = {a.name for a in old.accounts}
    log.info(
        "reactor.reloaded",
        config=str(path),
        started=to_start,
        stopped=to_stop,
        added=sorted(names - old_names),
        removed=sorted(old_names - names),
        accounts=len(now),
    )
    rt.status_changed.set()
    return True


def account_by_name(cfg: Config, name: str) -> AccountConfig:
    for acc in cfg.accounts:
        if acc.name == name:
            return acc
    raise ConfigError(f"--account: {name!r} is not an account in the config")
