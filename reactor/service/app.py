"""Process wiring for ``reactor run`` (the composition root): config -> clients, sessions,
engine, loops; serve until a signal; clean stop.

Everything here is I/O glue and only the order of things; the parts live beside it in
:mod:`reactor.service`: ``runtime`` (what a running reactor holds, the seams), ``startup``
(start-up checks and retries), ``accounts`` (clients and sessions), ``loops`` (reconcile and
ledger poll), ``status`` (status server and write endpoints), ``reload_plan`` / ``reload``
(SIGHUP). The decisions live in :mod:`reactor.engine` and below.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

from reactor.config import Config, resolve_credentials
from reactor.domain.fills import FillGate
from reactor.engine import AccountState, Engine, EngineSettings, Role
from reactor.fdlimit import raise_nofile_limit
from reactor.log import add_tap, flush_repeats, get_logger, remove_tap
from reactor.okx.clock import ExchangeClock
from reactor.okx.credentials import Credentials
from reactor.okx.pacing import ConnectPacer
from reactor.okx.sign_gate import SignGate
from reactor.service import ha
from reactor.service.accounts import embedded_credentials, rest_client, start_session
from reactor.service.loops import hold, ledger_loop, pause_map, reconcile_loop, sync_pauses
from reactor.service.process import GC_THRESHOLDS, tune_gc
from reactor.service.reload import reload, reload_loop
from reactor.service.runtime import (
    Runtime,
    StartHooks,
    WithLedgerHealth,
    WithSessionState,
    on_loop_exception,
)
from reactor.service.startup import (
    StartCancelled,
    check_port_free,
    load_ct_vals,
    open_ledger,
    port_problem,
    with_start_retries,
)
from reactor.service.status import ledger_figures, status_server
from reactor.service.systemd import (
    SystemdNotifier,
    reload_refused_text,
    run_status,
    run_watchdog,
    status_text,
)
from reactor.status.metrics import Metrics
from reactor.status.model import StatusSource
from reactor.status.notify import Notifier, NotifySettings, run_notifier
from reactor.status.server import StatusServer
from reactor.status.snapshot import EngineStatus
from reactor.store import Ledger, LedgerError
from reactor.store.lease import LeaseUnavailable
from reactor.store.state_dir import LEDGER_FILE, StartupError, StateLock, prepare_state_dir

log = get_logger("reactor.service.app")

DRAIN_TIMEOUT_S = 10.0

__all__ = [
    "GC_THRESHOLDS",
    "LEDGER_FILE",
    "Runtime",
    "StartCancelled",
    "StartHooks",
    "StartupError",
    "reload",
    "run",
    "start",
    "stop",
    "tune_gc",
]


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
    asyncio.get_running_loop().set_exception_handler(on_loop_exception)
    creds = None if cfg.venue.embedded else resolve_credentials(cfg)
    prepare_state_dir(cfg.state_dir)
    lock = StateLock(cfg.state_dir)
    lock.acquire()
    cleanup: list[Callable[[], Awaitable[None]]] = []
    try:
        if cfg.status.enabled:
            check_port_free(cfg.status.host, cfg.status.port)
        ledger = open_ledger(cfg)

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
        creds = embedded_credentials(cfg, scenario)
        sim = Simulator(scenario, price_walk=cfg.venue.price_walk)
        await sim.start("127.0.0.1", 0)
        cleanup.append(sim.stop)
        rest_url, ws_url = sim.url, sim.ws_url
        log.info("sim.embedded", url=rest_url, scenario=str(cfg.venue.scenario))
    else:
        assert creds is not None
        rest_url, ws_url = cfg.venue.urls()

    clock = ExchangeClock()  # one reading of OKX's clock for every account's client
    gate = SignGate()  # and one bound on requests signed but not yet written
    clients = {
        name: rest_client(cfg, rest_url, name, c, hooks, clock, gate) for name, c in creds.items()
    }
    for client in clients.values():
        cleanup.append(client.aclose)
    first = next(iter(clients.values()))
    ct_vals = await with_start_retries("instruments", lambda: load_ct_vals(first), stop_event)
    # OKX's clock read while the process is quiet: a first reading taken inside a burst (the
    # first bills read of a funding settlement) is off by up to half a slow round trip.
    await with_start_retries("clock", first.sync_clock, stop_event)
    accounts = {
        a.name: AccountState(a.name, Role(a.role), clients.get(a.name), enabled=a.enabled)
        for a in cfg.accounts
    }
    metrics = Metrics()
    metrics.set_domain(ledger_figures(ledger))
    engine = _engine(cfg, accounts, ct_vals, ledger, metrics, dry_run)
    try:
        if cfg.ha is None:  # HA: the lease holder's takeover recovers (service/ha.py)
            engine.recover_journal()
        pauses = ledger.pauses()
    except LedgerError as exc:
        raise StartupError(str(exc)) from None
    engine.on_paused(pause_map(pauses))
    if pauses:
        log.info("control.pauses.loaded", pauses=len(pauses))
    pacer = hooks.pacer or ConnectPacer()
    rt = Runtime(cfg, engine, ledger, {}, rest_url, ws_url, sim=sim, metrics=metrics)
    rt.dry_run, rt.pacer, rt.hooks = dry_run, pacer, hooks
    rt.exchange_clock, rt.sign_gate = clock, gate
    rt.pauses_applied = frozenset(p.key for p in pauses)  # logged as control.pauses.loaded
    status_url = None
    server: StatusServer | None = None
    source: StatusSource = WithSessionState(
        WithLedgerHealth(
            EngineStatus(
                engine,
                venue=cfg.venue.kind,
                dry_run=dry_run,
                journal=ledger.journal_since,
                margins=rt.margins,
            ),
            ledger,
        ),
        lambda: rt.sessions,
    )
    if cfg.ha is not None:  # a standby until the lease task acquires
        try:
            rt.ha = ha.attach(rt, cfg.ha)
        except (LeaseUnavailable, ha.ScopeClash) as exc:
            raise StartupError(str(exc)) from None
        sync_pauses(rt)
        source = ha.WithHaHealth(source, rt.ha)
    rt.status_source = source
    if cfg.status.enabled:
        server = status_server(rt, source)
        try:
            status_url = await server.start()
        except OSError as exc:
            raise StartupError(port_problem(cfg.status.host, cfg.status.port, exc)) from None
        cleanup.append(server.stop)
    rt.status_url = status_url
    for name, c in creds.items():
        start_session(rt, name, c)
    if rt.ha is not None:
        rt.spawn("ha", rt.ha.run())
    rt.spawn("reconcile", reconcile_loop(rt))
    rt.spawn("ledger", ledger_loop(rt))
    notifier = direct_notifier(cfg)
    if notifier is not None:
        rt.spawn("notify", _notify(notifier))
    if server is not None:
        rt.spawn("status", hold(server.stop))
    log.info(
        "reactor.started",
        accounts=len(cfg.enabled_accounts()),
        venue=cfg.venue.kind,
        rest_url=rest_url,
        dry_run=dry_run,
        instruments=len(ct_vals),
    )
    return rt


def _engine(
    cfg: Config,
    accounts: dict[str, AccountState],
    ct_vals: dict[str, Decimal],
    ledger: Ledger,
    metrics: Metrics,
    dry_run: bool,
) -> Engine:
    """The engine with its settings from the config (not yet recovered)."""
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
        record_grace_s=cfg.maintenance.record_grace_s,
    )
    maint = cfg.maintenance
    rule = maint.rule()  # None: counts from records only, the orders channel is not read
    return Engine(
        settings,
        accounts,
        ct_vals,
        ledger,
        observer=metrics,
        fills=FillGate(rule, grace_ms=maint.grace_ms) if rule is not None else None,
        recovery_sources=tuple(maint.recover_from),
    )


async def stop(rt: Runtime) -> None:
    log.info("reactor.stopping")
    rt.metrics.stopping()  # the disconnects that follow are not reconnects
    try:
        for session in rt.sessions.values():
            await session.stop()
        await rt.engine.drain(DRAIN_TIMEOUT_S)
        if rt.ha is not None:
            await rt.ha.release()
        for task in rt.tasks:
            task.cancel()
        await asyncio.gather(*rt.tasks, return_exceptions=True)
        for client in [*rt.clients.values(), *rt.retired_clients]:
            await client.aclose()
        rt.ledger.close()
        if rt.ha is not None:
            rt.ha.store.close()
        if rt.sim is not None:
            await rt.sim.stop()
    finally:
        if rt.lock is not None:
            rt.lock.release()
    log.info("reactor.stopped", calls_sent=rt.engine.calls_sent)


def direct_notifier(cfg: Config) -> Notifier | None:
    """The webhook / Telegram notifier of ``notify``, or None when neither is configured."""
    n = cfg.notify
    if not n.enabled:
        return None
    token = os.environ.get(n.telegram_token_env) or None
    if n.telegram_chat_id and token is None:
        log.warning(
            "notify.failed",
            channel="telegram",
            alert="",
            error=f"{n.telegram_token_env} is not set: no Telegram messages",
        )
    settings = NotifySettings(
        webhook_url=n.webhook_url,
        telegram_token=token,
        telegram_chat_id=n.telegram_chat_id,
        telegram_api_url=n.telegram_api_url,
        group_wait_s=n.group_wait_s,
        group_interval_s=n.group_interval_s,
        max_per_hour=n.max_per_hour,
        runbook=n.runbook_url,
    )
    return Notifier(settings)


async def _notify(notifier: Notifier) -> None:
    """Read the process's own lines while the reactor runs, and send what is due."""
    add_tap(notifier.observe)
    try:
        await run_notifier(notifier)
    finally:
        remove_tap(notifier.observe)


async def _flush_log_repeats(every_s: float = 1.0) -> None:
    """A storm of identical lines that stopped is still counted (``log.repeated``) within a
    second of its interval ending, not only when the next line is written."""
    while True:
        await asyncio.sleep(every_s)
        flush_repeats()


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

    def line() -> str:
        return status_text(rt.status_snapshot(), dry_run=rt.dry_run)

    def line_with_refusal() -> str:  # a refused reload stays named until one is applied
        refused = rt.reload_refused
        return f"{reload_refused_text(refused)}; {line()}" if refused else line()

    helpers = [
        asyncio.create_task(run_watchdog(notifier, lambda: True)),
        asyncio.create_task(run_status(notifier, line_with_refusal, wake=rt.status_changed)),
        asyncio.create_task(reload_loop(rt, config_path, reload_event, notifier, line)),
        asyncio.create_task(_flush_log_repeats()),
    ]
    await stop_event.wait()
    notifier.stopping()
    for task in helpers:
        task.cancel()
    await asyncio.gather(*helpers, return_exceptions=True)
    await stop(rt)
    return 0
