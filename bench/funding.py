"""Funding settlement: OKX moves the isolated margin of every position at the same instant
(docs/spec/okx-fidelity.md §11.2.2), so every position of every account is due at once - the
burst of issue 18.

1,000 sub-accounts x 20 positions (``--quick``: 100 x 20), each on its own instrument (one
contract at 100, 20x, margin 10: in band), longs and shorts alternating. The simulator's
funding clock settles every instrument at once (``POST /sim/funding``, rate 1 %): longs pay 1
USDT (margin 9: an add of 1 is due), shorts receive 1 (margin 11: a reduce of 1). Measured:
time from the settlement until every position is back in band (the simulator's own band
tracker, from every change it pushes), margin calls, their 50011 (rate limit) and 59301
(reduce too large) answers, and the reactor's exchange reads meanwhile by endpoint.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    BAND_HI,
    BAND_LO,
    PROBE,
    account,
    dist_ms,
    lag_probe,
    position,
    reactor,
    sim_process,
    wait_until,
    write_config,
)

PER_ACCOUNT = 20
RATE = "0.01"


def scenario(accounts: int) -> dict[str, Any]:
    insts = [
        {"instId": f"F{i:02d}-USDT-SWAP", "ctVal": "1", "markPx": "100", "tickSz": "0.01"}
        for i in range(PER_ACCOUNT)
    ]
    books = [
        account(
            n,
            [
                position(inst["instId"], "long" if i % 2 == 0 else "short")
                for i, inst in enumerate(insts)
            ],
        )
        for n in range(accounts)
    ]
    return {
        "instruments": insts,
        "accounts": books,
        "simulator": {"ws_connects_per_s": 0},
    }


async def run(quick: bool, accounts: int | None = None) -> dict[str, Any]:
    accounts = accounts or (100 if quick else 1000)
    sc = scenario(accounts)
    positions = accounts * PER_ACCOUNT
    async with sim_process(sc) as sim:
        with tempfile.TemporaryDirectory(prefix="bench-funding-") as tmp:
            cfg = write_config(Path(tmp), sim, sc)
            async with reactor(cfg, connect_rate=100 if accounts <= 100 else 50) as rt:
                names = list(rt.sessions)
                ok = await wait_until(
                    lambda: all(rt.engine.book.is_fresh(n) for n in names), 120 + accounts / 10
                )
                assert ok, "accounts did not become fresh"
                await asyncio.sleep(2.0)  # the snapshots settle
                PROBE.gets.clear()
                await sim.post("/bench/band", {"lo": str(BAND_LO), "hi": str(BAND_HI)})
                before = len(await sim.get("/bench/margin-requests"))
                await sim.get("/bench/backlog")  # resets the simulator's loop-lag samples
                lag: list[float] = []
                stop = asyncio.Event()
                lag_task = asyncio.create_task(lag_probe(lag, stop))
                t0_wall = time.time()
                t0 = time.monotonic()
                async with httpx.AsyncClient(base_url=sim.url, timeout=60) as admin:
                    r = await admin.post("/sim/funding", json={"fundingRate": RATE})
                    r.raise_for_status()
                    changed = r.json()["changed"]
                band: dict[str, Any] = {}

                async def back_in_band() -> bool:
                    nonlocal band
                    try:
                        band = await sim.get("/bench/band")
                    except httpx.TransportError:
                        return False  # the simulator is busy with the burst: ask again
                    return bool(band.get("episodes")) and band.get("out_now") == 0

                deadline = time.monotonic() + 300
                while time.monotonic() < deadline and not await back_in_band():
                    await asyncio.sleep(0.1)
                waited = time.monotonic() - t0
                await asyncio.sleep(2.0)  # room for extra (wrong) calls to show
                stop.set()
                await lag_task
                backlog = await sim.get(f"/bench/backlog?since={t0_wall}")
                requests = (await sim.get("/bench/margin-requests"))[before:]
                reads: dict[str, int] = {}
                for gets in PROBE.gets.values():
                    for path, _, _ in gets:
                        reads[path] = reads.get(path, 0) + 1
    codes = [r["code"] for r in requests]
    return {
        "accounts": accounts,
        "positions": positions,
        "moved_by_funding": changed,
        "in_band_after_s": _round(band.get("converged_after_s")),
        "out_of_band_at_end": band.get("out_now"),
        "out_of_band_position_s": round(band.get("out_s", 0.0), 1),
        "waited_s": round(waited, 2),
        "margin_calls": len(requests),
        "calls_per_position": round(len(requests) / positions, 3),
        "answers_50011": codes.count("50011"),
        "answers_59301": codes.count("59301"),
        "other_errors": sum(1 for c in codes if c not in ("0", "50011", "59301")),
        # by code: what a burst the simulator cannot keep up with turns into (50102: a
        # signature that reached it more than its timestamp window after signing)
        "other_codes": dict(
            sorted(Counter(c for c in codes if c not in ("0", "50011", "59301")).items())
        ),
        "reads": dict(sorted(reads.items())),
        # where a backlog sits: each event loop's lag, and the age of the signed requests the
        # simulator handled (handled - signed), by path and answer code
        "reactor_loop_lag": dist_ms(lag),
        "sim_loop_lag": backlog["loop_lag"],
        "request_age": backlog["ages"],
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def report(r: dict[str, Any]) -> str:
    after = r["in_band_after_s"]
    return (
        f"  {r['accounts']} x {r['positions'] // r['accounts']}: {r['moved_by_funding']} moved, "
        f"back in band after {'never' if after is None else f'{after:.2f} s'} "
        f"({r['out_of_band_at_end']} out at the end), {r['margin_calls']} calls, "
        f"50011 x {r['answers_50011']}, 59301 x {r['answers_59301']}, "
        f"other errors {r['other_errors']}, reads {r['reads'] or 'none'}\n"
        f"  loop lag p99/max: reactor {_lag(r['reactor_loop_lag'])}, "
        f"simulator {_lag(r['sim_loop_lag'])}; request age p99/max by path and code: "
        + ", ".join(f"{k} {_lag(v)} (n {v['n']})" for k, v in r["request_age"].items())
    )


def _lag(d: dict[str, Any]) -> str:
    return f"{d['p99_ms']}/{d['max_ms']} ms"


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(prog="bench.funding")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--accounts", type=int, help="instead of 1,000 (--quick: 100)")
    args = ap.parse_args()
    print(report(asyncio.run(run(args.quick, args.accounts))), flush=True)
