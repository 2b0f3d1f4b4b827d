"""WebSocket faults: dropped and silent connections, a service notice, wrong credentials on
one account of three, garbage frames. The reactor must never act on stale data."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from decimal import Decimal

from tests.engine.harness import running, wait_for
from tests.integration.faults.common import (
    MARGIN_PATH,
    Stopwatch,
    account,
    codes,
    cro,
    in_band,
    report,
    scenario,
    setup,
)

W = "Wu666666"
CRO_KEY = (W, "CRO-USDT-SWAP", "long")
SET_CRO = {
    "instId": "CRO-USDT-SWAP",
    "posSide": "long",
    "pos": "108",
    "avgPx": "0.0905",
    "lever": "10",
}


def _count(logs, name: str, **match: object) -> int:
    return sum(all(e.get(k) == v for k, v in match.items()) for e in logs.events(name))


async def test_dropped_websocket_mid_correction(tmp_path, monkeypatch, sim_factory):
    _, admin, cfg, tap = await setup(
        tmp_path,
        monkeypatch,
        sim_factory,
        scenario(account(W, 1, [cro()])),
        request_timeout_s=3,
    )
    await admin.fault(kind="rest_delay", account=W, path=MARGIN_PATH, delay_s=0.8)
    async with running(cfg) as (_, logs):
        await wait_for(lambda: logs.events("margin.adjust.sent"))
        clock = Stopwatch()
        await admin.fault(kind="drop_ws", account=W)  # the call is in flight
        # Reconnected (regular snapshots alone would not prove it).
        await wait_for(lambda: len(logs.events("ws.connected")) >= 2)
        await wait_for(lambda: len(logs.events("book.snapshot")) >= 2)
        report("drop_ws: drop to fresh snapshot", clock())
        await wait_for(lambda: _count(logs, "book.reconciled", trigger="connect") >= 2)
        report("drop_ws: drop to reconciled", clock())
        await wait_for(lambda: in_band(tap.margin(*CRO_KEY)))
        await asyncio.sleep(0.5)
        calls = await admin.margin_calls()
    assert codes(calls) == ["0"]  # the in-flight call finished; nothing was resent
    assert logs.events("margin.adjust.ok")
    assert not logs.events("margin.adjust.unknown")
    assert logs.events("ws.disconnected") and logs.events("ws.reconnect")
    tap.assert_no_double_application(logs)
    tap.assert_conserved()


async def test_silent_websocket_is_detected_and_nothing_acts_on_stale_data(
    tmp_path, monkeypatch, sim_factory
):
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro(margin="10.2")]))
    )
    async with running(cfg) as (_, logs):
        await wait_for(lambda: logs.events("book.snapshot"))
        silent_s = 3.0
        await admin.fault(kind="ws_silent", account=W, seconds=silent_s)
        silent_until = time.time() + silent_s
        clock = Stopwatch()
        # While the stream is silent the position leaves its band: no push tells the reactor.
        await admin.set_position(account=W, margin="20.29", **SET_CRO)
        await wait_for(lambda: logs.events("ws.pong.timeout"), timeout_s=5)
        report("ws_silent: silence to pong timeout", clock())
        await wait_for(lambda: in_band(tap.margin(*CRO_KEY)), timeout_s=15)
        report("ws_silent: silence to corrected", clock())
        await asyncio.sleep(0.3)
        calls = await admin.margin_calls()
    assert len(calls) == 1 and calls[0]["code"] == "0"
    # Sent only after the silence ended and a fresh snapshot arrived.
    assert calls[0]["time"] >= silent_until - 0.05
    assert len(logs.events("book.snapshot")) >= 2
    tap.assert_no_double_application(logs)


async def test_service_notice_reconnects_at_once(tmp_path, monkeypatch, sim_factory):
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro(margin="10.2")]))
    )
    async with running(cfg) as (_, logs):
        await wait_for(lambda: logs.events("book.snapshot"))
        await admin.fault(kind="ws_notice", account=W)
        await wait_for(lambda: len(logs.events("ws.connected")) >= 2)
        await admin.set_position(account=W, margin="20.29", **SET_CRO)
        await wait_for(lambda: in_band(tap.margin(*CRO_KEY)))
    reconnect = logs.events("ws.reconnect")[0]
    assert reconnect["delay_s"] == 0 and "64008" in reconnect["reason"]
    tap.assert_no_double_application(logs)


async def test_wrong_passphrase_on_one_of_three_accounts(tmp_path, monkeypatch, sim_factory):
    scen = scenario(account("A1", 1, [cro()]), account("B2", 2, [cro()]), account("C3", 3, [cro()]))
    _, admin, cfg, tap = await setup(tmp_path, monkeypatch, sim_factory, scen)
    monkeypatch.setenv("OKX_B2_PASSPHRASE", "not-the-passphrase")
    async with running(cfg) as (rt, logs):
        await wait_for(
            lambda: (
                in_band(tap.margin("A1", "CRO-USDT-SWAP", "long"))
                and in_band(tap.margin("C3", "CRO-USDT-SWAP", "long"))
            )
        )
        await asyncio.sleep(1.5)  # several backoff periods: no retry storm
        calls = await admin.margin_calls()
        status = {a.name: a for a in rt.status_snapshot().accounts}
    assert sorted(c["account"] for c in calls) == ["A1", "C3"]
    assert tap.margin("B2", "CRO-USDT-SWAP", "long") == Decimal("20.29")
    failed = logs.events("ws.login.failed")
    assert [(f["account"], f["code"], f["retry"]) for f in failed] == [("B2", "60024", False)]
    assert _count(logs, "sim.ws.login", code="60024") == 1  # one attempt, never repeated
    assert [e["account"] for e in logs.events("account.stopped")] == ["B2"]
    assert status["B2"].stopped_reason and not status["B2"].fresh
    tap.assert_no_double_application(logs)


async def test_garbage_frames_and_empty_fields_never_kill_the_reactor(
    tmp_path, monkeypatch, sim_factory
):
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro(margin="10.2")]))
    )
    async with running(cfg) as (_, logs):
        await wait_for(lambda: logs.events("book.snapshot"))
        held = await admin.position(W, "CRO-USDT-SWAP", "long")
        assert held is not None
        arg = {"channel": "positions", "instType": "SWAP", "uid": "1"}
        empty = {k: "" for k in held}
        empty.update(instId="CRO-USDT-SWAP", posSide="long", mgnMode="isolated", pos="108")
        empty.update(instType="SWAP", ccy="USDT", cTime=held["cTime"])
        empty["uTime"] = str(int(held["uTime"]) + 1)
        frames = [
            "this is not json",
            "[1, 2, 3]",
            '{"foo": 1}',
            json.dumps({"arg": {"channel": "tickers"}, "data": []}),
            json.dumps({"event": "surprise"}),
            json.dumps({"arg": arg, "data": "not a list"}),
            json.dumps({"arg": arg, "eventType": "weird", "data": []}),
            json.dumps({"arg": arg, "eventType": "event_update", "data": [7, {"pos": ""}]}),
            json.dumps(
                {"arg": arg, "eventType": "event_update", "data": [{**held, "pos": {"x": 1}}]}
            ),
            json.dumps({"arg": arg, "eventType": "event_update", "data": [empty]}),
            "\u0000\u00ff binary-ish \ud7ff",
        ]
        for frame in frames:
            await admin.fault(kind="raw_frame", account=W, frame=frame)
        await wait_for(lambda: len(logs.events("ws.frame.invalid")) >= 9)
        await asyncio.sleep(0.3)
        assert await admin.margin_calls() == []  # "" fields never lead to a call
        # The stream still works: a real change is corrected.
        await admin.set_position(account=W, margin="20.29", **SET_CRO)
        await wait_for(lambda: in_band(tap.margin(*CRO_KEY)))
        calls = await admin.margin_calls()
    assert codes(calls) == ["0"]
    invalid = logs.events("ws.frame.invalid")
    assert all(e["preview"] and len(e["preview"]) <= 201 for e in invalid)
    assert not logs.events("ws.session.error") and not logs.events("ws.handler.error")
    assert len(logs.events("ws.connected")) == 1  # never even reconnected
    blocked = logs.events("margin.target.blocked")
    assert blocked and blocked[0]["reason"].startswith("missing_field")


async def test_reconnects_of_many_accounts_are_paced(tmp_path, monkeypatch, sim_factory):
    """OKX allows 3 new connections per second per IP: all accounts dropped at once come back
    paced, not in a burst."""
    names = [f"P{i}" for i in range(7)]
    scen = scenario(*(account(n, i, [cro(margin="10.2")]) for i, n in enumerate(names)))
    _, admin, cfg, _tap = await setup(tmp_path, monkeypatch, sim_factory, scen)
    async with running(cfg) as (_, logs):
        await wait_for(lambda: len(logs.events("ws.connected")) >= len(names))
        await wait_for(lambda: len(logs.events("book.snapshot")) >= len(names))
        n0 = len(logs.events("ws.connecting"))
        for n in names:
            await admin.fault(kind="drop_ws", account=n)
        # Regular snapshots arrive every 0.5 s anyway: count reconnections, not snapshots.
        await wait_for(lambda: len(logs.events("ws.connected")) >= 2 * len(names), timeout_s=15)
        calls = await admin.margin_calls()
    starts = sorted(
        datetime.fromisoformat(e["timestamp"]).timestamp() for e in logs.events("ws.connecting")
    )
    assert len(starts) >= n0 + len(names)
    # Any 4 consecutive starts span about a second (0.8 s: log stamps trail the pacer a bit).
    assert all(b - a >= 0.8 for a, b in zip(starts, starts[3:], strict=False))
    assert calls == []
