"""A burst of corrections across 500 accounts under the unit's file-descriptor limit.

``python -m bench.burst [--accounts 500] [--per-account 4] [--nofile 65536]``: the simulator
(``bench.simproc``, its own process, OKX's rate limits on) holds ``accounts x per_account``
positions in band; the reactor (in this process, as ``reactor run`` wires it, with the soft and
hard ``RLIMIT_NOFILE`` set to ``--nofile`` first, as ``LimitNOFILE=`` does in the units) starts,
then every position is pushed out of band at once. Reported: margin calls received and their
codes, ``margin.adjust.*`` events by name, ``process.fd.exhausted`` (EMFILE named), the time
until every position is back in band, and the descriptors the process held at the peak.

``--nofile 1024`` reproduces systemd's default soft limit (with the hard limit at 1024, so the
reactor cannot raise it): the failure the unit's ``LimitNOFILE=65536`` prevents.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import account, position, sim_process, start_hooks, wait_until, write_config
from reactor import log as logging_setup
from reactor.fdlimit import raise_nofile_limit
from reactor.service import app

UNIT_NOFILE = 65536  # deploy/okx-margin-reactor.service LimitNOFILE=


def scenario(accounts: int, per_account: int, instruments: int = 20) -> dict[str, Any]:
    rng = random.Random(11)
    insts = [
        {"instId": f"B{i:03d}-USDT-SWAP", "ctVal": "1", "markPx": "100", "tickSz": "0.01"}
        for i in range(instruments)
    ]
    out = []
    for n in range(accounts):
        positions = [position(inst["instId"]) for inst in rng.sample(insts, per_account)]
        out.append(account(n, positions))
    return {"instruments": insts, "accounts": out}


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # EMFILE itself: at the limit
        return -1


async def run(accounts: int, per_account: int, nofile: int, connect_rate: int) -> dict[str, Any]:
    hard_now = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard_now != resource.RLIM_INFINITY and nofile > hard_now:
        nofile = hard_now  # a container's own ceiling; raising it needs CAP_SYS_RESOURCE
    sc = scenario(accounts, per_account)
    # The reactor's connection pacer is scaled up for a short start-up: scale the simulator's
    # DOC-WS limit of new connections per second the same way (REST rate limits stay OKX's).
    sc["simulator"] = {"ws_connects_per_s": connect_rate}
    keys = [[a["name"], p["instId"], p["posSide"]] for a in sc["accounts"] for p in a["positions"]]
    result: dict[str, Any] = {
        "accounts": accounts,
        "positions": len(keys),
        "nofile": nofile,
        "connect_rate_per_s": connect_rate,
    }
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        log_path = Path(tmp) / "reactor.log"
        async with sim_process(sc, rate_limits=True, stamp=False) as sim:
            # The reactor's limit only: the simulator (started above) keeps the machine's.
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            cfg = write_config(Path(tmp), sim, sc, cooldown_s=2, request_timeout_s=10)
            with log_path.open("w") as sink:
                logging_setup.configure("info", "json", stream=sink)
                soft, hard = raise_nofile_limit(accounts=accounts)
                result["rlimit_nofile"] = [soft, hard]
                t0 = time.perf_counter()
                rt = await app.start(
                    cfg, hooks=start_hooks(connect_rate=connect_rate, probes=False)
                )
                app.tune_gc()
                try:
                    names = list(rt.sessions)
                    fresh = await wait_until(
                        lambda: all(rt.engine.book.is_fresh(n) for n in names), 600, 0.05
                    )
                    result["all_fresh_s"] = round(time.perf_counter() - t0, 1) if fresh else None
                    result["fds_at_rest"] = open_fds()
                    await asyncio.sleep(1.0)
                    before = len(await sim.get("/bench/margin-requests"))
                    t1 = time.perf_counter()
                    await sim.post(
                        "/bench/perturb",
                        {"keys": keys, "values": ["15"], "rate": 100000, "count": len(keys)},
                    )
                    peak = 0

                    async def settled() -> bool:
                        nonlocal peak
                        peak = max(peak, open_fds())
                        rows = await sim.get("/bench/positions")
                        lo, hi = Decimal("9.5"), Decimal("10.5")
                        return all(lo <= Decimal(r["margin"]) <= hi for r in rows)

                    deadline = time.monotonic() + 120
                    done = False
                    while time.monotonic() < deadline:
                        await asyncio.sleep(0.2)
                        try:
                            if await settled():
                                done = True
                                break
                        except Exception:  # the bench's own reads may hit EMFILE
                            continue
                    result["all_in_band_s"] = round(time.perf_counter() - t1, 2) if done else None
                    result["fds_peak"] = peak
                    await asyncio.sleep(1.0)
                    calls = (await sim.get("/bench/margin-requests"))[before:]
                    result["margin_calls"] = len(calls)
                    result["codes"] = dict(Counter(c["code"] for c in calls))
                finally:
                    await app.stop(rt)
        events: Counter[str] = Counter()
        for line in log_path.read_text().splitlines():
            try:
                name = json.loads(line).get("event", "")
            except ValueError:
                continue
            if name.startswith(("margin.adjust.", "process.fd.", "rest.", "ws.login.failed")):
                events[name] += 1
    result["events"] = dict(sorted(events.items()))
    result["failed_calls"] = sum(
        n for e, n in events.items() if e in ("margin.adjust.failed", "margin.adjust.unknown")
    ) + sum(n for code, n in result.get("codes", {}).items() if code != "0")
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.burst")
    p.add_argument("--accounts", type=int, default=500)
    p.add_argument("--per-account", type=int, default=4)
    p.add_argument("--nofile", type=int, default=UNIT_NOFILE)
    p.add_argument("--connect-rate", type=int, default=50, help="connections/s (OKX: 3)")
    args = p.parse_args(argv)
    out = asyncio.run(run(args.accounts, args.per_account, args.nofile, args.connect_rate))
    print(json.dumps(out), flush=True)
    sys.exit(0 if out.get("failed_calls") == 0 and out.get("all_in_band_s") else 1)


if __name__ == "__main__":
    main()
