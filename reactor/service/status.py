"""The status server of a running reactor with its write endpoints (``POST /api/pause``,
``/api/resume``, ``/api/maintenance``), each behind the bearer token named by
``maintenance.api_token_env``."""

from __future__ import annotations

import os
from collections.abc import Callable

from aiohttp import web

from reactor.api.maintenance import MaintenanceApi
from reactor.api.pause import ControlApi
from reactor.log import get_logger
from reactor.redaction import register_secrets
from reactor.service.loops import sync_pauses
from reactor.service.runtime import Runtime
from reactor.status.model import StatusSource
from reactor.status.server import StatusServer
from reactor.store import LedgerError, MaintenanceRecord

log = get_logger("reactor.service.status")


def status_server(rt: Runtime, source: StatusSource) -> StatusServer:
    """The status server for ``rt`` (not started), reading ``source``."""
    api = maintenance_api(rt)
    return StatusServer(
        source,
        rt.metrics,
        rt.cfg.status.host,
        rt.cfg.status.port,
        extra_routes=_routes(control_api(rt), api),
    )


def maintenance_api(rt: Runtime) -> MaintenanceApi:
    """``POST /api/maintenance`` with the token from the environment (closed without one)."""
    token = os.environ.get(rt.cfg.maintenance.api_token_env, "")
    if token:
        register_secrets([token])  # never in a log line, even echoed back by a client

    def managed() -> list[str]:  # asked per request: a config reload may add accounts
        return [a.name for a in rt.cfg.accounts if a.role == "sub" and a.enabled]

    def recorded(rec: MaintenanceRecord) -> None:
        rt.engine.on_counts_changed({(rec.account, rec.inst_id, rec.pos_side)})

    return MaintenanceApi(rt.ledger, token, managed, on_recorded=recorded)


def control_api(rt: Runtime) -> ControlApi:
    """``POST /api/pause`` and ``/api/resume`` with the maintenance API's token: one variable
    (``maintenance.api_token_env``, default ``REACTOR_API_TOKEN``) for every write endpoint."""
    token = os.environ.get(rt.cfg.maintenance.api_token_env, "")
    if token:
        register_secrets([token])  # never in a log line, even echoed back by a client

    def apply() -> None:
        try:
            sync_pauses(rt)
        except LedgerError as exc:  # the poll loop reports the ledger; it retries on change
            log.error("ledger.unavailable", reason=getattr(exc, "reason", "error"), error=str(exc))

    return ControlApi(
        rt.ledger,
        token,
        lambda: [a.name for a in rt.cfg.accounts],
        apply,
        token_env=rt.cfg.maintenance.api_token_env,
    )


def _routes(*apis: ControlApi | MaintenanceApi) -> Callable[[web.Application], None]:
    """The status server's write endpoints, each with its own bearer-token check."""

    def add(app_: web.Application) -> None:
        for api in apis:
            api.add_routes(app_)

    return add
