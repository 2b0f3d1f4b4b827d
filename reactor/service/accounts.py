"""One account's I/O parts, built from the config: its credentials (from the embedded
simulator's scenario), its REST client and its private WebSocket session. Used at start-up and
by a reload that starts an account."""

from __future__ import annotations

from typing import Any

import httpx

from reactor.config import Config, ConfigError
from reactor.okx.clock import ExchangeClock
from reactor.okx.credentials import Credentials
from reactor.okx.rest import OkxRestClient
from reactor.okx.sign_gate import SignGate
from reactor.okx.ws import PrivateSession
from reactor.service.margins import MarginTap
from reactor.service.runtime import Runtime, StartHooks


def embedded_credentials(cfg: Config, scenario: Any) -> dict[str, Credentials]:
    """Each enabled account's keys from the simulator scenario (the embedded venue)."""
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


def rest_client(
    cfg: Config,
    rest_url: str,
    name: str,
    creds: Credentials,
    hooks: StartHooks,
    clock: ExchangeClock,
    gate: SignGate,
) -> OkxRestClient:
    """The account's REST client (its own signing and rate windows; the process's one reading
    of OKX's clock: the offset is the host's, not the account's, and ``public/time`` is
    limited per IP - one measurement serves every account instead of one per account; and the
    process's one :class:`SignGate`, so a burst never signs more than it can write)."""
    transport = hooks.transport_for(name)
    return configured_client(
        cfg, rest_url, creds, name, transport=transport, clock=clock, gate=gate
    )


def start_session(rt: Runtime, name: str, creds: Credentials) -> PrivateSession:
    """The account's private WebSocket session, started (paced with every other account's)."""
    cfg, timing = rt.cfg, rt.cfg.timing
    wrap = rt.hooks.session_handler
    client = rt.clients[name]
    handler = MarginTap(rt.engine, rt.margins)  # the chart's history, then the engine
    session = PrivateSession(
        name,
        rt.ws_url,
        creds,
        wrap(name, handler) if wrap else handler,
        pacer=rt.pacer,
        extra_headers={"x-simulated-trading": "1"} if cfg.venue.simulated_trading else None,
        ping_interval_s=timing.ws_ping_interval_s,
        pong_timeout_s=timing.ws_pong_timeout_s,
        backoff_max_s=timing.ws_backoff_max_s,
        # One reading of OKX's clock: the REST clients', which a 60006 re-syncs.
        clock=client.clock,
        resync_clock=client.sync_clock,
        # Counts from fills: orders on the same connection (managed sub-accounts only).
        orders=cfg.maintenance.rule() is not None and _role(cfg, name) == "sub",
        protocol_class=rt.hooks.protocol_class,
    )
    rt.sessions[name] = session
    rt.spawn(f"ws:{name}", session.run())
    return session


def _role(cfg: Config, name: str) -> str:
    return next((a.role for a in cfg.accounts if a.name == name), "sub")


def configured_client(
    cfg: Config,
    rest_url: str,
    credentials: Credentials,
    account: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: ExchangeClock | None = None,
    gate: SignGate | None = None,
) -> OkxRestClient:
    """A client as the config sets it (demo header, request timeout): the running reactor's
    per-account clients and the one-shot reads of ``plan``, ``check-config --online`` and
    ``maintenance record``."""
    return OkxRestClient(
        rest_url,
        credentials,
        simulated=cfg.venue.simulated_trading,
        timeout_s=cfg.timing.request_timeout_s,
        account=account,
        transport=transport,
        clock=clock if clock is not None else ExchangeClock(),
        gate=gate,
    )
