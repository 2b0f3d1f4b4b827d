"""``reactor check-config --online``: log in to every enabled account and check its API key.

For each account: ``GET /api/v5/account/config`` (the key, secret, passphrase and signing work;
``perm`` lists what the key may do), ``GET /api/v5/account/positions`` (the reads the reactor
makes) and a login on the private WebSocket, paced like the reactor's own connections (OKX
allows 3 new connections per second per IP, so 500 accounts take about 170 s). A managed
(``sub``) account needs ``read_only`` and ``trade`` (margin-balance is a trade call, DOC-TA
"Increase/decrease margin" permission: Trade); the ``main`` account is only read. A key that
may ``withdraw`` is allowed but named in a warning: the reactor never needs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from reactor.config import AccountConfig, Config
from reactor.log import error_text, get_logger
from reactor.okx.credentials import Credentials
from reactor.okx.errors import AmbiguousOutcome, OkxError, RequestNotSent
from reactor.okx.pacing import ConnectPacer
from reactor.okx.ws_protocol import LoginFailed, LoginOk, PrivateChannelProtocol
from reactor.redaction import redact_text
from reactor.service.accounts import configured_client

log = get_logger(__name__)

CONCURRENCY = 20  # accounts checked at once (each has its own per-User-ID rate limits)


@dataclass(frozen=True, slots=True)
class AccountCheck:
    account: str
    problem: str | None  # None: the account passed
    perm: str = ""
    positions: int = 0


def permission_problem(perm: str, role: str) -> str | None:
    """What the key lacks for ``role`` (``perm`` as OKX reports it), or None."""
    have = {p.strip() for p in perm.split(",") if p.strip()}
    need = ["read_only"] if role == "main" else ["read_only", "trade"]
    missing = [p for p in need if p not in have]
    if not missing:
        return None
    return f"API key lacks {' and '.join(missing)} permission (has: {perm or 'none'})"


WS_LOGIN_TIMEOUT_S = 10.0
WS_CONNECT_ATTEMPTS = 4  # a 429 on the upgrade is retried (OKX: 3 new connections/s per IP)
WS_RETRY_BACKOFF_S = 1.0  # doubled after each 429: one window of OKX's count, then two...


def _is_http_429(exc: BaseException) -> bool:
    """The upgrade was refused with HTTP 429 (OKX's per-IP connection limit)."""
    from websockets.exceptions import InvalidStatus

    return isinstance(exc, InvalidStatus) and exc.response.status_code == 429


async def ws_login(
    ws_url: str,
    acc: str,
    creds: Credentials,
    *,
    simulated: bool,
    timeout_s: float,
    pacer: ConnectPacer | None = None,
    attempts: int = WS_CONNECT_ATTEMPTS,
    backoff_s: float = WS_RETRY_BACKOFF_S,
) -> str | None:
    """Log in on the private WebSocket once; the problem, or None when OKX accepted it.

    The connect holds a ``pacer`` slot until it is answered, as ``run``'s sessions do (counting
    only its start let a fourth connection into OKX's second: a false "HTTP 429"); a 429 that
    still happens (another process on the IP) is retried after a back-off, never reported as
    a credentials problem unless every attempt was refused."""
    from websockets.asyncio.client import ClientConnection, connect

    pacer = pacer or ConnectPacer()
    proto = PrivateChannelProtocol(acc, creds)
    headers = {"x-simulated-trading": "1"} if simulated else None
    delay = backoff_s
    ws: ClientConnection | None = None
    for attempt in range(1, attempts + 1):
        try:
            async with pacer.slot():
                ws = await connect(
                    ws_url,
                    additional_headers=headers,
                    ping_interval=None,
                    proxy=None,
                    open_timeout=timeout_s,
                )
            break
        except Exception as exc:  # refused, DNS, TLS, HTTP status: one line, never a secret
            if _is_http_429(exc) and attempt < attempts:
                log.info("config.online.ws_retry", account=acc, attempt=attempt, delay_s=delay)
                await asyncio.sleep(delay)
                delay *= 2
                continue
            if isinstance(exc, TimeoutError):
                return f"WebSocket login: no answer within {timeout_s:g} s"
            return redact_text(f"WebSocket unreachable: {type(exc).__name__}: {exc}")[:300]
    assert ws is not None
    try:
        async with asyncio.timeout(timeout_s):
            async with ws:
                await ws.send(proto.login_frame())
                async for frame in ws:
                    text = frame if isinstance(frame, str) else frame.decode()
                    for event in proto.receive(text):
                        if isinstance(event, LoginOk):
                            return None
                        if isinstance(event, LoginFailed):
                            return f"WebSocket login refused: {event.code} {event.msg}"
        return "WebSocket closed before the login answer"
    except TimeoutError:
        return f"WebSocket login: no answer within {timeout_s:g} s"
    except Exception as exc:  # reset mid-login: one line, never a secret
        return redact_text(f"WebSocket unreachable: {error_text(exc, None)}")[:300]


async def check_account(
    cfg: Config,
    acc: AccountConfig,
    creds: Credentials,
    rest_url: str,
    ws_url: str | None = None,
    pacer: ConnectPacer | None = None,
) -> AccountCheck:
    async with configured_client(cfg, rest_url, creds, acc.name) as client:
        try:
            rows = await client.get_account_config()
            perm = str(rows[0].get("perm", "")) if rows else ""
            positions = await client.get_positions("SWAP")
        except OkxError as exc:
            return AccountCheck(acc.name, f"OKX refused: {exc}")
        except (RequestNotSent, AmbiguousOutcome) as exc:
            return AccountCheck(acc.name, f"unreachable: {exc}")
    problem = permission_problem(perm, acc.role)
    if problem is None and ws_url is not None:
        problem = await ws_login(
            ws_url,
            acc.name,
            creds,
            simulated=cfg.venue.simulated_trading,
            timeout_s=WS_LOGIN_TIMEOUT_S,
            pacer=pacer,
        )
    return AccountCheck(acc.name, problem, perm, len(positions))


async def check_accounts(
    cfg: Config,
    creds: Mapping[str, Credentials],
    rest_url: str,
    ws_url: str | None = None,
    pacer: ConnectPacer | None = None,
) -> list[AccountCheck]:
    """Every enabled account, ``CONCURRENCY`` at a time; each result logged as an event.
    ``ws_url``: also log in on the private WebSocket, ``pacer`` spacing the connections."""
    slots = asyncio.Semaphore(CONCURRENCY)
    pacer = pacer or ConnectPacer()

    async def one(acc: AccountConfig) -> AccountCheck:
        async with slots:
            result = await check_account(cfg, acc, creds[acc.name], rest_url, ws_url, pacer)
        if result.problem is None:
            if "withdraw" in result.perm.split(","):
                log.warning("config.online.withdraw_permission", account=acc.name)
            log.info(
                "config.online.ok", account=acc.name, perm=result.perm, positions=result.positions
            )
        else:
            log.error("config.online.failed", account=acc.name, reason=result.problem)
        return result

    return list(await asyncio.gather(*(one(a) for a in cfg.enabled_accounts())))
