"""Soak: a random price walk and random faults against the real reactor for SOAK_SECONDS
(default 20 s in CI; e.g. SOAK_SECONDS=600 by hand, SOAK_SEED to replay a run).

Asserts at the end: every position in band or blocked with a reason, margin conserved
(balances + margins + margin lost to liquidations constant), zero double applications."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from decimal import Decimal
from typing import Any

import pytest

from tests.engine.harness import SimAdmin, running, wait_for
from tests.integration.faults.common import (
    MARGIN_PATH,
    POSITIONS_PATH,
    ExchangeTap,
    account,
    report,
    scenario,
    setup,
)

INSTRUMENTS = {
    "CRO-USDT-SWAP": Decimal("0.0950"),
    "DOGE-USDT-SWAP": Decimal("0.1"),
    "BTC-USDT-SWAP": Decimal("50000"),
}
TICKS = {
    "CRO-USDT-SWAP": Decimal("0.0001"),
    "DOGE-USDT-SWAP": Decimal("0.0001"),
    "BTC-USDT-SWAP": Decimal("0.1"),
}
LO, HI = Decimal("9.5"), Decimal("10.5")


def _positions(rng: random.Random) -> list[dict[str, Any]]:
    def m(lo: int, hi: int) -> str:
        return str(Decimal(rng.randint(lo * 100, hi * 100)) / 100)

    return [
        {
            "instId": "CRO-USDT-SWAP",
            "posSide": "long",
            "pos": "108",
            "avgPx": "0.0905",
            "lever": "10",
            "margin": m(12, 25),
        },
        {
            "instId": "DOGE-USDT-SWAP",
            "posSide": "short",
            "pos": "2",
            "avgPx": "0.1",
            "lever": "50",
            "margin": m(3, 9),
        },
        {
            "instId": "BTC-USDT-SWAP",
            "posSide": "long",
            "pos": "1",
            "avgPx": "50000",
            "lever": "20",
            "margin": m(11, 30),
        },
    ]


GARBAGE = [
    "not json",
    "[]",
    json.dumps({"arg": {"channel": "positions", "instType": "SWAP"}, "data": [{"pos": ""}]}),
    json.dumps({"arg": {"channel": "nope"}, "data": []}),
]


async def _price_walk(admin: SimAdmin, rng: random.Random, stop: asyncio.Event) -> None:
    prices = dict(INSTRUMENTS)
    while not stop.is_set():
        for inst, px in prices.items():
            step = Decimal(rng.randint(-250, 250)) / 100000  # +-0.25 %
            prices[inst] = (px * (1 + step)).quantize(TICKS[inst])
            await admin.mark_price(inst, str(prices[inst]))
        await asyncio.sleep(0.2)


async def _fills(
    admin: SimAdmin, rt: Any, tap: ExchangeTap, rng: random.Random, stop: asyncio.Event
) -> int:
    """Trading the reactor does not do (a fill, a manual transfer) moves a settled position's
    margin out of its band. Only settled positions: a call in flight would race the change."""
    n = 0
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        rows = [
            r
            for a in rt.status_snapshot().accounts
            for r in a.positions
            if r.status == "ok" and r.margin is not None and LO <= r.margin <= HI
        ]
        if not rows:
            continue
        row = rng.choice(rows)
        p = tap.sim.exchange.accounts[row.account].positions.get(
            (row.inst_id, row.pos_side, "isolated")
        )
        if p is None:
            continue
        margin = Decimal(rng.randint(300, 2500)) / 100
        await admin.set_position(
            account=row.account,
            instId=row.inst_id,
            posSide=row.pos_side,
            pos=str(p.pos),
            avgPx=str(p.avg_px),
            lever=str(p.lever),
            margin=str(margin),
        )
        n += 1
    return n


async def _faults(
    admin: SimAdmin,
    tap: ExchangeTap,
    rng: random.Random,
    names: list[str],
    stop: asyncio.Event,
    seen: list[str],
    disturbed: set[Any],
) -> None:
    """Random faults until ``stop`` (none after it). Connections told to go (``drop_ws``,
    ``ws_notice``) are added to ``disturbed``: the reactor is still to leave them."""
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0.3, 1.0))
        if stop.is_set():
            break
        acc = rng.choice(names)
        kind = rng.choice(
            [
                "drop_ws",
                "ws_silent",
                "ws_notice",
                "raw_frame",
                "rest_error",
                "rest_error",
                "rest_delay",
                "rest_delay",
                "rest_never",
                "reads_error",
            ]
        )
        seen.append(kind)
        body: dict[str, Any] = {"account": acc}
        if kind == "drop_ws" or kind == "ws_notice":
            body["kind"] = kind
            disturbed.update(tap.sim.hub.sessions_of(acc))
        elif kind == "ws_silent":
            body.update(kind="ws_silent", seconds=rng.uniform(0.5, 2.5))
        elif kind == "raw_frame":
            body.update(kind="raw_frame", frame=rng.choice(GARBAGE))
        elif kind == "rest_error":
            code = rng.choice(["50011", "50013", "50026", "59301", "502"])
            body.update(kind="rest_error", path=MARGIN_PATH, code=code)
        elif kind == "rest_delay":
            body.update(kind="rest_delay", path=MARGIN_PATH, delay_s=rng.choice([0.3, 1.5]))
        elif kind == "rest_never":
            body.update(kind="rest_delay", path=MARGIN_PATH, delay_s=None)
        else:
            body.update(kind="rest_error", path=POSITIONS_PATH, code="50013")
        await admin.fault(**body)


@pytest.mark.soak
async def test_soak_random_prices_and_faults(tmp_path, monkeypatch, sim_factory):
    seconds = float(os.environ.get("SOAK_SECONDS", "20"))
    seed = int(os.environ.get("SOAK_SEED", str(random.randrange(1 << 30))))
    print(f"\nsoak seed {seed}, {seconds} s")
    # One generator per task: a shared one would hand out its numbers in whatever order the
    # tasks happen to run, and the same seed would not replay the same faults.
    rng = random.Random(seed)
    names = ["S1", "S2", "S3"]
    scen = scenario(*(account(n, i, _positions(rng)) for i, n in enumerate(names, 1)))
    _, admin, cfg, tap = await setup(tmp_path, monkeypatch, sim_factory, scen)
    stop = asyncio.Event()
    kinds: list[str] = []
    disturbed: set[Any] = set()
    async with running(cfg) as (rt, logs):
        tasks = [
            asyncio.create_task(_price_walk(admin, random.Random(f"{seed}:prices"), stop)),
            asyncio.create_task(
                _faults(admin, tap, random.Random(f"{seed}:faults"), names, stop, kinds, disturbed)
            ),
        ]
        filler = asyncio.create_task(_fills(admin, rt, tap, random.Random(f"{seed}:fills"), stop))
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
        fills = await filler
        quiet = time.monotonic()

        def faults_over() -> bool:
            """No injected fault has effects still to come: no silence in force, and no
            connection that swallowed a ping (its pong timeout is due) or was told to go."""
            for name in names:
                if tap.sim.faults.silent(name):
                    return False
                for session in tap.sim.hub.sessions_of(name):
                    if session.pings_unanswered or session in disturbed:
                        return False
            return True

        def settled() -> bool:
            for acc in rt.status_snapshot().accounts:
                if not acc.fresh:
                    return False
                for row in acc.positions:
                    margin = tap.margin(acc.name, row.inst_id, row.pos_side)
                    if margin is None:
                        continue  # liquidated by the walk: accounted for in tap.lost
                    if row.margin != margin:
                        return False
                    if not (LO <= margin <= HI or (row.status == "blocked" and row.reason)):
                        return False
            return True

        await wait_for(lambda: faults_over() and settled(), timeout_s=30, interval_s=0.2)
        report("soak: quiet to settled", time.monotonic() - quiet)
        await asyncio.sleep(0.5)
        assert settled()
        rows = [r for a in rt.status_snapshot().accounts for r in a.positions]
    for row in rows:
        if row.status == "blocked":
            print(f"blocked {row.account} {row.inst_id}: {row.reason}")
    sent = logs.events("margin.adjust.sent")
    for e in sent:  # the policy never asks for a reduction below its own safe floor
        if e["action"] == "reduce":
            assert Decimal(e["margin"]) - Decimal(e["amount"]) >= Decimal(e["floor"])
    calls = await admin.margin_calls()
    print(
        f"soak: {len(kinds)} faults, {fills} fills, {len(calls)} margin calls, "
        f"{len(tap.applied)} applied, "
        f"{len(logs.events('margin.adjust.unknown'))} unknown, "
        f"{len(logs.events('ws.reconnect'))} reconnects, liquidated margin {tap.lost}"
    )
    assert not logs.events("ws.session.error") and not logs.events("ws.handler.error")
    tap.assert_conserved()
    tap.assert_no_double_application(logs)
    with contextlib.suppress(Exception):
        await admin.aclose()
