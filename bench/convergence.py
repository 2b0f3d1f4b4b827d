"""Part 2: convergence of the old 5-minute poller versus the reactor, on the same scenarios.

Scaled time: every duration of a run - the poller's 300 s interval, the market script, the
reactor's debounce (500 ms), cooldown (5 s) and reconcile interval (60 s) - is divided by
``scale``; measured wall times are multiplied by ``scale`` and reported in scenario seconds.
The exchange's and the reactor's real processing time is not scaled, so it shows up ``scale``
times larger: a handicap for the fast side (the reactor), never for the poller.
The poller's first round comes half an interval after the positions go out of band (the
expected delay when the event falls at a random point of its cycle).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import yaml

from bench.common import ROOT, account, reactor, sim_process, wait_until, write_config
from bench.poller import OldPoller
from reactor.okx.credentials import Credentials
from reactor.okx.rest import OkxRestClient

POLL_S = 300.0
TOOLS = ("old poller", "reactor", "reactor (trailing debounce)")


def cro() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load((ROOT / "scenarios" / "cro.yaml").read_text())
    return raw


LOT = Decimal("0.01")
_INSTS = [
    # like CRO, DOGE, XRP, ETH, SOL: ctVal from 0.1 to 1000 (what the old formula forgot)
    {
        "instId": "CRO-USDT-SWAP",
        "ctVal": "10",
        "markPx": "0.0950",
        "tickSz": "0.00001",
        "lotSz": "0.01",
    },
    {
        "instId": "DOGE-USDT-SWAP",
        "ctVal": "1000",
        "markPx": "0.16",
        "tickSz": "0.00001",
        "lotSz": "0.01",
    },
    {
        "instId": "XRP-USDT-SWAP",
        "ctVal": "100",
        "markPx": "0.52",
        "tickSz": "0.0001",
        "lotSz": "0.01",
    },
    {
        "instId": "ETH-USDT-SWAP",
        "ctVal": "0.1",
        "markPx": "3200",
        "tickSz": "0.01",
        "lotSz": "0.01",
    },
    {"instId": "SOL-USDT-SWAP", "ctVal": "1", "markPx": "150", "tickSz": "0.01", "lotSz": "0.01"},
]


def random50(seed: int = 7) -> dict[str, Any]:
    """50 isolated positions out of band (above or below), all reachable: the reactor's safe
    floor is below the band, so both designs can converge."""
    rng = random.Random(seed)
    accounts = []
    for n in range(10):
        positions = []
        for inst in _INSTS:
            ct, px = Decimal(inst["ctVal"]), Decimal(inst["markPx"])
            while True:
                lever = Decimal(rng.choice([10, 20]))
                notional = Decimal(rng.randint(20, 90))
                contracts = max(LOT, (notional / (ct * px)).quantize(LOT, rounding=ROUND_FLOOR))
                notional = contracts * ct * px
                side = rng.choice(["long", "short"])
                drift = Decimal(rng.randint(-20, 20)) / 1000  # avgPx within 2 % of mark
                avg = (px * (1 + drift)).quantize(Decimal(inst["tickSz"]))
                diff = contracts * ct * (px - avg)
                upl = diff if side == "long" else -diff
                im, mm = notional / lever, notional * Decimal("0.004")
                floor = max(im, mm + Decimal("1.5")) + max(Decimal(0), -upl)
                if floor > Decimal(9):
                    continue
                high = rng.random() < 0.6
                margin = Decimal(rng.randint(1200, 4000) if high else rng.randint(300, 900)) / 100
                if margin + upl > mm * 2:
                    break
            positions.append(
                {
                    "instId": inst["instId"],
                    "posSide": side,
                    "pos": str(contracts),
                    "avgPx": str(avg),
                    "lever": str(lever),
                    "margin": str(margin),
                }
            )
        accounts.append(account(n, positions))
    return {"instruments": _INSTS, "accounts": accounts}


def falling() -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    """Longs bought at 100, margin 30, in a market at 90 that falls to 85, holds, then recovers
    to 103: the safe floor (initial margin + unrealised loss) blocks the target for most of
    the run. Returns (scenario, script in scenario seconds, script length)."""
    insts = [
        {
            "instId": f"F{i}-USDT-SWAP",
            "ctVal": "1",
            "markPx": "90",
            "tickSz": "0.01",
            "lotSz": "0.01",
        }
        for i in range(3)
    ]
    accounts = [
        account(
            n,
            [
                {
                    "instId": i["instId"],
                    "posSide": "long",
                    "pos": "1",
                    "avgPx": "100",
                    "lever": "10",
                    "margin": "30",
                }
                for i in insts
            ],
        )
        for n in range(4)
    ]
    path = [90 - m for m in range(6)] + [85] * 5 + [85 + 1.8 * m for m in range(1, 11)]
    path += [103] * 10
    steps = []
    for minute, px in enumerate(path):
        for k, inst in enumerate(insts):
            # the three instruments move a few seconds apart, with a small offset in level
            steps.append(
                {"at": minute * 60 + 7 * k, "instId": inst["instId"], "markPx": f"{px - k:.2f}"}
            )
    return {"instruments": insts, "accounts": accounts}, steps, len(path) * 60.0


async def run_tool(
    tool: str,
    sc: dict[str, Any],
    script: list[dict[str, Any]],
    script_s: float,
    scale: float,
) -> dict[str, Any]:
    horizon_s = script_s + (3 if script else 6) * POLL_S  # scenario seconds
    # Accounts start empty; once the tool is ready, every position opens at once, out of band.
    empty = {**sc, "accounts": [{**a, "positions": []} for a in sc["accounts"]]}
    opened = [{"account": a["name"], **p} for a in sc["accounts"] for p in a["positions"]]
    async with sim_process(empty, stamp=False) as sim:
        with tempfile.TemporaryDirectory(prefix="bench-conv-") as tmp:
            stop = await _start(tool, sim, sc, Path(tmp), scale)
            t0 = time.monotonic()
            await sim.post("/bench/open", {"lo": "9.5", "hi": "10.5", "positions": opened})
            if script:
                scaled = [{**s, "at": s["at"] / scale} for s in script]
                await sim.post("/bench/script", {"steps": scaled})
            try:
                while time.monotonic() - t0 < horizon_s / scale:
                    await asyncio.sleep(0.02)
                    band = await sim.get("/bench/band")
                    stats = await sim.get("/bench/stats")
                    if stats["script_done"] and band["out_now"] == 0:
                        break
            finally:
                await stop()
            band = await sim.get("/bench/band")
            requests = await sim.get("/bench/margin-requests")
    converged = band["converged_after_s"]
    return {
        "converged_s": None if converged is None else round(converged * scale, 1),
        "margin_calls": len(requests),
        "rejected_59301": sum(r["code"] == "59301" for r in requests),
        "other_errors": sum(r["code"] not in ("0", "59301") for r in requests),
        "out_of_band_position_s": round(band["out_s"] * scale, 1),
        "episodes": band["episodes"],
        "out_of_band_at_end": band["out_now"],
    }


async def _start(tool: str, sim: Any, sc: dict[str, Any], tmp: Path, scale: float) -> Any:
    if tool == "old poller":
        clients = {
            a["name"]: OkxRestClient(
                sim.url,
                Credentials(a["apiKey"], a["secretKey"], a["passphrase"]),
                simulated=True,
                account=a["name"],
            )
            for a in sc["accounts"]
        }
        poller = OldPoller(clients, interval_s=POLL_S / scale, first_after_s=POLL_S / 2 / scale)
        task = asyncio.create_task(poller.run())

        async def stop_poller() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for c in clients.values():
                await c.aclose()

        return stop_poller
    cfg = write_config(
        tmp,
        sim,
        sc,
        debounce_ms=max(1, round(500 / scale)),
        leading_edge=tool == "reactor",
        cooldown_s=5 / scale,
        reconcile_interval_s=60 / scale,
    )
    cm = reactor(cfg, probes=False)
    rt = await cm.__aenter__()
    names = list(rt.sessions)
    await wait_until(lambda: all(rt.engine.book.is_fresh(n) for n in names), 60)

    async def stop_reactor() -> None:
        await cm.__aexit__(None, None, None)

    return stop_reactor


def _ratio(old: Any, new: Any) -> float | None:
    if old is None or new is None or not new:
        return None
    return round(float(old) / float(new), 1)


async def run(quick: bool) -> dict[str, Any]:
    scale = 600.0 if quick else 100.0
    fall, script, script_s = falling()
    scenarios = {
        "CRO case": (cro(), [], 0.0),
        "50 random out-of-band positions": (random50(), [], 0.0),
        "falling market, floor blocks": (fall, script, script_s),
    }
    out: dict[str, Any] = {"scale": scale, "poll_interval_s": POLL_S, "scenarios": {}}
    for name, (sc, steps, length) in scenarios.items():
        results = {}
        for tool in TOOLS:
            results[tool] = await run_tool(tool, sc, steps, length, scale)
            r = results[tool]
            print(
                f"  {name:32s} {tool:28s} converged {r['converged_s']} s, calls "
                f"{r['margin_calls']}, 59301 {r['rejected_59301']}, out of band "
                f"{r['out_of_band_position_s']} position-s",
                flush=True,
            )
        old, new = results["old poller"], results["reactor"]
        results["ratio old/new"] = {
            k: _ratio(old[k], new[k])
            for k in ("converged_s", "margin_calls", "rejected_59301", "out_of_band_position_s")
        }
        out["scenarios"][name] = results
    return out
