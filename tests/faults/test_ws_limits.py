"""The reactor inside OKX's WebSocket connection limit (DOC-WS: 3 connection requests per
second per IP; okx-fidelity §7.4): ten accounts connect, and reconnect after all their
connections drop at once, without a single refused connection. The simulator enforces the
limit (tests/sim/test_sim_ws_limits.py shows an unpaced client refused)."""

from __future__ import annotations

import asyncio

from tests.engine.harness import running, wait_for
from tests.faults.common import Stopwatch, account, cro, scenario, setup

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
