"""Part 2: convergence of the old 5-minute poller versus the reactor, on the same scenarios.

Scaled time: every duration of a run - the poller's 300 s interval, the market script, the
reactor's debounce (500 ms), cooldown (5 s), reconcile interval (60 s) and ledger poll - is
divided by ``scale``; measured wall times are multiplied by ``scale`` and reported in scenario
seconds. Real processing time is not scaled, so it shows up ``scale`` times larger: a quick run
at 1/600 once gave 98 s instead of 9.3 s for 50 positions, and 59301s in the falling market.
The scale is therefore chosen per design and scenario so that processing stays small against
what is measured: the reactor runs event-only scenarios in real time (scale 1: its figures are
processing), the scripted ones at 1/100 (falling market: price steps 7 s apart) and 1/20
(maintenances: a record follows its fill by 0.2-1 s); the poller runs at 1/100 (1/300 quick),
where its processing is a few seconds against its 300 s interval. Every design/scenario pair
runs ``repeats`` times and the spread (min / median / max) is reported.
The poller's first round comes half an interval after the positions go out of band (the
expected delay when the event falls at a random point of its cycle).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import yaml

from bench.common import (
    BENCH_CONNECT_RATE,
    ROOT,
    account,
    position,
    reactor,
    sim_process,
    wait_until,
    write_config,
)
from bench.poller import OldPoller
from reactor.domain.fills import DEFAULT_RECORD_GRACE_MS
from reactor.okx.credentials import Credentials
from reactor.okx.rest import OkxRestClient
from reactor.service.app import LEDGER_FILE
from reactor.sim.scenario import Scenario
from reactor.store import SqliteLedger

POLL_S = 300.0
OLD, NEW, TRAILING = "old poller", "reactor", "reactor (trailing debounce)"
TOOLS = (OLD, NEW, TRAILING)
METRICS = (
    "converged_s",
    "margin_calls",
    "rejected_59301",
    "reversed",
    "out_of_band_position_s",
    "out_of_band_at_end",
)
# sim-trade's reduce rule (docs/spec/okx-fidelity.md §4): a scenario setting once it is in the
# simulator.
SIM_HAS_REDUCE_RULE = "mechanics" in Scenario.model_fields
LENIENT = {"reduce_rule": {"im_basis": "mark", "fee_reserve": False}}
STRICTEST = {"reduce_rule": {"im_basis": "max", "fee_reserve": True}}


@dataclass
class Case:
    """One scenario: its accounts, an optional script (scenario seconds), and how to run it."""

    scenario: dict[str, Any]
    script: list[dict[str, Any]] = field(default_factory=list)
    script_s: float = 0.0
    reactor_scale: float = 1.0
    reactor_horizon_s: float = 60.0  # scenario seconds after the script
    maintenance: bool = False  # the script writes maintenance records to the ledger
    mechanics: dict[str, Any] | None = None


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
            [position(i["instId"], lever="10", margin="30") for i in insts],
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


def maintenances(
    seed: int = 11, count: int = 16, window_s: float = 300.0
) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    """12 positions in band (1 contract at 100, 20x, margin 10) and ``count`` maintenances at
    random times: each buys one more contract (its initial margin, 5, comes with the fill) and
    its record reaches the ledger 0.2-1 s later. The second maintenance of a position moves
    its target to 20, the third to 30. A design that acts on the fill before the record comes
    reduces towards the old target and adds back: a wasted transfer (``reversed``)."""
    rng = random.Random(seed)
    insts = [
        {"instId": f"M{i}-USDT-SWAP", "ctVal": "1", "markPx": "100", "tickSz": "0.01"}
        for i in range(3)
    ]
    accounts = [
        account(
            n,
            [position(i["instId"]) for i in insts],
        )
        for n in range(4)
    ]
    keys = [(a["name"], p["instId"], p["posSide"]) for a in accounts for p in a["positions"]]
    done: dict[tuple[str, str, str], int] = {}
    times = sorted(rng.uniform(30, 30 + window_s) for _ in range(count))
    steps = []
    for at in times:
        key = rng.choice([k for k in keys if done.get(k, 0) < 4])
        done[key] = done.get(key, 0) + 1
        steps.append(
            {
                "at": round(at, 3),
                "kind": "maintenance",
                "account": key[0],
                "instId": key[1],
                "posSide": key[2],
                "add": "1",
                "record_after": round(rng.uniform(0.2, 1.0), 3),
            }
        )
    return {"instruments": insts, "accounts": accounts}, steps, 30 + window_s + 1


def cases() -> dict[str, Case]:
    fall, fall_script, fall_s = falling()
    maint, maint_script, maint_s = maintenances()
    out = {
        "CRO case": Case(cro()),
        "50 random out-of-band positions": Case(random50()),
        "falling market, floor blocks": Case(fall, fall_script, fall_s, reactor_scale=100),
        "maintenances at random": Case(
            maint, maint_script, maint_s, reactor_scale=20, maintenance=True
        ),
    }
    if SIM_HAS_REDUCE_RULE:
        for c in out.values():
            c.mechanics = LENIENT  # the rule these figures were first measured with
        out["falling market, strictest reduce rule"] = Case(
            fall, fall_script, fall_s, reactor_scale=100, mechanics=STRICTEST
        )
    return out


def reversed_transfers(requests: list[dict[str, Any]]) -> int:
    """Applied transfers that the next applied transfer on the same position undid (a reduce
    followed by an add, or the other way round): margin moved for nothing."""
    last: dict[tuple[str, str, str], str] = {}
    wasted = 0
    for r in sorted(requests, key=lambda r: r["time"]):
        if r["code"] != "0":
            continue
        body = json.loads(r["body"])
        key = (r["account"], body["instId"], body["posSide"])
        if last.get(key) not in (None, body["type"]):
            wasted += 1
        last[key] = body["type"]
    return wasted


async def run_tool(tool: str, case: Case, poller_scale: float) -> dict[str, Any]:
    scale = poller_scale if tool == OLD else case.reactor_scale
    if tool == OLD:
        horizon_s = case.script_s + (3 if case.script else 6) * POLL_S  # scenario seconds
    else:
        horizon_s = case.script_s + case.reactor_horizon_s
    sc = dict(case.scenario)
    if case.mechanics is not None:
        sc["mechanics"] = case.mechanics
    # OKX's regular snapshots (every ~5 s: the only place a mark move shows) and its 50 ms
    # event window run in scenario time too.
    sc["simulator"] = {"time_scale": 1 / scale, "ws_connects_per_s": BENCH_CONNECT_RATE}
    # Accounts start empty; once the tool is ready, every position opens at once.
    empty = {**sc, "accounts": [{**a, "positions": []} for a in sc["accounts"]]}
    opened = [{"account": a["name"], **p} for a in sc["accounts"] for p in a["positions"]]
    async with sim_process(empty, stamp=False) as sim:
        with tempfile.TemporaryDirectory(prefix="bench-conv-") as tmp:
            stop, ledger = await _start(tool, sim, sc, Path(tmp), scale)
            t0 = time.monotonic()
            await sim.post("/bench/open", {"lo": "9.5", "hi": "10.5", "positions": opened})
            if case.script:
                scaled = [
                    {**s, "at": s["at"] / scale}
                    | ({"record_after": s["record_after"] / scale} if "record_after" in s else {})
                    for s in case.script
                ]
                body: dict[str, Any] = {"steps": scaled}
                if case.maintenance:
                    body["ledger"] = str(ledger)
                await sim.post("/bench/script", body)
            try:
                while time.monotonic() - t0 < horizon_s / scale:
                    await asyncio.sleep(0.02)
                    band = await sim.get("/bench/band")
                    stats = await sim.get("/bench/stats")
                    if stats["script_done"] and band["out_now"] == 0:
                        break
                await asyncio.sleep(0.5)  # room for a late (wrong) call to show
            finally:
                await stop()
            band = await sim.get("/bench/band")
            requests = await sim.get("/bench/margin-requests")
    converged = band["converged_after_s"]
    return {
        "scale": scale,
        "converged_s": None if converged is None else round(converged * scale, 2),
        "margin_calls": len(requests),
        "rejected_59301": sum(r["code"] == "59301" for r in requests),
        "other_errors": sum(r["code"] not in ("0", "59301") for r in requests),
        "reversed": reversed_transfers(requests),
        "out_of_band_position_s": round(band["out_s"] * scale, 2),
        "episodes": band["episodes"],
        "out_of_band_at_end": band["out_now"],
    }


async def _start(
    tool: str, sim: Any, sc: dict[str, Any], tmp: Path, scale: float
) -> tuple[Callable[[], Any], Path]:
    """Start one design; returns its stop coroutine function and the ledger it reads."""
    if tool == OLD:
        ledger = SqliteLedger(tmp / "poller.sqlite")
        clients = {
            a["name"]: OkxRestClient(
                sim.url,
                Credentials(a["apiKey"], a["secretKey"], a["passphrase"]),
                simulated=True,
                account=a["name"],
            )
            for a in sc["accounts"]
        }

        def counts(name: str, raw: Mapping[str, Any]) -> int:
            return ledger.count(name, raw["instId"], raw["posSide"], int(raw["cTime"]))

        poller = OldPoller(
            clients,
            interval_s=POLL_S / scale,
            first_after_s=POLL_S / 2 / scale,
            counts=counts,
        )
        task = asyncio.create_task(poller.run())

        async def stop_poller() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for c in clients.values():
                await c.aclose()
            ledger.close()

        return stop_poller, tmp / "poller.sqlite"
    cfg = write_config(
        tmp,
        sim,
        sc,
        debounce_ms=max(1, round(500 / scale)),
        leading_edge=tool == NEW,
        cooldown_s=5 / scale,
        reconcile_interval_s=60 / scale,
        ledger_poll_ms=max(1, round(200 / scale)),
        # the wait for a record posted after a fill, scaled like every other timer
        maintenance={"record_grace_ms": max(1, round(DEFAULT_RECORD_GRACE_MS / scale))},
    )
    cm = reactor(cfg, probes=False)
    rt = await cm.__aenter__()
    names = list(rt.sessions)
    await wait_until(lambda: all(rt.engine.book.is_fresh(n) for n in names), 60)

    async def stop_reactor() -> None:
        await cm.__aexit__(None, None, None)

    return stop_reactor, cfg.state_dir / LEDGER_FILE


def _ratio(old: Any, new: Any) -> float | None:
    if old is None or new is None or not new:
        return None
    return round(float(old) / float(new), 1)


def spread(values: list[Any]) -> dict[str, Any]:
    """min / median / max over runs (None, "not within the horizon", counts as the largest)."""
    if not values:
        return {"min": None, "median": None, "max": None}
    order = sorted(values, key=lambda v: (v is None, v or 0))
    return {"min": order[0], "median": order[(len(order) - 1) // 2], "max": order[-1]}


def spread_pct(s: dict[str, Any]) -> float | None:
    """(max - min) / median in per cent; None when undefined (a None or zero median)."""
    if s["median"] in (None, 0) or s["max"] is None or s["min"] is None:
        return None
    return round(100 * (s["max"] - s["min"]) / s["median"], 1)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": len(runs), "scale": runs[0]["scale"]}
    for k in (*METRICS, "other_errors"):
        out[k] = spread([r[k] for r in runs])
    return out


async def run(quick: bool, repeats: int | None = None, only: str | None = None) -> dict[str, Any]:
    poller_scale = 300.0 if quick else 100.0
    repeats = repeats or (1 if quick else 3)
    out: dict[str, Any] = {
        "poller_scale": poller_scale,
        "repeats": repeats,
        "poll_interval_s": POLL_S,
        "reduce_rule_switch": SIM_HAS_REDUCE_RULE,
        "scenarios": {},
    }
    for name, case in cases().items():
        if only is not None and only not in name:
            continue
        results: dict[str, Any] = {}
        for tool in TOOLS:
            n = 1 if tool == TRAILING else repeats
            runs = [await run_tool(tool, case, poller_scale) for _ in range(n)]
            results[tool] = summarise(runs)
            r = results[tool]
            print(
                f"  {name:38s} {tool:28s} x{n} converged {_fmt(r['converged_s'])} s, calls "
                f"{_fmt(r['margin_calls'])}, 59301 {_fmt(r['rejected_59301'])}, reversed "
                f"{_fmt(r['reversed'])}, out of band {_fmt(r['out_of_band_position_s'])} "
                "position-s",
                flush=True,
            )
        old, new = results[OLD], results[NEW]
        results["ratio old/new"] = {
            k: _ratio(old[k]["median"], new[k]["median"])
            for k in ("converged_s", "margin_calls", "rejected_59301", "out_of_band_position_s")
        }
        out["scenarios"][name] = results
    return out


def _fmt(s: dict[str, Any]) -> str:
    """``median [min-max]``, or the single value of one run."""
    if s["min"] == s["max"]:
        return str(s["median"])
    return f"{s['median']} [{s['min']}-{s['max']}]"


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.convergence [--quick] [--repeats N] [--only SUBSTRING]``."""
    ap = argparse.ArgumentParser(prog="bench.convergence")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--only", help="run the scenarios whose name contains this")
    args = ap.parse_args(argv)
    result = asyncio.run(run(args.quick, args.repeats, args.only))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
