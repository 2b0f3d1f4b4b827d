"""Signed raw requests against the simulator, to test OKX's exact answers."""

from __future__ import annotations

from typing import Any

import httpx

from reactor import testing
from reactor.testing import MARGIN_BALANCE as MARGIN
from reactor.testing import POSITIONS, admin

__all__ = ["KEY", "MARGIN", "PASSPHRASE", "POSITIONS", "SECRET", "admin", "signed"]

KEY, SECRET, PASSPHRASE = "sim-key-wu666666", "sim-secret-wu666666", "sim-pass-wu666666"


async def signed(
    url: str,
    method: str,
    path: str,
    body: str = "",
    *,
    key: str = KEY,
    secret: str = SECRET,
    passphrase: str = PASSPHRASE,
    **kwargs: Any,
) -> httpx.Response:
    """:func:`reactor.testing.signed` with the CRO scenario's wu666666 credentials."""
    return await testing.signed(
        url, method, path, body, key=key, secret=secret, passphrase=passphrase, **kwargs
    )
