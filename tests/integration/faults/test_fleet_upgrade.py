"""A service upgrade hits the whole fleet (docs/spec/okx-fidelity.md §11.2.4): OKX sends the
64008 notice to every connection of a node at once and closes them about 60 s later without a
close frame (DOC-WS, ISS-TG90), or cuts them abruptly (1006/EOF). Twelve accounts must all come
back and re-subscribe, new connections must stay within OKX's 3 per second (counted by the
simulator), no margin call may be decided from a book that was stale (between the loss and the
first fresh snapshot), and the reactor must say how long each book was stale."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.engine.harness import running, wait_for
from tests.integration.faults.common import account, cro, in_band, report, scenario, setup

ACCOUNTS = [f"Fleet{i:02d}" for i in range(12)]
SET_CRO = {"instId": "CRO-USDT-SWAP", "posSide": "long", "pos": "108", "avgPx": "0.0905",
           "lever": "10"}  # fmt: skip


def _ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"]).timestamp()


FAULTS = {
    # the notice, then the node closes every connection without a close frame (scaled 60 s)
    "notice_then_eof": {"kind": "ws_notice", "account": "*", "close_after_s": 6, "close": "eof"},
    "abrupt_eof": {"kind": "drop_ws", "account": "*", "eof": True},
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_fleet_reconnects_paced_and_never_acts_on_a_stale_book(
    fault, tmp_path, monkeypatch, sim_factory
):
    scen = scenario(*(account(n, i, [cro(margin="10.2")]) for i, n in enumerate(ACCOUNTS)))
    sim, admin, cfg, tap = await setup(tmp_path, monkeypatch, sim_factory, scen)
    accepted: list[float] = []  # the simulator's side: every connection it let in
    allow = sim.connects.allow

    def counting_allow(ip: str) -> bool:
        ok = allow(ip)
        if ok:
            accepted.append(time.monotonic())
        return ok

    sim.connects.allow = counting_allow  # type: ignore[method-assign]

    def subscribed() -> set[str]:
        return {s.account.name for s in sim.hub.sessions if s.subs and s.account is not None}

    async with running(cfg) as (rt, logs):
        await wait_for(lambda: subscribed() == set(ACCOUNTS), timeout_s=20)
        await wait_for(lambda: len(logs.events("book.snapshot")) >= len(ACCOUNTS), timeout_s=10)
        before = {n: rt.sessions[n].connect_count for n in ACCOUNTS}
        n_accepted = len(accepted)
        t0 = time.monotonic()
        await admin.fault(**FAULTS[fault])
        # Meanwhile every position leaves its band: only a fresh snapshot can tell the reactor.
        for n in ACCOUNTS:
            await admin.set_position(account=n, margin="20.29", **SET_CRO)
        await wait_for(
            lambda: all(rt.sessions[n].connect_count > before[n] for n in ACCOUNTS), timeout_s=30
        )
        report(f"{fault}: 12 accounts re-subscribed after", time.monotonic() - t0)
        await wait_for(
            lambda: all(in_band(tap.margin(n, "CRO-USDT-SWAP", "long")) for n in ACCOUNTS),
            timeout_s=20,
        )
        report(f"{fault}: 12 accounts in band after", time.monotonic() - t0)
        await asyncio.sleep(0.3)
        status = {a.name: a for a in rt.status_snapshot().accounts}
        page = rt.status_snapshot().to_json()
    assert subscribed() == set()  # (stopped) every session ended with the reactor
    # 1. Everyone came back, and the simulator never saw a fourth connection within a second.
    assert sim.connects.refused == 0
    new = accepted[n_accepted:]
    assert len(new) >= len(ACCOUNTS)
    assert all(b - a >= 1.0 for a, b in zip(new, new[3:], strict=False)), new
    report(f"{fault}: reconnect span (simulator side, s)", new[-1] - new[0])
    # 2. Every account said how long its book was stale, and the status shows it.
    stale = {e["account"]: e for e in logs.events("ws.book.stale")}
    assert set(stale) == set(ACCOUNTS)
    worst = max(float(e["stale_s"]) for e in stale.values())
    report(f"{fault}: longest stale book (s)", worst)
    # N accounts at 3/s: the last waits about N/3 s for its connection, plus its snapshot.
    assert worst >= (len(ACCOUNTS) - 3) / 3 - 0.5
    for n in ACCOUNTS:
        assert status[n].fresh and status[n].stale_since_ms is None
        assert status[n].last_stale_s is not None and status[n].last_stale_s > 0
    assert all(a["lastStaleS"] is not None for a in page["accounts"])
    # 3. No margin call was decided while the account's book was stale: none was sent between
    # the loss of its connection and its first fresh snapshot, and each one that the exchange
    # applied was computed from the margin the exchange held (20.29, never the stale 10.2).
    sent = logs.events("margin.adjust.sent")
    assert sorted(e["account"] for e in sent) == sorted(ACCOUNTS)
    for n in ACCOUNTS:
        lost = [_ts(e) for e in logs.events("ws.disconnected") if e["account"] == n]
        fresh = _ts(stale[n])
        assert lost and min(lost) < fresh
        for e in sent:
            if e["account"] == n:
                assert not min(lost) <= _ts(e) <= fresh, (n, e)
                assert Decimal(e["margin"]) == Decimal("20.29")
    tap.assert_no_double_application(logs)
    tap.assert_conserved()
