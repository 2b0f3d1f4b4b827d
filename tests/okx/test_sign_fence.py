"""The exchange fence: the REST client signs, then asks its fence, then sends; the simulator
refuses a request signed further than ``simulator.timestamp_window_s`` ago (OKX: 30 s, 50102
"Timestamp request expired", docs/spec/okx-v5.md)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
import yaml

from reactor.okx.credentials import Credentials
from reactor.okx.errors import OkxError, RequestNotSent
from reactor.okx.rest import OkxRestClient
from reactor.okx.signing import iso_timestamp
from tests.conftest import SCENARIOS
from tests.sim.helpers import KEY, MARGIN, PASSPHRASE, POSITIONS, SECRET, signed

CREDS = Credentials(KEY, SECRET, PASSPHRASE)


def _scenario(window_s: float | None) -> dict[str, Any]:
    raw = yaml.safe_load((SCENARIOS / "cro.yaml").read_text())
    if window_s is not None:
        raw.setdefault("simulator", {})["timestamp_window_s"] = window_s
    return raw


def _margin_requests(sim: Any) -> list[dict[str, Any]]:
    return [r for r in sim.rest.requests if r.get("path") == MARGIN]


async def test_simulator_window_defaults_to_okx_30_s(sim_factory: Any) -> None:
    sim = await sim_factory(_scenario(None), price_walk=False)
    assert sim.rest.timestamp_window_s == 30.0
    ok = await signed(sim.url, "GET", POSITIONS, ts=iso_timestamp(time.time() - 29))
    assert ok.json()["code"] == "0"
    late = await signed(sim.url, "GET", POSITIONS, ts=iso_timestamp(time.time() - 31))
    assert (late.status_code, late.json()["code"]) == (401, "50102")
    assert late.json()["msg"].startswith("Timestamp request expired")


async def test_simulator_window_scales(sim_factory: Any) -> None:
    sim = await sim_factory(_scenario(1.5), price_walk=False)
    ok = await signed(sim.url, "GET", POSITIONS, ts=iso_timestamp(time.time() - 1.0))
    assert ok.json()["code"] == "0"
    late = await signed(sim.url, "GET", POSITIONS, ts=iso_timestamp(time.time() - 2.0))
    assert late.json()["code"] == "50102"


async def test_past_the_signing_deadline_nothing_is_sent(sim_factory: Any) -> None:
    sim = await sim_factory(_scenario(None), price_walk=False)
    order: list[str] = []

    def clock() -> float:
        order.append("sign")
        return time.time()

    def fence() -> bool:
        order.append("fence")
        return False

    async with OkxRestClient(sim.url, CREDS, simulated=True, clock=clock) as client:
        client.sign_fence = fence
        before = len(_margin_requests(sim))
        with pytest.raises(RequestNotSent, match="signing deadline"):
            await client.margin_balance("CRO-USDT-SWAP", "long", "add", Decimal("1"))
        assert order == ["sign", "fence"]  # signed first, then asked
        assert len(_margin_requests(sim)) == before  # the simulator saw nothing
        # Reads are never fenced: a standby reads its snapshot without the lease.
        assert await client.get_positions()
        client.sign_fence = lambda: True
        await client.margin_balance("CRO-USDT-SWAP", "long", "add", Decimal("1"))
        assert len(_margin_requests(sim)) == before + 1


class _Paused(httpx.AsyncBaseTransport):
    """Holds every request for ``delay_s`` before it leaves: a pause after the fence check."""

    def __init__(self, delay_s: float) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._delay_s = delay_s

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self._delay_s)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_pause_after_the_check_is_refused_by_the_exchange(sim_factory: Any) -> None:
    """Signed within the deadline, then held past the window: OKX (the simulator) refuses it
    with 50102, nothing moves. This is what bounds a stale leader's last signature."""
    sim = await sim_factory(_scenario(0.3), price_walk=False)
    async with OkxRestClient(
        sim.url, CREDS, simulated=True, transport=_Paused(0.6), get_retries=0
    ) as client:
        client.sign_fence = lambda: True
        with pytest.raises(OkxError) as err:
            await client.margin_balance("CRO-USDT-SWAP", "long", "add", Decimal("1"))
        assert err.value.code == "50102"
