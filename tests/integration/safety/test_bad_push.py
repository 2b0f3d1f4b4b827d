"""A bad push over the wire cannot freeze a position (reactor + simulator, real sockets)."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

from tests.engine.harness import running, wait_for
from tests.integration.faults.common import account, cro, in_band, scenario, setup

W = "Wu666666"
KEY = (W, "CRO-USDT-SWAP", "long")
BOOK_KEY = (*KEY, "isolated")
DAY_MS = 86_400_000


async def _push(admin, position: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    frame = {
        "arg": {"channel": "positions", "instType": "SWAP", "uid": "1"},
        "eventType": "event_update",
        "data": [position],
    }
    await admin.fault(kind="raw_frame", account=W, frame=json.dumps(frame))


async def test_a_push_with_utime_far_in_the_future_does_not_freeze_the_position(
    tmp_path, monkeypatch, sim_factory
):
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro()]))
    )
    async with running(cfg) as (rt, logs):
        await wait_for(lambda: in_band(tap.margin(*KEY)))
        await asyncio.sleep(0.5)
        settled = len(tap.applied)
        real = await admin.position(W, "CRO-USDT-SWAP", "long")
        assert real is not None
        now = int(time.time() * 1000)
        # The exchange's own record, but stamped a day ahead and reporting a bigger margin.
        bad = dict(real, uTime=str(now + DAY_MS), pTime=str(now), margin="12.5")
        await _push(admin, bad)
        await wait_for(lambda: logs.events("book.record.invalid"))
        # The exchange moves on (a mark price change): the book must follow, not ignore it.
        await admin.mark_price("CRO-USDT-SWAP", "0.0951")
        await wait_for(
            lambda: (
                (p := rt.engine.book.get(BOOK_KEY)) is not None and p.margin == tap.margin(*KEY)
            ),
            timeout_s=10,
        )
        await asyncio.sleep(1.0)
        book = rt.engine.book.get(BOOK_KEY)
    assert book is not None and book.u_time < now + DAY_MS
    assert in_band(tap.margin(*KEY))
    assert len(tap.applied) == settled  # the bad record was never acted on
    tap.assert_conserved()


async def test_an_impossible_push_is_never_acted_on(tmp_path, monkeypatch, sim_factory):
    _, admin, cfg, tap = await setup(
        tmp_path, monkeypatch, sim_factory, scenario(account(W, 1, [cro()]))
    )
    async with running(cfg) as (rt, logs):
        await wait_for(lambda: in_band(tap.margin(*KEY)))
        await asyncio.sleep(0.5)
        settled = len(tap.applied)
        real = await admin.position(W, "CRO-USDT-SWAP", "long")
        assert real is not None
        for patch in ({"margin": "-40"}, {"markPx": "0"}, {"margin": "NaN"}, {"pos": "1e13"}):
            await _push(admin, dict(real, uTime=str(int(real["uTime"]) + 1), **patch))
        await wait_for(lambda: len(logs.events("ws.frame.invalid")) >= 4)
        await asyncio.sleep(0.8)
        book = rt.engine.book.get(BOOK_KEY)
    assert len(tap.applied) == settled  # nothing was sent
    assert book is not None and book.margin == Decimal(real["margin"])
