"""Maintenances at random while the price walks: wasted transfers.

``python -m bench.maintenance_race [--positions 50] [--seconds 20] [--seed 7] [--json FILE]``

50 isolated longs at count 1 (margin 10 in band 9.5-10.5) receive maintenances at random times
(a market buy of the position's size: OKX adds the fill's initial margin and the count moves to
2, then 3) while the simulator walks the mark price. The same script runs in four ways:

- ``fills``: ``maintenance.detect`` set, the no-race gate on (as shipped, ``grace_ms`` 300);
- ``fills, no gate``: counts from fills, but ``grace_ms`` 0 (the gate never holds);
- ``record after N ms``: no detection; the strategy reports each maintenance through
  ``POST /api/maintenance`` N ms after the fill (100, 300, 500): the way counts moved before.

A *wasted transfer* is a margin call followed, on the same position, by one in the opposite
direction (the second undoes part of the first). Everything runs in this process over real
sockets (simulator and reactor), in real time.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from reactor import log as logging_setup
from reactor.config import AccountConfig, Config
from reactor.okx.endpoints import MARGIN_BALANCE, ORDER
from reactor.okx.signing import iso_timestamp, rest_sign
from reactor.service import app
from reactor.sim.scenario import scenario_from_dict
from reactor.sim.server import Simulator
from reactor.store import SqliteLedger

ACCOUNTS = 5
TOKEN = "bench-maintenance-token-0123456789"
TARGETS = [
    {"min_count": 0, "target": "10", "band": ["9.5", "10.5"]},
    {"min_count": 2, "target": "20", "band": ["19", "21"]},
    {"min_count": 3, "target": "30", "band": ["28.5", "31.5"]},
]
BANDS = {1: (Decimal("9.5"), Decimal("10.5")), 2: (Decimal("19"), Decimal("21"))}
BANDS[3] = (Decimal("28.5"), Decimal("31.5"))


@dataclass
class Result:
    mode: str
    maintenances: int
    calls: int
    wasted: int  # calls later reversed on the same position
    in_band_at_end: int
    positions: int
    seconds: float


def _scenario(positions: int, seed: int) -> dict[str, Any]:
    per = -(-positions // ACCOUNTS)
    instruments = [
        {"instId": f"I{i:02d}-USDT-SWAP", "ctVal": "10", "markPx": "0.0950", "mmrRate": "0.004"}
        for i in range(per)
    ]
    accounts = []
    n = 0
    for a in range(ACCOUNTS):
        rows = []
        for i in range(per):
            if n == positions:
                break
            rows.append(
                {
                    "instId": f"I{i:02d}-USDT-SWAP",
                    "posSide": "long",
                    "pos": "108",
                    "avgPx": "0.0950",
                    "lever": "20",
                    "margin": "10",
                }
            )
            n += 1
        accounts.append(
            {
                "name": f"acct{a}",
                "apiKey": f"key-{a}",
                "secretKey": f"secret-{a}",
                "passphrase": f"pass-{a}",
                "balance": "100000",
                "positions": rows,
            }
        )
    return {
        # The reactor's floor is the simulator's lenient reduce rule (see tests/engine).
        "mechanics": {"reduce_rule": {"im_basis": "mark", "fee_reserve": False}},
        "price_walk": {"enabled": True, "interval_s": 0.5, "max_step_pct": "0.2", "seed": seed},
        "instruments": instruments,
        "accounts": accounts,
    }


def _config(state: Path, sim: Simulator, mode: str) -> Config:
    raw: dict[str, Any] = {
        "venue": {"kind": "sim", "rest_url": sim.url, "ws_private_url": sim.ws_url},
        "state_dir": str(state),
        "accounts": [{"name": f"acct{a}"} for a in range(ACCOUNTS)],
        "targets": TARGETS,
        "timing": {"reconcile_interval_s": 60},
        "status": {"enabled": True, "port": 0},
        "log": {"format": "json", "level": "info"},
    }
    if mode.startswith("fills"):
        grace = 0 if "no gate" in mode else 300
        raw["maintenance"] = {"detect": {"tag": "maint"}, "grace_ms": grace}
    return Config.model_validate(raw)


async def _signed(url: str, acct: dict[str, Any], method: str, path: str, body: str) -> Any:
    ts = iso_timestamp(time.time())
    headers = {
        "OK-ACCESS-KEY": acct["apiKey"],
        "OK-ACCESS-SIGN": rest_sign(acct["secretKey"], ts, method, path, body),
        "OK-ACCESS-TIMESTAMP": ts,
        "OK-ACCESS-PASSPHRASE": acct["passphrase"],
        "Content-Type": "application/json",
        "x-simulated-trading": "1",
    }
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        r = await c.request(method, path, content=body.encode(), headers=headers)
    return r.json()


async def run(mode: str, positions: int, seconds: float, seed: int) -> Result:
    """One mode: fresh simulator, fresh state dir, the same random plan for a given seed.

    The accounts' credentials and the API token go through the environment, as in a
    deployment; they are removed again afterwards."""
    saved = dict(os.environ)
    try:
        return await _run(mode, positions, seconds, seed)
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def _run(mode: str, positions: int, seconds: float, seed: int) -> Result:
    logging_setup.configure("info", "json", stream=io.StringIO())  # type: ignore[arg-type]
    scen = _scenario(positions, seed)
    sim = Simulator(scenario_from_dict(scen), price_walk=True)
    await sim.start("127.0.0.1", 0)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        for acct in scen["accounts"]:
            prefix = AccountConfig(name=acct["name"]).env_prefix
            os.environ[f"{prefix}_API_KEY"] = acct["apiKey"]
            os.environ[f"{prefix}_SECRET_KEY"] = acct["secretKey"]
            os.environ[f"{prefix}_PASSPHRASE"] = acct["passphrase"]
        os.environ["REACTOR_API_TOKEN"] = TOKEN
        async with httpx.AsyncClient(base_url=sim.url, timeout=10) as admin:
            snapshot = (await admin.get("/sim/state")).json()
            keys = []
            # every position: its first maintenance
            with SqliteLedger(state / app.LEDGER_FILE) as led:
                for a in snapshot["accounts"]:
                    for p in a["positions"]:
                        keys.append((a["name"], p["instId"]))
                        led.record(
                            a["name"],
                            p["instId"],
                            "long",
                            f"first-{p['instId']}",
                            source="cli",
                            c_time=int(p["cTime"]),
                        )
            rt = await app.start(_config(state, sim, mode))
            try:
                await asyncio.sleep(3.0)  # connected, snapshots, recovery
                await admin.post("/sim/reset-requests", json={})
                rng = random.Random(seed)
                counts = {k: 1 for k in keys}
                plan = []
                for k in keys:  # one or two maintenances per position, at random times
                    for _ in range(rng.choice((1, 1, 2))):
                        plan.append((rng.uniform(0, seconds), k))
                plan.sort()
                by_name = {a["name"]: a for a in scen["accounts"]}
                start = time.monotonic()
                tasks = []
                for at, (account, inst) in plan:
                    await asyncio.sleep(max(0.0, start + at - time.monotonic()))
                    tasks.append(
                        asyncio.ensure_future(
                            _maintain(sim.url, rt.status_url, by_name[account], inst, mode)
                        )
                    )
                    counts[(account, inst)] += 1
                await asyncio.gather(*tasks)
                await asyncio.sleep(6.0)  # every correction done (cooldown 5 s)
                reqs = (await admin.get("/sim/requests")).json()
                final = (await admin.get("/sim/state")).json()
            finally:
                await app.stop(rt)
                await sim.stop()
    calls = [
        (r["account"], json.loads(r["body"]))
        for r in reqs
        if r["path"].startswith(MARGIN_BALANCE) and r["code"] == "0"
    ]
    last: dict[tuple[str, str], str] = {}
    wasted = 0
    for account, body in calls:
        k = (account, body["instId"])
        if k in last and last[k] != body["type"]:
            wasted += 1
        last[k] = body["type"]
    in_band = 0
    for a in final["accounts"]:
        for p in a["positions"]:
            lo, hi = BANDS[min(counts[(a["name"], p["instId"])], 3)]
            in_band += lo <= Decimal(p["margin"]) <= hi
    return Result(mode, len(plan), len(calls), wasted, in_band, len(keys), seconds)


async def _maintain(url: str, status_url: str | None, acct: dict[str, Any], inst: str, mode: str):
    tag = "maint" if mode.startswith("fills") else ""
    body = {
        "instId": inst,
        "tdMode": "isolated",
        "side": "buy",
        "posSide": "long",
        "ordType": "market",
        "sz": "108",
        "tag": tag,
    }
    out = await _signed(url, acct, "POST", ORDER, json.dumps(body))
    ord_id = out["data"][0]["ordId"]
    if mode.startswith("record after"):
        await asyncio.sleep(int(mode.split()[2]) / 1000)
        assert status_url is not None
        async with httpx.AsyncClient(base_url=status_url, timeout=10) as c:
            await c.post(
                "/api/maintenance",
                json={"account": acct["name"], "instId": inst, "posSide": "long", "ordId": ord_id},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )


MODES = (
    "fills",
    "fills, no gate",
    "record after 100 ms",
    "record after 300 ms",
    "record after 500 ms",
)


def _line(r: Result) -> str:
    return (
        f"{r.mode:22} maintenances {r.maintenances:3}  calls {r.calls:3}  "
        f"wasted {r.wasted:3}  in band at end {r.in_band_at_end}/{r.positions}"
    )


async def run_all(quick: bool, seed: int = 7) -> list[dict[str, Any]]:
    """Every mode (``python -m bench --only maintenance``); quick: 20 positions over 8 s."""
    positions, seconds = (20, 8.0) if quick else (50, 20.0)
    out = []
    for mode in MODES:
        r = await run(mode, positions, seconds, seed)
        print("  " + _line(r), flush=True)
        out.append(asdict(r))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.maintenance_race", description=__doc__)
    ap.add_argument("--positions", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    results = []
    for mode in MODES:
        results.append(asyncio.run(run(mode, args.positions, args.seconds, args.seed)))
        print(_line(results[-1]), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")


if __name__ == "__main__":
    main()
