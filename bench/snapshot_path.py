"""The snapshot path alone, sans-I/O: what one regular-snapshot record costs the reactor.

Frames are built by the simulator's own exchange (the fields OKX sends, with pTime), then fed
to the reactor's pure parts as the session and the engine shell would: the protocol parses
each frame, the engine core applies it to the book and schedules, and the timers it sets fire
on a fake clock (evaluations). No sockets, no event loop: the figures are CPU per record and
repeat within a few per cent, unlike the end-to-end run on a shared machine.

Two cases per run: a snapshot in which nothing changed (only pTime moves), and one after
every instrument's mark moved (silently, as on OKX: margin unchanged, upl and floor moved).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal
from typing import Any

from bench.steady import scenario
from reactor import log as logging_setup
from reactor.domain.policy import PolicyConfig, TargetRule
from reactor.engine.commands import Command, SetTimer
from reactor.engine.core import EngineCore
from reactor.engine.state import AccountState, EngineSettings
from reactor.okx.credentials import Credentials
from reactor.okx.models import PositionKey
from reactor.okx.ws_protocol import PrivateChannelProtocol, SnapshotPage
from reactor.sim.exchange import Exchange
from reactor.sim.scenario import scenario_from_dict

TARGETS = (
    TargetRule(0, Decimal(10), Decimal("9.5"), Decimal("10.5")),
    TargetRule(2, Decimal(20), Decimal(19), Decimal(21)),
    TargetRule(3, Decimal(30), Decimal("28.5"), Decimal("31.5")),
)


class _NoCounts:
    def count(self, account: str, inst_id: str, pos_side: str, c_time: int) -> int:
        return 0


def _frames(ex: Exchange, names: list[str], p_time_ms: int) -> list[tuple[str, str]]:
    out = []
    for name in names:
        data = [{**r, "pTime": str(p_time_ms)} for r in ex.positions(name)]
        msg = {
            "arg": {"channel": "positions", "instType": "SWAP", "uid": "1"},
            "eventType": "snapshot",
            "curPage": 1,
            "lastPage": True,
            "data": data,
        }
        out.append((name, json.dumps(msg, separators=(",", ":"))))
    return out


def measure(accounts: int = 100, per_account: int = 20, rounds: int = 20) -> dict[str, Any]:
    sc = scenario(accounts, per_account, 100)
    ex = Exchange.from_scenario(scenario_from_dict(sc))
    names = [a["name"] for a in sc["accounts"]]
    settings = EngineSettings(policy=PolicyConfig(targets=TARGETS), debounce_s=0.5, cooldown_s=5)
    core = EngineCore(
        settings,
        {n: AccountState(n, "sub") for n in names},
        {i.inst_id: i.ct_val for i in ex.instruments.values()},
        _NoCounts(),
    )
    protos = {
        n: PrivateChannelProtocol(n, Credentials("k", "s", "p"), clock=time.time) for n in names
    }
    timers: dict[PositionKey, float] = {}
    now = 0.0
    evaluations = 0

    def feed(commands: list[Command]) -> None:
        for cmd in commands:
            if isinstance(cmd, SetTimer):
                timers[cmd.key] = cmd.at

    def fire(until: float) -> None:
        nonlocal evaluations
        due = sorted((at, k) for k, at in timers.items() if at <= until)
        for _, key in due:
            del timers[key]
            evaluations += 1
            feed(core.on_timer(key, now=until))

    for n in names:
        feed(core.on_connected(n, now=now))
    out: dict[str, Any] = {"records_per_round": accounts * per_account, "rounds": rounds}
    for case in ("nothing changed", "marks moved"):
        parse_s = engine_s = timers_s = 0.0
        evaluations = 0
        for r in range(rounds + 1):
            if case == "marks moved":
                for inst in list(ex.instruments.values()):
                    step = Decimal("1.0005") if r % 2 else Decimal("0.9995")
                    ex.set_mark_price(inst.inst_id, (inst.mark_px * step).quantize(inst.tick_sz))
            frames = _frames(ex, names, int(time.time() * 1000))
            t0 = time.perf_counter()
            pages = [(n, protos[n].receive(text)[0]) for n, text in frames]
            t1 = time.perf_counter()
            for n, page in pages:
                assert isinstance(page, SnapshotPage), page
                feed(core.on_snapshot(n, page.positions, last_page=True, now=now))
            t2 = time.perf_counter()
            now += 2.0
            fire(now)
            t3 = time.perf_counter()
            if r == 0:  # the first snapshot opens every position: not the steady state
                parse_s = engine_s = timers_s = 0.0
                evaluations = 0
                continue
            parse_s += t1 - t0
            engine_s += t2 - t1
            timers_s += t3 - t2
        records = rounds * accounts * per_account
        out[case] = {
            "parse_us": round(parse_s / records * 1e6, 2),
            "book_and_engine_us": round(engine_s / records * 1e6, 2),
            "evaluations_us": round(timers_s / records * 1e6, 2),
            "total_us": round((parse_s + engine_s + timers_s) / records * 1e6, 2),
            "evaluations_per_record": round(evaluations / records, 3),
        }
    return out


def best_of(repeats: int, accounts: int = 100, rounds: int = 20) -> dict[str, Any]:
    """The least-disturbed of ``repeats`` runs, per figure (timings only go up with noise)."""
    runs = [measure(accounts, 20, rounds) for _ in range(repeats)]
    out = dict(runs[0])
    for case in ("nothing changed", "marks moved"):
        out[case] = {k: min(r[case][k] for r in runs) for k in runs[0][case]}
    out["repeats"] = repeats
    return out


def main(argv: list[str] | None = None) -> None:
    logging_setup.configure("warning", "json", stream=sys.stderr)
    ap = argparse.ArgumentParser(prog="bench.snapshot_path")
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    print(json.dumps(best_of(args.repeats, args.accounts, args.rounds), indent=2))


if __name__ == "__main__":
    main()
