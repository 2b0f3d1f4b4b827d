"""``python -m bench [--quick] [--only latency,convergence,maintenance,scale]``: run, print,
write JSON.

Latency and convergence run in this process (the simulator in a child process); scale runs in
its own child process so its peak RSS is the reactor's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import convergence, latency, maintenance_race, seed
from bench.common import ROOT, patch_connect_rate

OUT = ROOT / "bench" / "results.json"
BENCH_CONNECT_RATE = 50  # connections/s for the small latency and convergence books


def _scale(quick: bool, connect_rate: int | None, profile: Path | None) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.scale"]
    if quick:
        args += ["--rates", "1000,5000", "--window", "4", "--connect-rate", "100"]
    else:
        args += ["--rates", "1000,2500,5000", "--window", "10", "--connect-rate", "25"]
    if connect_rate is not None:
        args += ["--connect-rate", str(connect_rate)]
    if profile is not None:
        args += ["--profile", str(profile)]
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = Path(tmp) / "scale.json"
        subprocess.run([*args, "--json-out", str(out)], check=True, cwd=ROOT)
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def _ms(d: dict[str, Any]) -> str:
    return f"{d['p50_ms']} / {d['p99_ms']} / {d['max_ms']}"


def table(results: dict[str, Any]) -> str:
    """The results as Markdown tables (printed, and pasted into the README)."""
    lines: list[str] = []
    sd = results.get("seed")
    if sd:
        lines += [
            f"Seed case from a cold start ({sd['runs']} runs of `reactor run`, CRO margin "
            f"20.29 -> band 9.5-10.5): process spawned -> margin-balance answered "
            f"p50 {sd['to_in_band']['p50_ms']} ms, max {sd['to_in_band']['max_ms']} ms; "
            f"margin calls per run {sd['calls_per_run']} (amount {sd['amount']}).",
            "",
        ]
    lat = results.get("latency")
    if lat:
        lines += [
            "Reaction latency (ms, p50 / p99 / max; "
            f"{next(iter(lat.values()))['corrections']} corrections per row):",
            "",
            "| debounce | push -> call received | own share (frame -> request sent) "
            "| calls per correction |",
            "|---|---|---|---|",
        ]
        for name, r in lat.items():
            lines.append(
                f"| {name} | {_ms(r['e2e'])} | {_ms(r['own'])} | {r['calls_per_correction']} |"
            )
        lines.append("")
    conv = results.get("convergence")
    if conv:
        lines += [
            f"Convergence (scenario seconds; time scaled 1/{conv['scale']:g}, poll every "
            f"{conv['poll_interval_s']:g} s):",
            "",
            "| scenario | design | converged after | margin calls | 59301 "
            "| out of band (position-s) | still out at end |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, res in conv["scenarios"].items():
            for tool, r in res.items():
                if tool == "ratio old/new":
                    lines.append(
                        f"| {name} | **ratio old/new** | {r['converged_s']} | "
                        f"{r['margin_calls']} | {r['rejected_59301']} | "
                        f"{r['out_of_band_position_s']} | |"
                    )
                    continue
                conv_s = "not within horizon" if r["converged_s"] is None else r["converged_s"]
                lines.append(
                    f"| {name} | {tool} | {conv_s} | {r['margin_calls']} | "
                    f"{r['rejected_59301']} | {r['out_of_band_position_s']} | "
                    f"{r['out_of_band_at_end']} |"
                )
        lines.append("")
    sc = results.get("scale")
    if sc:
        lines += [
            f"Scale ({sc['accounts']} accounts x {sc['positions'] // sc['accounts']} positions = "
            f"{sc['positions']}, {sc['instruments']} instruments):",
            "",
            f"- start-up to all accounts fresh: {sc['startup_all_fresh_s']} s at "
            f"{sc['connect_rate_per_s']} connections/s (pacer bound {sc['scaled_bound_s']} s; "
            f"at OKX's 3/s the bound is {sc['okx_bound_s']} s); app.start() itself took "
            f"{sc['start_returned_s']} s",
            f"- RSS after start-up {sc['rss_after_startup_mb']} MB, peak {sc['peak_rss_mb']} MB",
            "",
            "| pushes/s sent | received/s | reactor CPU | CPU per 1,000 pushes/s "
            "| own share p50 / p99 / max (ms) | push -> call (ms) | loop lag p99 (ms) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in sc["load"].values():
            lines.append(
                f"| {r['sim_sent_per_s']} | {r['received_per_s']} | {r['cpu_share']:.0%} | "
                f"{r['cpu_per_1000_pushes']:.1%} | {_ms(r['own'])} | {_ms(r['e2e'])} | "
                f"{r['loop_lag']['p99_ms']} |"
            )
        lines.append("")
    return "\n".join(lines)


async def _in_process(quick: bool, only: set[str]) -> dict[str, Any]:
    patch_connect_rate(BENCH_CONNECT_RATE)
    out: dict[str, Any] = {}
    if "latency" in only:
        print("latency:", flush=True)
        out["latency"] = await latency.run(quick)
    if "convergence" in only:
        print("convergence:", flush=True)
        out["convergence"] = await convergence.run(quick)
    if "maintenance" in only:
        print("maintenances while the price walks (wasted transfers):", flush=True)
        out["maintenance"] = await maintenance_race.run_all(quick)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer samples, about 2 minutes")
    ap.add_argument("--only", default="seed,latency,convergence,maintenance,scale")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--connect-rate", type=int, help="scale: connections per second")
    ap.add_argument("--profile", type=Path, help="scale: pyinstrument text profile of 5,000/s")
    args = ap.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    started = time.time()
    results: dict[str, Any] = {
        "meta": {
            "quick": args.quick,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        }
    }
    if "seed" in only:
        print("seed case from a cold start:", flush=True)
        results["seed"] = seed.run(args.quick)
    results.update(asyncio.run(_in_process(args.quick, only)))
    if "scale" in only:
        print("scale:", flush=True)
        results["scale"] = _scale(args.quick, args.connect_rate, args.profile)
    results["meta"]["duration_s"] = round(time.time() - started, 1)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results))
    print(f"written to {args.out} in {results['meta']['duration_s']} s")


if __name__ == "__main__":
    main()
