"""Part 3: steady load on OKX's traffic model, and start-up, at 1,000 sub-accounts x 20.

On OKX the steady load is the regular snapshot - every position of every account, paginated,
every 2-5 s by ``updateInterval`` - plus event pushes from fills and margin transfers; mark
moves are silent (docs/spec/okx-fidelity.md §1). The simulator sends exactly that; a slow silent
price walk changes what the snapshots carry, and fills put positions out of band at a chosen rate.

Runs in its own process (``python -m bench.steady``) so that peak RSS is the reactor's alone;
the simulator is another process, so its CPU is not counted. Reported: start-up until every
account is fresh (against the bound OKX's 3 connections/s sets, scaled), ``app.start()``, RSS,
the reactor's CPU per 1,000 position records/s, event-loop lag, and the own-share latency
(frame in -> request out) of the corrections the fills cause under that load.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.common import (
    PROBE,
    account,
    dist_ms,
    lag_probe,
    match_e2e,
    position,
    reactor,
    sim_process,
    wait_until,
    write_config,
)

OKX_CONNECT_RATE = 3  # new connections per second per IP (DOC-WS)


def scenario(accounts: int, per_account: int, instruments: int, seed: int = 3) -> dict[str, Any]:
    rng = random.Random(seed)
    insts = [
        {"instId": f"S{i:03d}-USDT-SWAP", "ctVal": "1", "markPx": "100", "tickSz": "0.01"}
        for i in range(instruments)
    ]
    out = []
    for n in range(accounts):
        positions = [
            position(inst["instId"], rng.choice(["long", "short"]))
            for inst in rng.sample(insts, per_account)
        ]
        out.append(account(n, positions))
    return {"instruments": insts, "accounts": out}


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mb() -> float:
    return _status_mb("VmRSS:")


def peak_rss_mb() -> float:
    """This process's own peak (``VmHWM``). Not ``ru_maxrss``: Linux keeps that across
    ``exec``, so a child of ``python -m bench`` reported the parent's 855 MB (the funding run's
    heap, forked) as its own peak."""
    return _status_mb("VmHWM:")


class GcPauses:
    """Cyclic-GC pauses by generation (gc.callbacks), to tell them from other loop stalls."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._t0)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)

    def report(self) -> dict[str, Any]:
        return {str(g): dist_ms(p) for g, p in self.pauses.items()}


async def run(
    *,
    accounts: int,
    per_account: int,
    instruments: int,
    interval_ms: int | None,
    fill_rate: float,
    walk_rate: float,
    window_s: float,
    connect_rate: int,
    profile: Path | None,
    profile_start: Path | None = None,
) -> dict[str, Any]:
    sc = scenario(accounts, per_account, instruments)
    # The simulator refuses connections beyond OKX's 3/s (DOC-WS): scaled like the pacer.
    sc["simulator"] = {"ws_connects_per_s": connect_rate}
    rng = random.Random(5)
    all_keys = [
        [a["name"], p["instId"], p["posSide"]] for a in sc["accounts"] for p in a["positions"]
    ]
    keys = rng.sample(all_keys, min(400, len(all_keys)))
    result: dict[str, Any] = {
        "accounts": accounts,
        "positions": accounts * per_account,
        "instruments": instruments,
        "update_interval_ms": interval_ms or 5000,
        "update_interval_param": None if interval_ms is None else str(interval_ms),
        "fill_rate_per_s": fill_rate,
        "walk_moves_per_s": walk_rate,
        "connect_rate_per_s": connect_rate,
        "okx_bound_s": round(accounts / OKX_CONNECT_RATE, 1),
        "scaled_bound_s": round(accounts / connect_rate, 1),
        "rss_before_mb": round(rss_mb(), 1),
    }
    async with sim_process(sc, rate_limits=True, stamp=True) as sim:
        with tempfile.TemporaryDirectory(prefix="bench-steady-") as tmp:
            cfg = write_config(Path(tmp), sim, sc)
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            start_profiler = None
            if profile_start is not None:
                from pyinstrument import Profiler

                start_profiler = Profiler(async_mode="disabled")
                start_profiler.start()
            async with reactor(
                cfg, connect_rate=connect_rate, update_interval_ms=interval_ms
            ) as rt:
                result["start_returned_s"] = round(time.perf_counter() - t0, 2)
                if start_profiler is not None:
                    assert profile_start is not None
                    start_profiler.stop()
                    profile_start.write_text(
                        start_profiler.output_text(unicode=False, color=False, show_all=False)
                    )
                names = list(rt.sessions)
                fresh = await wait_until(
                    lambda: all(rt.engine.book.is_fresh(n) for n in names), 900, 0.02
                )
                result["startup_all_fresh_s"] = (
                    round(time.perf_counter() - t0, 2) if fresh else None
                )
                result["startup_cpu_s"] = round(time.process_time() - cpu0, 2)
                result["book_positions"] = len(rt.engine.book)
                await asyncio.sleep(1.0)
                result["rss_after_startup_mb"] = round(rss_mb(), 1)
                if tracemalloc.is_tracing():
                    top = tracemalloc.take_snapshot().statistics("filename")[:15]
                    for stat in top:
                        print(f"    {stat}", file=sys.stderr)
                result["load"] = await _load_phase(
                    sim, interval_ms, fill_rate, walk_rate, window_s, keys, profile
                )
                result["rss_end_mb"] = round(rss_mb(), 1)
                result["calls_sent"] = rt.engine.calls_sent
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


async def _load_phase(
    sim: Any,
    interval_ms: int | None,
    fill_rate: float,
    walk_rate: float,
    window_s: float,
    keys: list[list[str]],
    profile: Path | None,
) -> dict[str, Any]:
    if walk_rate > 0:
        await sim.post("/bench/walk", {"rate": walk_rate, "step_pct": "0.05", "seed": 1})
    # Warm-up: a full snapshot cycle, so that every account's regular snapshots run.
    await asyncio.sleep((interval_ms or 5000) / 1000 + 1.0)
    corrections = max(1, int(fill_rate * window_s))
    await sim.post(
        "/bench/perturb",
        {"keys": keys, "values": ["15", "5"], "rate": fill_rate, "count": corrections},
    )
    sends0 = len(PROBE.sends)
    frames0, records0 = PROBE.frames, PROBE.records
    cpu0, wall0 = time.process_time(), time.perf_counter()
    lag: list[float] = []
    stop = asyncio.Event()
    lag_task = asyncio.create_task(lag_probe(lag, stop))
    profiler = None
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="disabled")
        profiler.start()
    with GcPauses() as gc_pauses:
        await asyncio.sleep(window_s)
    if profiler is not None:
        profiler.stop()
        assert profile is not None
        profile.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    frames1, records1 = PROBE.frames, PROBE.records
    cpu1, wall1 = time.process_time(), time.perf_counter()
    stop.set()
    await lag_task
    await sim.post("/bench/walk", {"rate": 0})
    await wait_until(lambda: len(PROBE.sends) - sends0 >= corrections, 10)
    sends = PROBE.sends[sends0:]
    requests = await sim.get("/bench/margin-requests")
    stats = await sim.get("/bench/stats")
    wall = wall1 - wall0
    cpu_share = (cpu1 - cpu0) / wall
    records_per_s = (records1 - records0) / wall
    return {
        "records_per_s": round(records_per_s),
        "frames_per_s": round((frames1 - frames0) / wall),
        "cpu_share": round(cpu_share, 3),
        "cpu_per_1000_records": round(cpu_share / (records_per_s / 1000), 4)
        if records_per_s
        else None,
        "sim_cpu_s": stats["cpu_s"],
        "corrections": len(sends),
        "fills_sent": corrections,
        "own": dist_ms([s["own_s"] for s in sends if s["own_s"] is not None]),
        "e2e": dist_ms(match_e2e(sends, requests)),
        "inbound": dist_ms([s["in_s"] for s in sends if s["in_s"] is not None]),
        "loop_lag": dist_ms(lag),
        "gc_pauses": gc_pauses.report(),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench.steady")
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument("--per-account", type=int, default=20)
    ap.add_argument("--instruments", type=int, default=100)
    ap.add_argument("--interval", type=int, help="updateInterval ms (2000-4000); none: 5 s")
    ap.add_argument("--fill-rate", type=float, default=20.0)
    ap.add_argument("--walk", type=float, default=20.0, help="silent mark moves per second")
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--connect-rate", type=int, default=50)
    ap.add_argument("--profile", type=Path, help="pyinstrument text profile of the window")
    ap.add_argument("--profile-start", type=Path, help="pyinstrument text profile of app.start")
    ap.add_argument("--json-out", type=Path)
    ap.add_argument("--tracemalloc", action="store_true", help="top allocations after start-up")
    args = ap.parse_args(argv)
    if args.tracemalloc:
        tracemalloc.start()
    result = asyncio.run(
        run(
            accounts=args.accounts,
            per_account=args.per_account,
            instruments=args.instruments,
            interval_ms=args.interval,
            fill_rate=args.fill_rate,
            walk_rate=args.walk,
            window_s=args.window,
            connect_rate=args.connect_rate,
            profile=args.profile,
            profile_start=args.profile_start,
        )
    )
    r = result["load"]
    print(
        f"  {result['accounts']} accounts x {result['positions'] // result['accounts']}, "
        f"snapshots every {result['update_interval_ms']} ms: {r['records_per_s']} records/s, "
        f"CPU {r['cpu_share']:.0%}, own p99 {r['own']['p99_ms']} ms, loop lag p99 "
        f"{r['loop_lag']['p99_ms']} ms, RSS {result['rss_end_mb']} MB, fresh after "
        f"{result['startup_all_fresh_s']} s",
        flush=True,
        file=sys.stderr,
    )
    text = json.dumps(result, indent=2)
    if args.json_out:
        args.json_out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
