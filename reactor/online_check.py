"""``reactor check-config --online``: log in to every enabled account and check its API key.

For each account: ``GET /api/v5/account/config`` (the key, secret, passphrase and signing work;
``perm`` lists what the key may do) and ``GET /api/v5/account/positions`` (the reads the reactor
makes). A managed (``sub``) account needs ``read_only`` and ``trade`` (margin-balance is a
trade call, DOC-TA "Increase/decrease margin" permission: Trade); the ``main`` account is only
read. A key that may ``withdraw`` is allowed but named in a warning: the reactor never needs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from reactor.config import AccountConfig, Config
from reactor.log import get_logger
from reactor.okx.credentials import Credentials
from reactor.okx.errors import OkxError
from reactor.okx.rest import AmbiguousOutcome, OkxRestClient, RequestNotSent

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


async def check_account(
    cfg: Config, acc: AccountConfig, creds: Credentials, rest_url: str
) -> AccountCheck:
    async with OkxRestClient(
        rest_url,
        creds,
        simulated=cfg.venue.simulated_trading,
        timeout_s=cfg.timing.request_timeout_s,
        account=acc.name,
    ) as client:
        try:
            rows = await client.get_account_config()
            perm = str(rows[0].get("perm", "")) if rows else ""
            positions = await client.get_positions("SWAP")
        except OkxError as exc:
            return AccountCheck(acc.name, f"OKX refused: {exc}")
        except (RequestNotSent, AmbiguousOutcome) as exc:
            return AccountCheck(acc.name, f"unreachable: {exc}")
    return AccountCheck(acc.name, permission_problem(perm, acc.role), perm, len(positions))


async def check_accounts(
    cfg: Config, creds: Mapping[str, Credentials], rest_url: str
) -> list[AccountCheck]:
    """Every enabled account, ``CONCURRENCY`` at a time; each result logged as an event."""
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(acc: AccountConfig) -> AccountCheck:
        async with slots:
            result = await check_account(cfg, acc, creds[acc.name], rest_url)
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
