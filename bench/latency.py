"""Part 1: reaction latency, simulator push -> simulator receives the margin-balance call.

Corrections are injected by the simulator process itself: a position in band (margin 10) is set
to 15 (a reduce of 5 is due) or 5 (an add of 5 is due), round-robin over 200 positions so each
position is quiet for seconds between its corrections (the leading edge applies).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_CONNECT_RATE,
    PROBE,
    account,
    dist_ms,
    match_e2e,
    position,
    probe_journal,
    reactor,
    sim_process,
    wait_until,
    write_config,
)

ACCOUNTS = 20
PER_ACCOUNT = 10
RATE = 50.0  # corrections per second (each position every 4 s)


def scenario() -> dict[str, Any]:
    insts = [
        {"instId": f"B{i:02d}-USDT-SWAP", "ctVal": "1", "markPx": "100", "tickSz": "0.01"}
        for i in range(PER_ACCOUNT)
    ]
    accounts = [
        account(
            n,
            [position(i["instId"]) for i in insts],
        )
        for n in range(ACCOUNTS)
    ]
    # connections scaled like the pacer (the simulator refuses beyond OKX's 3/s by default)
    return {
        "instruments": insts,
        "accounts": accounts,
        "simulator": {"ws_connects_per_s": BENCH_CONNECT_RATE},
    }


MODES = [
    ("debounce 0", {"debounce_ms": 0, "leading_edge": True}),
    ("debounce 500 ms, leading edge (default)", {"debounce_ms": 500, "leading_edge": True}),
    ("debounce 500 ms, trailing only", {"debounce_ms": 500, "leading_edge": False}),
]


async def run_mode(timing: dict[str, Any], corrections: int) -> dict[str, Any]:
    sc = scenario()
    keys = [[a["name"], p["instId"], p["posSide"]] for a in sc["accounts"] for p in a["positions"]]
    async with sim_process(sc) as sim:
        with tempfile.TemporaryDirectory(prefix="bench-lat-") as tmp:
            cfg = write_config(Path(tmp), sim, sc, cooldown_s=5, **timing)
            async with reactor(cfg) as rt:
                probe_journal(rt)
                names = list(rt.sessions)
                ok = await wait_until(lambda: all(rt.engine.book.is_fresh(n) for n in names), 60)
                assert ok, "accounts did not become fresh"
                await asyncio.sleep(1.0)  # the snapshot counts as a change: let it go quiet
                await sim.post(
                    "/bench/perturb",
                    {"keys": keys, "values": ["15", "5"], "rate": RATE, "count": corrections},
                )
                t0 = time.monotonic()
                await wait_until(lambda: len(PROBE.sends) >= corrections, corrections / RATE + 30)
                await wait_until(lambda: False, 1.0)  # room for extra (wrong) calls to show
                elapsed = time.monotonic() - t0
                requests = await sim.get("/bench/margin-requests")
                sends = list(PROBE.sends)
    if not sends:  # a broken probe or reactor must not print as a row of empty figures
        raise RuntimeError(f"latency {timing}: no margin call was sent")
    own = [s["own_s"] for s in sends if s["own_s"] is not None]
    inbound = [s["in_s"] for s in sends if s["in_s"] is not None]
    e2e = match_e2e(sends, requests)
    errors = [r for r in requests if r["code"] != "0"]
    return {
        "corrections": corrections,
        "margin_calls": len(requests),
        "calls_per_correction": round(len(requests) / corrections, 3),
        "errors": len(errors),
        "e2e": dist_ms(e2e),
        "own": dist_ms(own),
        # own = frame -> engine gets the parsed positions (parse) + -> request handed to httpx
        "own_parse": dist_ms([s["parse_s"] for s in sends if s["parse_s"] is not None]),
        "own_engine": dist_ms([s["engine_s"] for s in sends if s["engine_s"] is not None]),
        # own = parse + journal (the intent's commit) + reads (exchange GETs the call waited
        # for) + the rest (core, event loop, httpx) - per correction (issue 18)
        "own_journal": dist_ms([s["journal_s"] for s in sends if s["journal_s"] is not None]),
        "own_reads": dist_ms([s["reads_s"] for s in sends if s["reads_s"] is not None]),
        "own_rest": dist_ms(
            [
                s["engine_s"] - s["journal_s"] - s["reads_s"]
                for s in sends
                if s["engine_s"] is not None and s["journal_s"] is not None
            ]
        ),
        "reads_before_call": reads_before_call(sends),
        "inbound": dist_ms(inbound),
        "elapsed_s": round(elapsed, 1),
    }


def reads_before_call(sends: list[dict[str, Any]]) -> dict[str, Any]:
    """Exchange GETs of the account between the push and the call, per correction, by kind of
    call and endpoint: total, corrections with none, the most before one call."""
    out: dict[str, Any] = {}
    for kind in ("add", "reduce"):
        mine = [s for s in sends if s["own_s"] is not None and f'"type":"{kind}"' in s["body"]]
        by_path: dict[str, int] = {}
        for s in mine:
            for path, n in s["reads"].items():
                by_path[path] = by_path.get(path, 0) + n
        counts = [sum(s["reads"].values()) for s in mine]
        out[kind] = {
            "corrections": len(mine),
            "with_no_read": sum(1 for n in counts if n == 0),
            "max": max(counts, default=0),
            "by_endpoint": dict(sorted(by_path.items())),
        }
    return out


async def run(quick: bool) -> dict[str, Any]:
    corrections = 200 if quick else 1000
    out = {}
    for name, timing in MODES:
        out[name] = await run_mode(timing, corrections)
        r = out[name]
        print(
            f"  {name:42s} e2e p50 {r['e2e']['p50_ms']} p99 {r['e2e']['p99_ms']} "
            f"max {r['e2e']['max_ms']} ms | own p50 {r['own']['p50_ms']} p99 {r['own']['p99_ms']}"
            f" ms (parse p50 {r['own_parse']['p50_ms']}, engine to request p50 "
            f"{r['own_engine']['p50_ms']}) | calls/correction {r['calls_per_correction']}",
            flush=True,
        )
        split = " | ".join(
            f"{part} p50 {r['own_' + part]['p50_ms']} p99 {r['own_' + part]['p99_ms']}"
            for part in ("parse", "journal", "reads", "rest")
        )
        reads = r["reads_before_call"]
        print(
            f"    own share split (ms): {split}\n    reads before the call: "
            + "; ".join(
                f"{k} {v['with_no_read']}/{v['corrections']} with none, max {v['max']}, "
                f"{v['by_endpoint'] or 'no reads'}"
                for k, v in reads.items()
            ),
            flush=True,
        )
    return out
