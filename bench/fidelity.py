"""How the reactor behaves against the old simulator's rules vs the faithful ones.

``python -m bench.fidelity [--demo-s 60] [--only CASE ...] [--json FILE]``

The same short cases run against two simulator profiles, the real reactor (``app.start``,
production timing defaults) in-process over loopback sockets:

- ``old``: as close to the pre-issue-9 simulator as the switches allow: the lenient reduce rule
  (``im_basis: mark``, no closing-fee reserve) and regular snapshots every 0.5 s
  (``time_scale: 0.1``: the old simulator pushed mark moves, which no switch brings back).
- ``faithful``: the defaults (``im_basis: max`` with the fee reserve, snapshots every 5 s,
  silent mark moves).

Per case it prints margin-balance calls, 59301 answers, other error answers, the time from the
case's disturbance until every managed isolated position was inside the count-0 band
(9.5-10.5) after it had left it, and the time-weighted fraction of positions inside the band
from the disturbance to the end (sampled on every position change the simulator publishes and
every 0.1 s; isolated margin only moves on position events). Money numbers are read from the
simulator's own state, not from the reactor. Standalone (not in ``make test`` nor
``make bench``): about 6 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import itertools
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml

from reactor import log as logging_setup
from reactor.config import AccountConfig, load_config
from reactor.okx.endpoints import MARGIN_BALANCE, ORDER
from reactor.okx.signing import iso_timestamp, rest_sign
from reactor.service import app
from reactor.sim.scenario import scenario_from_dict
from reactor.sim.server import Simulator

ROOT = Path(__file__).resolve().parent.parent
BAND_LO, BAND_HI = Decimal("9.5"), Decimal("10.5")
TARGETS = [
    {"min_count": 0, "target": "10", "band": ["9.5", "10.5"]},
    {"min_count": 2, "target": "20", "band": ["19", "21"]},
    {"min_count": 3, "target": "30", "band": ["28.5", "31.5"]},
]
MARGIN_PATH = MARGIN_BALANCE
ORDER_PATH = ORDER
SAMPLE_S = 0.1

PROFILES: dict[str, dict[str, Any]] = {
    "old": {
        "mechanics": {"reduce_rule": {"im_basis": "mark", "fee_reserve": False}},
        "simulator": {"time_scale": 0.1},
    },
    "faithful": {"mechanics": {}, "simulator": {}},
}

CRO = {
    "instId": "CRO-USDT-SWAP",
    "ctVal": "10",
    "markPx": "0.0950",
    "mmrRate": "0.004",
    "lotSz": "1",
    "tickSz": "0.00001",
}


def _account(name: str, positions: list[dict[str, Any]], balance: str = "1000") -> dict[str, Any]:
    low = name.lower()
    return {
        "name": name,
        "apiKey": f"fid-key-{low}",
        "secretKey": f"fid-secret-{low}",
        "passphrase": f"fid-pass-{low}",
        "balance": balance,
        "positions": positions,
    }


def _cro_long(pos: str, avg_px: str, lever: str, margin: str) -> dict[str, Any]:
    return {
        "instId": "CRO-USDT-SWAP",
        "posSide": "long",
        "pos": pos,
        "avgPx": avg_px,
        "lever": lever,
        "margin": margin,
    }


# ------------------------------------------------------------------------------------ cases

Driver = Callable[["Run"], Awaitable[None]]


@dataclass
class Case:
    name: str
    what: str
    scenario: dict[str, Any]
    duration_s: float
    driver: Driver | None = None  # the disturbance; None: the start is the disturbance
    price_walk: bool = False


async def _maintenance_fill(run: Run) -> None:
    await asyncio.sleep(3)
    run.disturbed()
    await run.order("Fill1", side="buy", posSide="long", sz="54", tag="maint")


async def _falling_market(run: Run) -> None:
    """Mark -0.2 % a second for 20 s (silent moves), a 10-contract buy every 4 s."""
    await asyncio.sleep(2)
    run.disturbed()
    px = Decimal("0.0950")
    for i in range(20):
        px = (px * Decimal("0.998")).quantize(Decimal("0.00001"))
        run.set_mark("CRO-USDT-SWAP", px)
        if i % 4 == 3:
            for name in ("Fall1", "Fall2", "Fall3"):
                await run.order(name, side="buy", posSide="long", sz="10")
        await asyncio.sleep(1)


def _demo_scenario() -> dict[str, Any]:
    """make run's book as it is, the desk's fills (every 20 s from 15 s) included."""
    raw: dict[str, Any] = yaml.safe_load((ROOT / "scenarios" / "demo.yaml").read_text())
    return raw


def cases(demo_s: float) -> list[Case]:
    return [
        Case(
            "seed",
            "CRO incident: long 108 @0.0905, lever 10, margin 20.29 (reduce to ~10.26)",
            {
                "instruments": [CRO],
                "accounts": [_account("Seed1", [_cro_long("108", "0.0905", "10", "20.29")])],
            },
            30,
        ),
        Case(
            "loss",
            "long 40 @0.1 at mark 0.095 (loss 2), lever 5, margin 20: IM at avgPx > at mark",
            {
                "instruments": [CRO],
                "accounts": [_account("Loss1", [_cro_long("40", "0.1", "5", "20")])],
            },
            30,
        ),
        Case(
            "maint-fill",
            "long 108, lever 20, margin 10 in band; at 3 s a tagged buy of 54 adds 2.57",
            {
                "instruments": [CRO],
                "accounts": [_account("Fill1", [_cro_long("108", "0.095", "20", "10")])],
            },
            15,
            _maintenance_fill,
        ),
        Case(
            "falling",
            "3 accounts long 108 lever 20 margin 14/16/18; mark -0.2 %/s for 20 s, buys",
            {
                "instruments": [CRO],
                "accounts": [
                    _account("Fall1", [_cro_long("108", "0.095", "20", "14")]),
                    _account("Fall2", [_cro_long("108", "0.095", "20", "16")]),
                    _account("Fall3", [_cro_long("108", "0.095", "20", "18")]),
                ],
            },
            25,
            _falling_market,
        ),
        Case(
            "demo",
            f"scenarios/demo.yaml with the price walk and its desk (make run), {demo_s:g} s",
            _demo_scenario(),
            demo_s,
            price_walk=True,
        ),
    ]


# ------------------------------------------------------------------------------------- a run


@dataclass
class Run:
    """One case against one profile: the simulator, the disturbance time, the samples."""

    sim: Simulator
    managed: list[str]
    t0: float = field(default_factory=time.monotonic)
    disturbed_at: float | None = None
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # t, in band, total

    def disturbed(self) -> None:
        if self.disturbed_at is None:
            self.disturbed_at = time.monotonic()

    def set_mark(self, inst_id: str, px: Decimal) -> None:
        self.sim.apply(self.sim.exchange.set_mark_price(inst_id, px))

    async def order(self, account: str, **body: str) -> None:
        """A market order through the simulator's REST order path, signed with the
        account's keys (as a desk would place it)."""
        acct = self.sim.exchange.accounts[account]
        order = {"instId": "CRO-USDT-SWAP", "tdMode": "isolated", "ordType": "market", **body}
        payload = json.dumps(order)
        ts = iso_timestamp(time.time())
        headers = {
            "OK-ACCESS-KEY": acct.api_key,
            "OK-ACCESS-SIGN": rest_sign(acct.secret, ts, "POST", ORDER_PATH, payload),
            "OK-ACCESS-TIMESTAMP": ts,
            "OK-ACCESS-PASSPHRASE": acct.passphrase,
            "Content-Type": "application/json",
            "x-simulated-trading": "1",
        }
        async with httpx.AsyncClient(base_url=self.sim.url, timeout=5) as client:
            r = await client.post(ORDER_PATH, content=payload.encode(), headers=headers)
        if r.json().get("code") != "0":
            print(f"  order refused: {account} {body} -> {r.text}", file=sys.stderr)

    def sample(self) -> None:
        inside = total = 0
        for name in self.managed:
            for p in self.sim.exchange.accounts[name].positions.values():
                if p.mgn_mode != "isolated" or p.pos == 0:
                    continue
                total += 1
                inside += BAND_LO <= p.margin <= BAND_HI
        self.samples.append((time.monotonic(), inside, total))

    def result(self) -> dict[str, Any]:
        start = self.disturbed_at if self.disturbed_at is not None else self.t0
        before = [s for s in self.samples if s[0] < start]
        # The state at the disturbance holds until the first sample after it.
        window = ([(start, *before[-1][1:])] if before else []) + [
            s for s in self.samples if s[0] >= start
        ]
        # Time-weighted: each sample (taken on every position change and every 0.1 s) holds
        # until the next one.
        inside = total = 0.0
        for (t, n_in, n), (t_next, _, _) in itertools.pairwise(window):
            if n:
                inside += (t_next - t) * n_in / n
                total += t_next - t
        # From the disturbance to the first all-in-band moment after the book was out of band
        # (0.0: it never left the band).
        out = next((i for i, s in enumerate(window) if s[2] and s[1] < s[2]), None)
        to_band: float | None = 0.0
        if out is not None:
            back = next((s for s in window[out:] if s[2] and s[1] == s[2]), None)
            to_band = None if back is None else back[0] - start
        codes = [
            r["code"]
            for r in self.sim.rest.requests
            if r["path"].startswith(MARGIN_PATH) and r["account"] in self.managed
        ]
        return {
            "calls": len(codes),
            "59301": codes.count("59301"),
            "other_errors": sum(c not in ("0", "59301") for c in codes),
            "error_codes": dict(Counter(c for c in codes if c != "0")),
            "time_to_band_s": None if to_band is None else round(to_band, 2),
            "in_band": round(inside / total, 4) if total else None,
            "positions_end": window[-1][2] if window else 0,
            "margins_end": self.margins()[:4],
        }

    def margins(self) -> list[str]:
        return [
            str(p.margin.quantize(Decimal("0.01")))
            for name in self.managed
            for p in self.sim.exchange.accounts[name].positions.values()
            if p.mgn_mode == "isolated" and p.pos != 0
        ]


def _with_profile(scenario: dict[str, Any], profile: str) -> dict[str, Any]:
    raw = copy.deepcopy(scenario)
    for block, values in PROFILES[profile].items():
        merged = dict(raw.get(block) or {})
        for key, value in values.items():
            if isinstance(value, dict):
                merged[key] = {**(merged.get(key) or {}), **value}
            else:
                merged[key] = value
        raw[block] = merged
    return raw


async def run_case(case: Case, profile: str, tmp: Path) -> dict[str, Any]:
    scenario = scenario_from_dict(_with_profile(case.scenario, profile), case.name)
    sim = Simulator(scenario, price_walk=case.price_walk)
    await sim.start("127.0.0.1", 0)
    managed = [a.name for a in scenario.accounts if not a.main]
    for acc in scenario.accounts:
        prefix = AccountConfig(name=acc.name).env_prefix
        os.environ[f"{prefix}_API_KEY"] = acc.apiKey
        os.environ[f"{prefix}_SECRET_KEY"] = acc.secretKey.get_secret_value()
        os.environ[f"{prefix}_PASSPHRASE"] = acc.passphrase.get_secret_value()
    state = tmp / f"{case.name}-{profile}"
    state.mkdir()
    raw_cfg = {
        "venue": {"kind": "sim", "rest_url": sim.url, "ws_private_url": sim.ws_url},
        "state_dir": str(state / "state"),
        "accounts": [
            {"name": a.name, "role": "main" if a.main else "sub"} for a in scenario.accounts
        ],
        "targets": TARGETS,
        "main": {"expected_positions": sum(len(a.positions) for a in scenario.accounts if a.main)},
        "status": {"enabled": False, "port": 0},
        "log": {"format": "json", "level": "info"},
    }
    (state / "config.yaml").write_text(yaml.safe_dump(raw_cfg))
    cfg = load_config(state / "config.yaml")
    run = Run(sim, managed)
    sim.on_changes = lambda _changes: run.sample()  # margins change only on position events
    rt = await app.start(cfg)
    driver = asyncio.create_task(case.driver(run)) if case.driver else None
    try:
        end = run.t0 + case.duration_s
        while time.monotonic() < end:
            run.sample()
            await asyncio.sleep(SAMPLE_S)
    finally:
        if driver is not None:
            driver.cancel()
            await asyncio.gather(driver, return_exceptions=True)
        await app.stop(rt)
        await sim.stop()
    return run.result()


def _table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    head = (
        f"{'case':<11} {'profile':<9} {'calls':>5} {'59301':>5} {'other':>5} "
        f"{'to band s':>9} {'in band':>7}"
    )
    lines = [head, "-" * len(head)]
    for case, by_profile in results.items():
        for profile, r in by_profile.items():
            tb = "never" if r["time_to_band_s"] is None else f"{r['time_to_band_s']:.2f}"
            ib = "-" if r["in_band"] is None else f"{r['in_band'] * 100:.1f}%"
            lines.append(
                f"{case:<11} {profile:<9} {r['calls']:>5} {r['59301']:>5} "
                f"{r['other_errors']:>5} {tb:>9} {ib:>7}"
            )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, dict[str, dict[str, Any]]]:
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with open(os.devnull, "w") as sink, tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
        logging_setup.configure("info", "json", stream=sink)
        for case in cases(args.demo_s):
            if args.only and case.name not in args.only:
                continue
            print(f"{case.name}: {case.what}", file=sys.stderr)
            for profile in PROFILES:
                results.setdefault(case.name, {})[profile] = await run_case(
                    case, profile, Path(tmp)
                )
                print(f"  {profile}: {results[case.name][profile]}", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fidelity", description=__doc__)
    p.add_argument("--demo-s", type=float, default=60.0, help="length of the demo case")
    p.add_argument("--only", nargs="*", help="run only these cases")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    results = asyncio.run(main_async(args))
    print(_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
