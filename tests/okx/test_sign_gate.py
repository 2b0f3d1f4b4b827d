"""The process's SignGate: a request signs only when it can be written at once (OKX refuses a
signature older than 30 s, 50102), and the slot is free again once the body is written - not
when the answer comes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from reactor.okx.endpoints import MARGIN_BALANCE
from reactor.okx.rest import OkxRestClient
from reactor.okx.sign_gate import SignGate
from reactor.okx.signing import parse_iso_timestamp
from reactor.sim.server import Simulator
from tests.okx.test_integration_sim import CREDS_A, CREDS_B, CRO, SCENARIO, admin


async def test_a_writer_waits_for_a_slot_before_it_signs() -> None:
    gate = SignGate(slots=1)
    order: list[str] = []

    async def writer(name: str, written: asyncio.Event) -> None:
        async with gate.writing() as trace:
            order.append(f"{name} signs")
            await written.wait()
            await trace("http11.send_request_body.complete", {})
            order.append(f"{name} written")
            await asyncio.sleep(0)  # the answer: still inside the block, slot already back

    first, second = asyncio.Event(), asyncio.Event()
    a = asyncio.create_task(writer("a", first))
    b = asyncio.create_task(writer("b", second))
    await asyncio.sleep(0.01)
    assert order == ["a signs"] and gate.held == 1  # b has not signed: no slot
    first.set()
    await asyncio.sleep(0.01)
    assert order[:3] == ["a signs", "a written", "b signs"]
    second.set()
    await asyncio.gather(a, b)
    assert gate.held == 0


async def test_a_failed_request_gives_its_slot_back() -> None:
    gate = SignGate(slots=1)
    with pytest.raises(RuntimeError):
        async with gate.writing():
            raise RuntimeError("connect refused")
    async with asyncio.timeout(1), gate.writing():
        assert gate.held == 1
    assert gate.held == 0


def test_a_gate_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SignGate(0)


async def test_a_slow_answer_does_not_hold_the_gate(sim_factory: Callable[..., Any]) -> None:
    """Over real sockets: with one slot, account A's margin call hangs 1 s at the exchange
    (applied, answer late); account B's read signs, is written and answered meanwhile."""
    sim: Simulator = await sim_factory(SCENARIO, price_walk=False)
    fault = {"kind": "rest_delay", "account": "A", "path": MARGIN_BALANCE, "delay_s": 1.0}
    await admin(sim, "POST", "/sim/faults", fault)
    gate = SignGate(slots=1)
    a = OkxRestClient(sim.url, CREDS_A, simulated=True, account="A", gate=gate)
    b = OkxRestClient(sim.url, CREDS_B, simulated=True, account="B", gate=gate)
    async with a, b:
        slow = asyncio.create_task(a.margin_balance(CRO, "long", "add", Decimal("1")))
        while not (await admin(sim, "GET", "/sim/requests")):
            await asyncio.sleep(0.01)
        async with asyncio.timeout(0.9):  # before A's answer
            assert await b.get_balance("USDT")
        assert not slow.done()
        await slow
    assert gate.held == 0
    reqs = await admin(sim, "GET", "/sim/requests")
    assert [r["account"] for r in reqs] == ["A", "B"]
    # each was handled within moments of its signature (the window OKX judges)
    assert all(r["time"] - parse_iso_timestamp(r["signed"]) < 0.5 for r in reqs)


async def test_without_the_trace_the_slot_is_back_at_the_answer() -> None:
    """A transport that emits no trace events (httpx.MockTransport) still frees the slot."""
    seen: list[int] = []
    gate = SignGate(slots=1)

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(gate.held)
        return httpx.Response(200, json={"code": "0", "msg": "", "data": [{"ts": "1"}]})

    async with OkxRestClient(
        "http://okx.test", CREDS_A, transport=httpx.MockTransport(handler), gate=gate
    ) as c:
        await asyncio.gather(*(c.server_time_ms() for _ in range(3)))
    assert seen == [1, 1, 1] and gate.held == 0
