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


async def ws_login(
    ws_url: str, acc: str, creds: Credentials, *, simulated: bool, timeout_s: float
) -> str | None:
    """Log in on the private WebSocket once; the problem, or None when OKX accepted it."""
    from websockets.asyncio.client import connect

    proto = PrivateChannelProtocol(acc, creds)
    headers = {"x-simulated-trading": "1"} if simulated else None
    try:
        async with asyncio.timeout(timeout_s):
            async with connect(
                ws_url, additional_headers=headers, ping_interval=None, proxy=None
            ) as ws:
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
    except Exception as exc:  # refused, DNS, TLS, HTTP status: one line, never a secret
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
        if pacer is not None:
            await pacer.acquire()
        problem = await ws_login(
            ws_url,
            acc.name,
            creds,
            simulated=cfg.venue.simulated_trading,
            timeout_s=WS_LOGIN_TIMEOUT_S,
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
