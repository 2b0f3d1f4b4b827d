"""The status server of a running reactor with its write endpoints (``POST /api/pause``,
``/api/resume``, ``/api/maintenance``), each behind the bearer token named by
``maintenance.api_token_env``."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from aiohttp import web

from reactor.api.maintenance import MaintenanceApi, PositionCheck, Refused
from reactor.api.pause import ControlApi
from reactor.log import get_logger
from reactor.redaction import register_secrets
from reactor.service.loops import sync_pauses
from reactor.service.runtime import Runtime
from reactor.status.metrics import DomainFigures
from reactor.status.model import StatusSource
from reactor.status.server import StatusServer
from reactor.store import Ledger, LedgerError, MaintenanceRecord

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


def ledger_figures(
    ledger: Ledger, clock: Callable[[], float] = time.time
) -> Callable[[], DomainFigures]:
    """``/metrics``' domain gauges, read from the ledger at scrape time: USDT moved by the
    margin calls OKX accepted in the last hour, and the maintenance records that count."""

    def read() -> DomainFigures:
        moved: dict[tuple[str, str], Decimal] = {}
        for e in ledger.journal_since(int(clock() * 1000) - 3_600_000):
            if e.status != "ok" or e.action not in ("add", "reduce"):
                continue
            try:
                amount = Decimal(e.amount)
            except InvalidOperation:
                continue
            moved[(e.account, e.action)] = moved.get((e.account, e.action), Decimal(0)) + amount
        counts: Counter[tuple[str, str]] = Counter(
            (r.account, str(r.source)) for r in ledger.list_maintenance() if r.voided_ms is None
        )
        return DomainFigures(moved, dict(counts))

    return read


def maintenance_api(rt: Runtime) -> MaintenanceApi:
    """``POST /api/maintenance`` with the token from the environment (closed without one)."""
    token = os.environ.get(rt.cfg.maintenance.api_token_env, "")
    if token:
        register_secrets([token])  # never in a log line, even echoed back by a client

    def managed() -> list[str]:  # asked per request: a config reload may add accounts
        return [a.name for a in rt.cfg.accounts if a.role == "sub" and a.enabled]

    def recorded(rec: MaintenanceRecord) -> None:
        rt.engine.on_counts_changed({(rec.account, rec.inst_id, rec.pos_side)})

    return MaintenanceApi(rt.ledger, token, managed, on_recorded=recorded, check=position_check(rt))


# How long a request waits for the book before a 409 or 503: the account's first snapshot just
# after start, or the push of a position the strategy opened a moment ago.
CHECK_WAIT_S = 3.0


def position_check(rt: Runtime, wait_s: float = CHECK_WAIT_S) -> PositionCheck:
    """The checks ``reactor maintenance record`` makes against OKX, answered from what the
    running reactor already knows: its instrument list (every swap OKX listed at start, and any
    fetched since) and its book. Returns the open position's cTime (or the one given)."""

    async def check(account: str, inst_id: str, pos_side: str, c_time: int | None) -> int | None:
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            try:
                return once(account, inst_id, pos_side, c_time)
            except Refused as exc:
                if exc.status == 404 or asyncio.get_running_loop().time() >= deadline:
                    raise
            await asyncio.sleep(0.05)

    def once(account: str, inst_id: str, pos_side: str, c_time: int | None) -> int | None:
        book = rt.engine.book
        open_now = [
            p
            for p in book.positions(account)
            if p.inst_id == inst_id and p.pos_side == pos_side and p.is_open
        ]
        if open_now and c_time is not None:  # listed, whatever the list says; named by cTime
            return c_time
        if open_now and book.is_fresh(account) and open_now[0].c_time > 0:
            # Tied to the position OKX reports now: never left untied (an untied record would
            # count by the local clock, for a position opened later).
            return open_now[0].c_time
        if open_now:
            raise Refused(503, f"position {account} {inst_id} {pos_side} not read yet; retry")
        if inst_id not in rt.engine.ct_vals:
            raise Refused(404, f"instId: {inst_id} is not a swap OKX lists")
        if c_time is not None:  # the caller names its position (late, or already closed)
            return c_time
        if not book.is_fresh(account):
            raise Refused(503, f"positions of {account} not read yet (stream down); retry")
        raise Refused(409, f"no open position {account} {inst_id} {pos_side}: nothing to record")

    return check


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
