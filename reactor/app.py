"""Process wiring for ``reactor run``: config -> clients, sessions, engine, loops; clean stop.

Everything here is I/O glue; the decisions live in :mod:`reactor.engine` and below.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from reactor.config import AccountConfig, Config, ConfigError, resolve_credentials
from reactor.engine import AccountState, Engine, EngineSettings
from reactor.ledger import Ledger
from reactor.log import get_logger
from reactor.okx.credentials import Credentials
from reactor.okx.errors import OkxError
from reactor.okx.models import PayloadError, parse_instrument
from reactor.okx.pacing import ConnectPacer
from reactor.okx.rest import AmbiguousOutcome, OkxRestClient, RequestNotSent
from reactor.okx.ws import PrivateSession, SessionHandler
from reactor.okx.ws_protocol import PrivateChannelProtocol
from reactor.status.metrics import Metrics
from reactor.status.server import StatusServer
from reactor.systemd import SystemdNotifier, run_watchdog

log = get_logger("reactor.app")

LEDGER_FILE = "reactor.sqlite"
DRAIN_TIMEOUT_S = 10.0


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


async def start(cfg: Config, *, dry_run: bool = False, hooks: StartHooks | None = None) -> Runtime:
    """Build and start everything; raises ConfigError before anything touches the exchange."""
    hooks = hooks or StartHooks()
    sim = None
    if cfg.venue.embedded:
        from reactor.sim.scenario import load_scenario
        from reactor.sim.server import Simulator

        assert cfg.venue.scenario is not None
        scenario = load_scenario(cfg.venue.scenario)
        creds = _embedded_credentials(cfg, scenario)
        sim = Simulator(scenario, price_walk=cfg.venue.price_walk)
        await sim.start("127.0.0.1", 0)
        rest_url, ws_url = sim.url, sim.ws_url
        log.info("sim.embedded", url=rest_url, scenario=str(cfg.venue.scenario))
    else:
        creds = resolve_credentials(cfg)
        rest_url, ws_url = cfg.venue.urls()

    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(cfg.state_dir / LEDGER_FILE)
    timeout = cfg.timing.request_timeout_s
    simulated = cfg.venue.simulated_trading
    clients = {
        name: OkxRestClient(
            rest_url,
            c,
            simulated=simulated,
            timeout_s=timeout,
            account=name,
            transport=hooks.transport(name) if hooks.transport else None,
        )
        for name, c in creds.items()
    }
    first = next(iter(clients.values()))
    ct_vals = await _load_ct_vals(first)
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
    )
    engine = Engine(settings, accounts, ct_vals, ledger, metrics=Metrics())
    engine.recover_journal()
    pacer = hooks.pacer or ConnectPacer()
    wrap = hooks.session_handler
    headers = {"x-simulated-trading": "1"} if simulated else None
    timing = cfg.timing
    sessions = {
        name: PrivateSession(
            name,
            ws_url,
            c,
            wrap(name, engine) if wrap else engine,
            pacer=pacer,
            extra_headers=headers,
            ping_interval_s=timing.ws_ping_interval_s,
            pong_timeout_s=timing.ws_pong_timeout_s,
            backoff_max_s=timing.ws_backoff_max_s,
            resync_clock=clients[name].sync_clock,  # one 60006 retry with OKX's clock
            protocol_class=hooks.protocol_class,
        )
        for name, c in creds.items()
    }
    rt = Runtime(cfg, engine, ledger, clients, sessions, rest_url, ws_url, sim=sim)
    for session in sessions.values():
        rt.tasks.append(asyncio.create_task(session.run()))
    rt.tasks.append(asyncio.create_task(_reconcile_loop(rt)))
    rt.tasks.append(asyncio.create_task(_ledger_loop(rt)))
    if cfg.status.enabled:
        server = StatusServer(engine, engine.metrics, cfg.status.host, cfg.status.port)
        rt.status_url = await server.start()
        rt.tasks.append(asyncio.create_task(_hold(server.stop)))
    log.info(
        "reactor.started",
        accounts=len(cfg.enabled_accounts()),
        venue=cfg.venue.kind,
        rest_url=rest_url,
        dry_run=dry_run,
        instruments=len(ct_vals),
    )
    return rt


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
            await rt.engine.reconcile_account(name)


async def _ledger_loop(rt: Runtime) -> None:
    """Notice maintenance records written by other processes (the CLI) within a poll tick."""
    ledger = rt.ledger
    version = ledger.data_version()
    records = ledger.list_maintenance()
    last_id = records[-1].id if records else 0
    while True:
        await asyncio.sleep(rt.cfg.timing.ledger_poll_ms / 1000)
        now = ledger.data_version()
        if now == version:
            continue
        version = now
        fresh = ledger.records_after(last_id)
        if not fresh:
            continue
        last_id = fresh[-1].id
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


async def stop(rt: Runtime) -> None:
    log.info("reactor.stopping")
    for session in rt.sessions.values():
        await session.stop()
    await rt.engine.drain(DRAIN_TIMEOUT_S)
    for task in rt.tasks:
        task.cancel()
    await asyncio.gather(*rt.tasks, return_exceptions=True)
    for client in rt.clients.values():
        await client.aclose()
    rt.ledger.close()
    if rt.sim is not None:
        await rt.sim.stop()
    log.info("reactor.stopped", calls_sent=rt.engine.calls_sent)


async def run(cfg: Config, *, dry_run: bool = False) -> int:
    """``reactor run``: start, serve until SIGINT/SIGTERM, stop cleanly."""
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop_event.set)
    try:
        rt = await start(cfg, dry_run=dry_run)
    except (OkxError, RequestNotSent, AmbiguousOutcome) as exc:
        log.error("reactor.start.failed", error=str(exc))
        return 1
    tune_gc()
    notifier = SystemdNotifier()
    notifier.ready(f"{len(rt.sessions)} accounts")
    watchdog = asyncio.create_task(run_watchdog(notifier, lambda: True))
    await stop_event.wait()
    notifier.stopping()
    watchdog.cancel()
    await stop(rt)
    return 0


def account_by_name(cfg: Config, name: str) -> AccountConfig:
    for acc in cfg.accounts:
        if acc.name == name:
            return acc
    raise ConfigError(f"--account: {name!r} is not an account in the config")
