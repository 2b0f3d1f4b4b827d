"""Signed raw requests against the simulator, to test OKX's exact answers."""

from __future__ import annotations

import time
from typing import Any

import httpx

from reactor.okx.signing import iso_timestamp, rest_sign

KEY, SECRET, PASSPHRASE = "sim-key-wu666666", "sim-secret-wu666666", "sim-pass-wu666666"
MARGIN = "/api/v5/account/position/margin-balance"
POSITIONS = "/api/v5/account/positions"


async def signed(
    url: str,
    method: str,
    path: str,
    body: str = "",
    *,
    key: str = KEY,
    secret: str = SECRET,
    passphrase: str = PASSPHRASE,
    ts: str | None = None,
    drop: str | None = None,
    sign: str | None = None,
    timeout: float = 5.0,
    simulated: bool = True,
) -> httpx.Response:
    """A signed request; ``simulated`` sends ``x-simulated-trading: 1`` (the scenario's keys
    are demo keys by default)."""
    ts = ts or iso_timestamp(time.time())
    headers = {
        "OK-ACCESS-KEY": key,
        "OK-ACCESS-SIGN": sign or rest_sign(secret, ts, method, path, body),
        "OK-ACCESS-TIMESTAMP": ts,
        "OK-ACCESS-PASSPHRASE": passphrase,
        "Content-Type": "application/json",
    }
    if simulated:
        headers["x-simulated-trading"] = "1"
    if drop:
        del headers[drop]
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        return await client.request(method, path, content=body.encode(), headers=headers)


async def admin(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient(base_url=url) as client:
        r = await (client.get(path) if body is None else client.post(path, json=body))
        r.raise_for_status()
        return r.json()
