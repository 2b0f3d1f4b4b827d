"""Issue 21 item 4: OKX's code table walked through every endpoint the reactor calls and
through the private WebSocket, against the simulator over real sockets. Each code must mean
the same thing everywhere: the exception and class errors.py gives it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
import structlog

from reactor.okx import rest
from reactor.okx.errors import (
    REST_CODES,
    AmbiguousOutcome,
    ErrorClass,
    Kind,
    OkxError,
    classify,
)
from reactor.okx.rest import OkxRestClient
from reactor.sim.server import Simulator
from tests.okx.test_integration_sim import (
    CREDS_A,
    CRO,
    SCENARIO,
    Recorder,
    admin,
    eventually,
    session,
)

Call = Callable[[OkxRestClient], Awaitable[Any]]

# The private endpoints the reactor calls. Public instruments/time carry no account, so the
# simulator's per-account faults cannot reach them, and the simulator has no orders-history /
# orders-pending routes; all of them go through the same _get and _unwrap.
ENDPOINTS: dict[str, Call] = {
    rest.POSITIONS: lambda c: c.get_positions(),
    rest.BALANCE: lambda c: c.get_balance(),
    "/api/v5/account/config": lambda c: c.get_account_config(),
    rest.ADJUST_LEVERAGE_INFO: lambda c: c.adjust_leverage_info(CRO, Decimal("10"), "long"),
    rest.BILLS: lambda c: c.get_bills(CRO),
    rest.MARGIN_BALANCE: lambda c: c.margin_balance(CRO, "long", "add", Decimal("0.01")),
}


def _walk_codes() -> list[str]:
    """Two codes of every class in the table, and the codes issue 21 names."""
    out: list[str] = ["50001", "50061", "50113", "50004", "50102"]
    for cls in ErrorClass:
        out += [c for c, e in REST_CODES.items() if e.cls is cls and c not in out][:2]
    return out


CODES = _walk_codes()


@pytest.fixture
async def sim(sim_factory: Callable[..., Any]) -> Simulator:
    sim: Simulator = await sim_factory(SCENARIO, price_walk=False)
    return sim


async def _walk(sim: Simulator, path: str, call: Call) -> list[str]:
    """Each code once through ``path``; returns what went wrong (empty: all as the table)."""
    wrong: list[str] = []
    async with OkxRestClient(
        sim.url, CREDS_A, simulated=True, account="A", get_retries=0
    ) as client:
        for code in CODES:
            fault = {"kind": "rest_error", "account": "A", "path": path, "code": code}
            await admin(sim, "POST", "/sim/faults", fault)
            cls = classify(code)
            try:
                await call(client)
            except AmbiguousOutcome as exc:
                if cls.kind is not Kind.AMBIGUOUS or exc.code != code:
                    wrong.append(f"{path} {code}: ambiguous, table says {cls}")
            except OkxError as exc:
                if exc.error_class is not cls or exc.http_status != REST_CODES[code].http:
                    wrong.append(f"{path} {code}: {exc.error_class}/{exc.http_status}")
            else:
                # Only a clock rejection on a read is absorbed: re-synced, then re-sent.
                if not (cls.kind is Kind.CLOCK and path != rest.MARGIN_BALANCE):
                    wrong.append(f"{path} {code}: succeeded")
    return wrong


async def test_every_endpoint_reads_every_class_the_same_way(sim: Simulator) -> None:
    sim.rate_limits = False  # the client paces itself; a 50011 of the simulator's would
    # consume no fault and shift the walk (account/config has no client-side limit)
    assert {classify(c).kind for c in CODES} == set(Kind)
    results = await asyncio.gather(*(_walk(sim, p, call) for p, call in ENDPOINTS.items()))
    wrong = [w for ws in results for w in ws]
    assert wrong == [], "\n".join(wrong)
    reqs = await admin(sim, "GET", "/sim/requests")
    for path in ENDPOINTS:
        seen = {r["code"] for r in reqs if r["path"].split("?")[0] == path}
        assert set(CODES) <= seen, path  # every code really went over the wire


async def test_60032_at_login_stops_the_account(sim: Simulator) -> None:
    """Before: 60032 was not an auth code, so the login was retried forever (7-10 logins in
    35 s, no account.stopped). Now: one login, then account.stopped."""
    fault = {"kind": "ws_login_error", "account": "A", "code": "60032", "count": 5}
    await admin(sim, "POST", "/sim/faults", fault)
    rec = Recorder()
    s = session(sim, rec)
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(s.run(), 5)  # returns by itself: no retry loop
    assert rec.kinds() == ["stopped"] and "60032" in rec.last("stopped")
    events = [e["event"] for e in logs]
    assert events.count("ws.connecting") == 1 and "ws.reconnect" not in events
    assert "account.stopped" in events


async def test_close_4007_stops_the_account(sim: Simulator) -> None:
    rec = Recorder()
    s = session(sim, rec)
    task = asyncio.create_task(s.run())
    await eventually(lambda: rec.connections_with_snapshot() == 1)
    with structlog.testing.capture_logs() as logs:
        await admin(sim, "POST", "/sim/faults", {"kind": "ws_close", "account": "A", "code": 4007})
        await asyncio.wait_for(task, 5)
    assert rec.kinds()[-2:] == ["disconnected", "stopped"]
    assert "4007" in rec.last("stopped") and s.stopped_reason is not None
    events = [e["event"] for e in logs]
    assert "account.stopped" in events and "ws.reconnect" not in events


@pytest.mark.parametrize(("kind", "code"), [("ws_login_error", "63999"), ("ws_close", 4004)])
async def test_transient_ws_codes_reconnect(sim: Simulator, kind: str, code: Any) -> None:
    rec = Recorder()
    s = session(sim, rec)
    if kind == "ws_login_error":
        await admin(sim, "POST", "/sim/faults", {"kind": kind, "account": "A", "code": code})
    task = asyncio.create_task(s.run())
    await eventually(lambda: rec.connections_with_snapshot() == 1)
    if kind == "ws_close":
        await admin(sim, "POST", "/sim/faults", {"kind": kind, "account": "A", "code": code})
        await eventually(lambda: rec.connections_with_snapshot() == 2)
    assert rec.count("stopped") == 0
    await s.stop()
    await asyncio.wait_for(task, 5)
