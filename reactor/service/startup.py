"""Start-up steps of ``reactor run`` that can fail: the status port checked and the ledger
opened before anything touches the exchange (one line, exit 2), and the first exchange calls
retried in-process with back-off while OKX or the network is briefly away."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from reactor.backoff import Backoff
from reactor.config import Config
from reactor.log import error_text, get_logger
from reactor.okx.errors import AmbiguousOutcome, OkxError, RequestNotSent
from reactor.okx.models import PayloadError, parse_instrument
from reactor.okx.rest import OkxRestClient
from reactor.store import Ledger, LedgerError
from reactor.store.backend import open_configured
from reactor.store.state_dir import LEDGER_FILE, StartupError

log = get_logger("reactor.service.startup")

# Start-up calls to the exchange (instruments) that fail for a network reason are retried
# with capped exponential back-off and jitter, in the process, until they work or SIGTERM.
START_BACKOFF_INITIAL_S = 0.5
START_BACKOFF_MAX_S = 30.0
# Ledger writes wait at most this long for another writer (the CLI) before failing typed:
# the ledger is written from the event loop, which must never stall for seconds.
LEDGER_BUSY_TIMEOUT_MS = 500


class StartCancelled(Exception):
    """SIGTERM/SIGINT arrived while start-up was still retrying: exit cleanly."""


async def with_start_retries(
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
            delay = Backoff(initial_s, max_s, jitter=(0.5, 1.0)).delay(attempt)
            log.warning(
                "reactor.start.retry",
                what=what,
                attempt=attempt,
                delay_s=round(delay, 3),
                error=error_text(exc),
            )
        if stop_event is None:
            await asyncio.sleep(delay)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), delay)
        if stop_event.is_set():
            raise StartCancelled(what)


async def load_ct_vals(client: OkxRestClient) -> dict[str, Decimal]:
    """Contract value per swap instrument (``ctVal``); an unparsable instrument is skipped."""
    out = {}
    for raw in await client.get_instruments("SWAP"):
        try:
            inst = parse_instrument(raw)
        except PayloadError as exc:
            log.warning("rest.payload.invalid", what="instrument", reason=str(exc))
            continue
        out[inst.inst_id] = inst.ct_val
    return out


def check_port_free(host: str, port: int) -> None:
    """Refuse a status port another process listens on before touching the exchange."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupError(port_problem(host, port, exc)) from None


def port_problem(host: str, port: int, exc: OSError) -> str:
    """The status port's bind failure as one line."""
    why = "in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
    return f"status.port: {host}:{port} {why}"


def open_ledger(cfg: Config) -> Ledger:
    """The configured ledger; a new SQLite file is an event (counts start at 0)."""
    path = cfg.state_dir / LEDGER_FILE
    new = cfg.storage.kind == "sqlite" and not path.exists()
    try:
        ledger = open_configured(cfg, busy_timeout_ms=LEDGER_BUSY_TIMEOUT_MS)
    except LedgerError as exc:
        raise StartupError(str(exc)) from None
    if new:  # visible: a ledger expected elsewhere means maintenance counts start at 0
        log.warning("ledger.created", path=str(path))
    return ledger
