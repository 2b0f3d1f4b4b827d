"""Part 3: scale - 500 sub-accounts x 20 positions in one simulator, a price walk driving pushes.

Runs in its own process (``python -m bench.scale``) so that peak RSS is the reactor's alone; the
simulator is another process, so its CPU is not counted. Reported: start-up to all accounts
fresh, RSS, the reactor's CPU share per 1,000 pushes/s at several push rates, whether it keeps
up, event-loop lag and correction latency under load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    PROBE,
    account,
    dist_ms,
    match_e2e,
    reactor,
    sim_process,
    wait_until,
    write_config,
)

OKX_CONNECT_RATE = 3  # new connections per second per IP


def scenario(accounts: int, per_account: int, instruments: int, seed: int = 3) -> dict[str, Any]:
    rng = random.Random(seed)
    insts = [
        {"instId": f"S{i:03d}-USDT-SWAP", "ctVal": "1", "markPx": "100", "tickSz": "0.01"}
        for i in range(instruments)
    ]
    out = []
    for n in range(accounts):
        positions = [
            {
                "instId": inst["instId"],
                "posSide": rng.choice(["long", "short"]),
                "pos": "1",
                "avgPx": "100",
                "lever": "20",
                "margin": "10",
            }
            for inst in rng.sample(insts, per_account)
        ]
        out.append(account(n, positions))
    return {"instruments": insts, "accounts": out}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _lag_probe(samples: list[float], stop: asyncio.Event) -> None:
    """Event-loop lag: how late a 10 ms sleep wakes up."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(0.01)
        samples.append(max(0.0, loop.time() - t - 0.01))


async def run(
    *,
    accounts: int,
    per_account: int,
    instruments: int,
    rates: list[int],
    window_s: float,
    connect_rate: int,
    profile: Path | None,
) -> dict[str, Any]:
    sc = scenario(accounts, per_account, instruments)
    rng = random.Random(5)
    all_keys = [
        [a["name"], p["instId"], p["posSide"]] for a in sc["accounts"] for p in a["positions"]
    ]
    keys = rng.sample(all_keys, min(200, len(all_keys)))
    result: dict[str, Any] = {
        "accounts": accounts,
        "positions": accounts * per_account,
        "instruments": instruments,
        "connect_rate_per_s": connect_rate,
        "okx_bound_s": round(accounts / OKX_CONNECT_RATE, 1),
        "scaled_bound_s": round(accounts / connect_rate, 1),
        "rss_before_mb": round(rss_mb(), 1),
    }
    async with sim_process(sc, rate_limits=True, stamp=True) as sim:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            cfg = write_config(Path(tmp), sim, sc)
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            async with reactor(cfg, connect_rate=connect_rate) as rt:
                result["start_returned_s"] = round(time.perf_counter() - t0, 2)
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
                result["load"] = {}
                for rate in rates:
                    result["load"][str(rate)] = await _load_phase(
                        sim, rate, window_s, keys, profile
                    )
                    r = result["load"][str(rate)]
                    print(
                        f"  {rate:5d} pushes/s: received {r['received_per_s']}/s, reactor CPU "
                        f"{r['cpu_share']:.0%} ({r['cpu_per_1000_pushes']:.0%} per 1,000/s), "
                        f"own p99 {r['own']['p99_ms']} ms, e2e p99 {r['e2e']['p99_ms']} ms, "
                        f"loop lag p99 {r['loop_lag']['p99_ms']} ms",
                        flush=True,
                        file=sys.stderr,
                    )
                result["rss_end_mb"] = round(rss_mb(), 1)
                result["calls_sent"] = rt.engine.calls_sent
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


async def _load_phase(
    sim: Any, rate: int, window_s: float, keys: list[list[str]], profile: Path | None
) -> dict[str, Any]:
    await sim.post("/bench/walk", {"rate": rate, "step_pct": "0.05", "seed": rate})
    await asyncio.sleep(2.0)  # warm-up: queues reach their steady state
    corrections = max(1, int(20 * window_s))
    await sim.post(
        "/bench/perturb",
        {"keys": keys, "values": ["15", "5"], "rate": 20, "count": corrections},
    )
    sends0 = len(PROBE.sends)
    s0 = await sim.get("/bench/stats")
    frames0, cpu0, wall0 = PROBE.frames, time.process_time(), time.perf_counter()
    lag: list[float] = []
    stop = asyncio.Event()
    lag_task = asyncio.create_task(_lag_probe(lag, stop))
    profiler = None
    if profile is not None and rate == max(rate, 0):
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="disabled")
        profiler.start()
    await asyncio.sleep(window_s)
    if profiler is not None:
        profiler.stop()
        assert profile is not None
        profile.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    frames1, cpu1, wall1 = PROBE.frames, time.process_time(), time.perf_counter()
    s1 = await sim.get("/bench/stats")
    stop.set()
    await lag_task
    await sim.post("/bench/walk", {"rate": 0})
    await wait_until(lambda: len(PROBE.sends) - sends0 >= corrections, 10)
    sends = PROBE.sends[sends0:]
    requests = await sim.get("/bench/margin-requests")
    wall = wall1 - wall0
    cpu_share = (cpu1 - cpu0) / wall
    sent_rate = (s1["pushes"] - s0["pushes"]) / (s1["wall"] - s0["wall"])
    return {
        "target_per_s": rate,
        "sim_sent_per_s": round(sent_rate),
        "received_per_s": round((frames1 - frames0) / wall),
        "sim_cpu_share": round((s1["cpu_s"] - s0["cpu_s"]) / (s1["wall"] - s0["wall"]), 2),
        "cpu_share": round(cpu_share, 3),
        "cpu_per_1000_pushes": round(cpu_share / (sent_rate / 1000), 3) if sent_rate else None,
        "corrections": len(sends),
        "own": dist_ms([s["own_s"] for s in sends if s["own_s"] is not None]),
        "e2e": dist_ms(match_e2e(sends, requests)),
        "inbound": dist_ms([s["in_s"] for s in sends if s["in_s"] is not None]),
        "loop_lag": dist_ms(lag),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench.scale")
    ap.add_argument("--accounts", type=int, default=500)
    ap.add_argument("--per-account", type=int, default=20)
    ap.add_argument("--instruments", type=int, default=100)
    ap.add_argument("--rates", default="1000,2500,5000")
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--connect-rate", type=int, default=25)
    ap.add_argument("--profile", type=Path)
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    result = asyncio.run(
        run(
            accounts=args.accounts,
            per_account=args.per_account,
            instruments=args.instruments,
            rates=[int(r) for r in args.rates.split(",")],
            window_s=args.window,
            connect_rate=args.connect_rate,
            profile=args.profile,
        )
    )
    text = json.dumps(result, indent=2)
    if args.json_out:
        args.json_out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
