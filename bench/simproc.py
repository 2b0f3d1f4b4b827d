"""The simulator in its own process, plus a small control API that drives it from inside.

Running the simulator in a separate process keeps its CPU (building and sending thousands of
pushes a second) off the reactor's core, so the reactor's CPU share can be measured on its own.
The drivers (price walk at a target push rate, correction injector, scripted market, band
tracking) run in the simulator's process too, so they cost the reactor nothing.

``python -m bench.simproc SCENARIO.json [--no-rate-limits] [--stamp]`` prints one JSON line
``{"url", "ws_url", "control"}`` on stdout once listening, then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.common import dist_ms, lag_probe
from reactor import log as logging_setup
from reactor.okx.signing import parse_iso_timestamp
from reactor.sim.exchange import Change
from reactor.sim.scenario import scenario_from_dict
from reactor.sim.server import Simulator
from reactor.sim.ws_limits import WsLimits
from reactor.store import Ledger, SqliteLedger
from reactor.testing import MARGIN_BALANCE, TARGETS

MARGIN_PATH = MARGIN_BALANCE
TICK_S = 0.005


def band_for(count: int) -> tuple[Decimal, Decimal]:
    """The desk's band for a maintenance count (reactor.testing.TARGETS)."""
    rule = [t for t in TARGETS if t["min_count"] <= count][-1]
    return Decimal(rule["band"][0]), Decimal(rule["band"][1])


class BandTracker:
    """Exact position-seconds out of band, from every change the simulator pushes; the band of
    a position follows its maintenance count (:meth:`set_band`)."""

    def __init__(self, sim: Simulator, lo: Decimal, hi: Decimal) -> None:
        self.sim = sim
        self.lo, self.hi = lo, hi
        self.bands: dict[tuple[str, str, str], tuple[Decimal, Decimal]] = {}
        self.start = time.time()
        self.out_s = 0.0
        self.out_since: dict[tuple[str, str, str], float] = {}
        self.last_in_at = self.start
        self.episodes = 0
        for acct in sim.exchange.accounts.values():
            for p in acct.positions.values():
                if p.mgn_mode == "isolated" and not lo <= p.margin <= hi:
                    self.out_since[(acct.name, p.inst_id, p.pos_side)] = self.start
                    self.episodes += 1

    def on_changes(self, changes: list[Change]) -> None:
        now = time.time()
        for c in changes:
            d = c.position
            if d["mgnMode"] != "isolated":
                continue
            key = (c.account, d["instId"], d["posSide"])
            lo, hi = self.bands.get(key, (self.lo, self.hi))
            self._mark(key, d["pos"] != "0" and not lo <= Decimal(d["margin"]) <= hi, now)

    def set_band(self, key: tuple[str, str, str], lo: Decimal, hi: Decimal) -> None:
        """A new maintenance count moved the position's band: it may be out of band now."""
        self.bands[key] = (lo, hi)
        p = self.sim.exchange.accounts[key[0]].positions.get((key[1], key[2], "isolated"))
        if p is not None:
            self._mark(key, not lo <= p.margin <= hi, time.time())

    def _mark(self, key: tuple[str, str, str], out: bool, now: float) -> None:
        since = self.out_since.get(key)
        if out and since is None:
            self.out_since[key] = now
            self.episodes += 1
        elif not out and since is not None:
            del self.out_since[key]
            self.out_s += now - since
            self.last_in_at = now

    def report(self) -> dict[str, Any]:
        now = time.time()
        open_s = sum(now - t for t in self.out_since.values())
        return {
            "out_s": self.out_s + open_s,
            "out_now": len(self.out_since),
            "episodes": self.episodes,
            "converged_after_s": self.last_in_at - self.start if not self.out_since else None,
            "elapsed_s": now - self.start,
        }


class Control:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.ex = sim.exchange
        self.pushes = 0  # position updates handed to the WebSocket writers
        self.walk_task: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.perturbed = 0
        self.perturb_done = True
        self.script_done = True
        self.band: BandTracker | None = None
        self.counts: dict[tuple[str, str, str], int] = {}  # maintenances recorded
        self.lag: list[float] = []  # this event loop's lag (bench.common.lag_probe)
        sim.on_changes = self._on_changes

    def _on_changes(self, changes: list[Change]) -> None:
        self.pushes += len(changes)
        if self.band is not None:
            self.band.on_changes(changes)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/bench/stats", self.stats),
            web.post("/bench/walk", self.walk),
            web.post("/bench/perturb", self.perturb),
            web.post("/bench/script", self.script),
            web.post("/bench/band", self.band_start),
            web.post("/bench/open", self.open_positions),
            web.get("/bench/band", self.band_report),
            web.get("/bench/margin-requests", self.margin_requests),
            web.get("/bench/positions", self.positions),
            web.get("/bench/backlog", self.backlog),
        ]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "pushes": self.pushes,
                "cpu_s": time.process_time(),
                "wall": time.time(),
                "perturbed": self.perturbed,
                "perturb_done": self.perturb_done,
                "script_done": self.script_done,
            }
        )

    # -- price walk at a target push rate ---------------------------------------------------
    async def walk(self, request: web.Request) -> web.Response:
        raw = await request.json()
        if self.walk_task is not None:
            self.walk_task.cancel()
            self.walk_task = None
        rate = float(raw.get("rate", 0))
        if rate > 0:
            step = Decimal(str(raw.get("step_pct", "0.05"))) / 100
            self.walk_task = asyncio.create_task(
                self._walk(rate, step, random.Random(raw.get("seed", 1)))
            )
        return web.json_response({"ok": True})

    async def _walk(self, rate: float, step: Decimal, rng: random.Random) -> None:
        insts = list(self.ex.instruments.values())
        start = time.monotonic()
        sent = 0
        while True:
            await asyncio.sleep(TICK_S)
            due = rate * (time.monotonic() - start)
            while sent < due:
                inst = rng.choice(insts)
                sign = 1 if rng.random() < 0.5 else -1
                px = (inst.mark_px * (1 + sign * step)).quantize(inst.tick_sz)
                changes = self._mark_as_event(inst.inst_id, px)
                self.sim.apply(changes)
                sent += max(1, len(changes))

    def _mark_as_event(self, inst_id: str, px: Decimal) -> list[Change]:
        """Bench load only: OKX pushes nothing on a mark move (the simulator is silent too), so
        the walk pushes every position on the instrument as if an event had changed it."""
        liquidated = self.ex.set_mark_price(inst_id, px)
        moved = [
            Change(a.name, self.ex.position_dict(a.name, p))
            for a in self.ex.accounts.values()
            for p in a.positions.values()
            if p.inst_id == inst_id
        ]
        return moved + liquidated

    # -- corrections: put positions out of band one at a time ------------------------------
    async def perturb(self, request: web.Request) -> web.Response:
        raw = await request.json()
        keys = [tuple(k) for k in raw["keys"]]
        values = [Decimal(v) for v in raw["values"]]
        self.perturbed = 0
        self.perturb_done = False
        self._spawn(self._perturb(keys, values, float(raw["rate"]), int(raw["count"])))
        return web.json_response({"ok": True})

    async def _perturb(
        self, keys: list[tuple[str, ...]], values: list[Decimal], rate: float, count: int
    ) -> None:
        start = time.monotonic()
        try:
            for n in range(count):
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                acct, inst_id, side = keys[n % len(keys)]
                value = values[(n // len(keys)) % len(values)]
                p = self.ex.accounts[acct].positions.get((inst_id, side, "isolated"))
                if p is None:
                    continue
                self.sim.apply(
                    self.ex.set_position(
                        acct,
                        inst_id,
                        side,
                        pos=p.pos,
                        avg_px=p.avg_px,
                        lever=p.lever,
                        margin=value,
                        mgn_mode=p.mgn_mode,
                    )
                )
                self.perturbed += 1
        finally:
            self.perturb_done = True

    # -- scripted market, relative to now: mark moves [{"at": s, "instId", "markPx"}] and
    # maintenances [{"at", "kind": "maintenance", "account", "instId", "posSide", "add",
    # "record_after"}]: the desk buys ``add`` more contracts at mark (the fill brings their
    # initial margin), and the maintenance record reaches the ledger ``record_after`` seconds
    # later (records are written only after the order succeeded: docs/spec/domain.md).
    async def script(self, request: web.Request) -> web.Response:
        raw = await request.json()
        self.script_done = False
        self._spawn(self._script(raw["steps"], raw.get("ledger")))
        return web.json_response({"ok": True})

    async def _script(self, steps: list[dict[str, Any]], ledger_path: str | None) -> None:
        start = time.monotonic()
        ledger = SqliteLedger(Path(ledger_path)) if ledger_path else None
        records: list[asyncio.Task[None]] = []
        try:
            for n, s in enumerate(steps):
                delay = start + float(s["at"]) - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if s.get("kind") == "maintenance":
                    assert ledger is not None, "a maintenance script needs the ledger path"
                    self._maintenance_fill(s)
                    records.append(
                        asyncio.create_task(self._record_later(ledger, s, f"bench-m{n}"))
                    )
                    continue
                changes = self.ex.set_mark_price(s["instId"], Decimal(s["markPx"]))
                self.sim.apply(changes)
            await asyncio.gather(*records)
        finally:
            if ledger is not None:
                ledger.close()
            self.script_done = True

    def _maintenance_fill(self, s: dict[str, Any]) -> None:
        acct, inst_id, side = s["account"], s["instId"], s["posSide"]
        p = self.ex.accounts[acct].positions[(inst_id, side, "isolated")]
        inst = self.ex.instruments[inst_id]
        add = Decimal(s["add"])
        pos = p.pos + add
        avg = ((p.avg_px * p.pos + inst.mark_px * add) / pos).quantize(inst.tick_sz)
        fill_im = add * inst.ct_val * inst.mark_px / p.lever
        self.sim.apply(
            self.ex.set_position(
                acct, inst_id, side, pos=pos, avg_px=avg, lever=p.lever, margin=p.margin + fill_im
            )
        )

    async def _record_later(self, ledger: Ledger, s: dict[str, Any], key: str) -> None:
        await asyncio.sleep(float(s["record_after"]))
        ledger.record(s["account"], s["instId"], s["posSide"], key, source="cli")
        pos_key = (s["account"], s["instId"], s["posSide"])
        self.counts[pos_key] = self.counts.get(pos_key, 0) + 1
        if self.band is not None:
            self.band.set_band(pos_key, *band_for(self.counts[pos_key]))

    # -- band tracking --------------------------------------------------------------------
    async def band_start(self, request: web.Request) -> web.Response:
        raw = await request.json()
        self.band = BandTracker(self.sim, Decimal(raw["lo"]), Decimal(raw["hi"]))
        return web.json_response({"ok": True})

    async def open_positions(self, request: web.Request) -> web.Response:
        """Open positions now (all in one batch), tracking the band from this instant."""
        raw = await request.json()
        self.band = BandTracker(self.sim, Decimal(raw["lo"]), Decimal(raw["hi"]))
        for p in raw["positions"]:
            self.sim.apply(
                self.ex.set_position(
                    p["account"],
                    p["instId"],
                    p["posSide"],
                    pos=Decimal(p["pos"]),
                    avg_px=Decimal(p["avgPx"]),
                    lever=Decimal(p["lever"]),
                    margin=Decimal(p["margin"]),
                )
            )
        return web.json_response({"ok": True})

    async def band_report(self, request: web.Request) -> web.Response:
        return web.json_response(self.band.report() if self.band else {})

    async def margin_requests(self, request: web.Request) -> web.Response:
        out = [
            {"account": r["account"], "body": r["body"], "code": r["code"], "time": r["time"]}
            for r in self.sim.rest.requests
            if r["path"] == MARGIN_PATH
        ]
        return web.json_response(out)

    async def backlog(self, request: web.Request) -> web.Response:
        """Since ``?since=`` (wall time): this loop's lag and, per path and answer code, how
        old the signed requests were when handled (handled minus signed): a signature older
        than the 50102 window is a backlog here or in the sender, and the two lags say where."""
        since = float(request.query.get("since", "0"))
        ages: dict[str, list[float]] = {}
        for r in self.sim.rest.requests:
            if r["time"] < since or not r.get("signed"):
                continue
            with contextlib.suppress(ValueError):
                age = r["time"] - parse_iso_timestamp(r["signed"])
                ages.setdefault(f"{r['path'].split('?')[0]} {r['code']}", []).append(age)
        lag, self.lag[:] = list(self.lag), []
        return web.json_response(
            {"loop_lag": dist_ms(lag), "ages": {k: dist_ms(v) for k, v in sorted(ages.items())}}
        )

    async def positions(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {
                    "account": a.name,
                    "instId": p.inst_id,
                    "posSide": p.pos_side,
                    "margin": str(p.margin),
                }
                for a in self.ex.accounts.values()
                for p in a.positions.values()
            ]
        )


async def serve(scenario_path: Path, *, rate_limits: bool, stamp: bool) -> None:
    scenario = scenario_from_dict(json.loads(scenario_path.read_text()), str(scenario_path))
    sim = Simulator(
        scenario,
        price_walk=False,
        rate_limits=rate_limits,
        stamp_pushes=stamp,
        idle_timeout=600,
        # The benchmarks scale the reactor's connect rate past OKX's 3/s per IP
        # (common.start_hooks): the simulator must not refuse those connections.
        ws_limits=WsLimits(connects_per_s=0),
    )
    url = await sim.start("127.0.0.1", 0)
    control = Control(sim)
    done = asyncio.Event()
    lag_task = asyncio.create_task(lag_probe(control.lag, done))
    app = web.Application()
    app.add_routes(control.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(
        json.dumps({"url": url, "ws_url": sim.ws_url, "control": f"http://{host}:{port}"}),
        flush=True,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    await lag_task
    for task in list(control.tasks):
        task.cancel()
    if control.walk_task is not None:
        control.walk_task.cancel()
    with contextlib.suppress(Exception):
        await sim.stop()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench.simproc")
    ap.add_argument("scenario", type=Path)
    ap.add_argument("--no-rate-limits", action="store_true")
    ap.add_argument("--stamp", action="store_true")
    args = ap.parse_args(argv)
    logging_setup.configure("warning", "json", stream=sys.stderr)
    asyncio.run(serve(args.scenario, rate_limits=not args.no_rate_limits, stamp=args.stamp))


if __name__ == "__main__":
    main()
