"""The reactor inside OKX's WebSocket connection limit (DOC-WS: 3 connection requests per
second per IP; docs/spec/okx-fidelity.md §7.4): ten accounts connect, and reconnect after all their
connections drop at once, without a single refused connection. The simulator enforces the
limit (tests/sim/test_sim_ws_limits.py shows an unpaced client refused)."""

from __future__ import annotations

import asyncio
import json

import websockets
from okx.websocket.WsUtils import initLoginParams

from tests.engine.harness import running, wait_for
from tests.integration.faults.common import Stopwatch, account, codes, cro, in_band, scenario, setup

ACCOUNTS = [f"Sub{i:02d}" for i in range(10)]


def report(name: str, value: float) -> None:
    print(f"\nFAULT-METRIC {name}: {value:.3f}")


async def test_ten_accounts_connect_without_a_refusal(tmp_path, monkeypatch, sim_factory):
    scen = scenario(*(account(n, i, [cro(margin="10")]) for i, n in enumerate(ACCOUNTS)))
    sim, admin, cfg, _ = await setup(tmp_path, monkeypatch, sim_factory, scen)
    assert sim.hub.options.limits.connects_per_s == 3 and sim.rate_limits

    def subscribed() -> int:
        return sum(1 for s in sim.hub.sessions if s.subs)

    clock = Stopwatch()
    async with running(cfg) as (_, logs):
        await wait_for(lambda: subscribed() == len(ACCOUNTS), timeout_s=20)
        report("10 accounts subscribed after (s)", clock())
        assert sim.connects.refused == 0
        assert not logs.events("ws.reconnect")
        # Every connection drops at once: the ten reconnect through the same pacer.
        for name in ACCOUNTS:
            await admin.fault(kind="drop_ws", account=name)
        await wait_for(lambda: len(logs.events("ws.reconnect")) >= len(ACCOUNTS), timeout_s=20)
        clock = Stopwatch()
        await wait_for(lambda: subscribed() == len(ACCOUNTS), timeout_s=20)
        report("10 accounts re-subscribed after (s)", clock())
        await asyncio.sleep(0.5)
        reconnects = logs.events("ws.reconnect")
    assert sim.connects.refused == 0
    assert len(reconnects) == len(ACCOUNTS)  # one each: no connection was refused
    assert not [r for r in reconnects if "connect failed" in r["reason"]]


async def test_over_the_channel_limit_the_account_waits_then_gets_in(
    tmp_path, monkeypatch, sim_factory
):
    """DOC-WS: beyond 30 connections per channel per sub-account the newest subscription is
    acknowledged, then ended with ``channel-conn-count-error`` (limit 1 here). The reactor
    ignores the event, gets no snapshot, and redoes the connection when it is not ready in
    time: no margin call from stale data meanwhile; once a slot frees it gets in."""
    scen = scenario(account("Wu666666", 1, [cro()]))
    scen["simulator"] = {"ws_conns_per_channel": 1}
    sim, admin, cfg, tap = await setup(tmp_path, monkeypatch, sim_factory, scen)
    other = await websockets.connect(sim.ws_url)  # another process of the same sub-account
    await other.send(initLoginParams(False, "key-1", "pass-1", "secret-1"))
    await other.recv()
    await other.send(json.dumps({"op": "subscribe", "args": [{"channel": "positions",
                                                              "instType": "SWAP"}]}))  # fmt: skip
    await other.recv()
    clock = Stopwatch()
    try:
        async with running(cfg) as (_, logs):
            await wait_for(
                lambda: [r for r in logs.events("ws.reconnect") if "not ready" in r["reason"]],
                timeout_s=20,
            )
            assert await admin.margin_calls() == []  # nothing sent without a snapshot
            waited = clock()
            await other.close()
            await wait_for(lambda: in_band(tap.margin("Wu666666", "CRO-USDT-SWAP", "long")))
            report("over the channel limit: first redo after (s)", waited)
            report("over the channel limit: in band after the slot freed (s)", clock() - waited)
            reconnects = logs.events("ws.reconnect")
    finally:
        await other.close()
    assert all("not ready" in r["reason"] for r in reconnects)
    assert codes(await admin.margin_calls()) == ["0"]
