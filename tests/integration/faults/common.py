"""Shared pieces of the fault suite: scenarios, fast timings, and the invariants every fault
test checks (final margins, the simulator's request log, no double application)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from reactor.config import Config, load_config
from reactor.sim.errors import ExchangeError
from reactor.sim.reduce_rule import ReduceRule, est_avail_trans
from reactor.sim.server import Simulator
from reactor.testing import MARGIN_BALANCE, POSITIONS
from tests.engine.harness import LogCapture, SimAdmin, set_credentials, write_config

MARGIN_PATH = MARGIN_BALANCE
POSITIONS_PATH = POSITIONS

CRO = {"instId": "CRO-USDT-SWAP", "ctVal": "10", "markPx": "0.0950", "mmrRate": "0.004"}
DOGE = {"instId": "DOGE-USDT-SWAP", "ctVal": "1000", "markPx": "0.1", "mmrRate": "0.004"}
BTC = {"instId": "BTC-USDT-SWAP", "ctVal": "0.01", "markPx": "50000", "mmrRate": "0.004"}

# Short timings so every fault resolves in seconds (defaults are for production).
FAST: dict[str, Any] = {
    "debounce_ms": 20,
    "cooldown_s": 0.2,
    "request_timeout_s": 1,
    "reconcile_interval_s": 30,
    "ledger_poll_ms": 50,
    "ws_ping_interval_s": 1,
    "ws_pong_timeout_s": 1,
    "ws_backoff_max_s": 0.5,
    "retry_max_s": 2,
}


def cro(margin: str = "20.29", side: str = "long", pos: str = "108") -> dict[str, Any]:
    """The seed case: 108 CRO contracts at 10x, margin 20.29 -> one reduce of 10.03."""
    return {
        "instId": "CRO-USDT-SWAP",
        "posSide": side,
        "pos": pos,
        "avgPx": "0.0905",
        "lever": "10",
        "margin": margin,
    }


def doge(margin: str = "5", side: str = "short", pos: str = "2") -> dict[str, Any]:
    return {
        "instId": "DOGE-USDT-SWAP",
        "posSide": side,
        "pos": pos,
        "avgPx": "0.1",
        "lever": "50",
        "margin": margin,
    }


def account(
    name: str, i: int, positions: list[dict[str, Any]], balance: str = "1000"
) -> dict[str, Any]:
    return {
        "name": name,
        "apiKey": f"key-{i}",
        "secretKey": f"secret-{i}",
        "passphrase": f"pass-{i}",
        "balance": balance,
        "positions": positions,
    }


# The simulator's old (lenient) reduce rule, the reactor's own floor model: what
# ``allowed_by_model`` compares a refused reduce with. Scenarios run the simulator's default,
# strictest rule unless a test pins another (the reactor sizes reduces by estAvailTrans).
LENIENT_RULE: dict[str, Any] = {"im_basis": "mark", "fee_reserve": False}


def scenario(
    *accounts: dict[str, Any], reduce_rule: dict[str, Any] | None = None
) -> dict[str, Any]:
    mechanics: dict[str, Any] = {} if reduce_rule is None else {"reduce_rule": reduce_rule}
    return {
        "instruments": [dict(CRO), dict(DOGE), dict(BTC)],
        "accounts": list(accounts),
        "mechanics": mechanics,
    }


def make_config(
    tmp_path: Path,
    sim_url: str,
    accounts: list[dict[str, Any]],
    *,
    policy: dict[str, Any] | None = None,
    **timing: Any,
) -> Config:
    return load_config(
        write_config(tmp_path, sim_url, accounts, policy=policy, **{**FAST, **timing})
    )


@dataclass
class Applied:
    account: str
    inst_id: str
    pos_side: str
    kind: str
    amount: Decimal
    before: Decimal
    allowed_by_model: bool  # the lenient reduce rule (the reactor's model) would accept it


@dataclass
class ExchangeTap:
    """Records, inside the in-process simulator, every margin transfer the exchange applied or
    refused and the margin lost to liquidations. Not a mock: requests still cross real sockets
    and the simulator's own rules (its scenario's reduce rule included) still run."""

    sim: Simulator
    applied: list[Applied] = field(default_factory=list)
    refused: list[Applied] = field(default_factory=list)
    lost: Decimal = Decimal(0)
    injected: Decimal = Decimal(0)  # margin changed by admin fills (no balance moves)

    def __post_init__(self) -> None:
        ex = self.sim.exchange
        self.initial_total = self.total()
        orig_balance = ex.margin_balance
        orig_mark = ex.set_mark_price
        orig_set = ex.set_position

        def margin_balance(
            account: str, inst_id: str, pos_side: str, kind: Any, amt: Decimal
        ) -> Any:
            p = ex.accounts[account].isolated(inst_id, pos_side)
            rec = None
            if p is not None:
                lenient = est_avail_trans(ReduceRule.lenient(), ex.facts(p))
                allowed = kind == "add" or amt <= lenient
                rec = Applied(account, inst_id, pos_side, kind, amt, p.margin, allowed)
            try:
                result = self._losing(lambda: orig_balance(account, inst_id, pos_side, kind, amt))
            except ExchangeError:
                if rec is not None:
                    self.refused.append(rec)
                raise
            if rec is not None:
                self.applied.append(rec)
            return result

        def set_mark_price(inst_id: str, mark_px: Decimal) -> Any:
            return self._losing(lambda: orig_mark(inst_id, mark_px))

        def set_position(account: str, inst_id: str, pos_side: str, **kw: Any) -> Any:
            p = ex.accounts[account].positions.get((inst_id, pos_side, "isolated"))
            before = p.margin if p is not None and p.mgn_mode == "isolated" else Decimal(0)
            isolated = kw.get("mgn_mode", "isolated") == "isolated"
            after = kw["margin"] if kw["pos"] != 0 and isolated else Decimal(0)
            self.injected += after - before
            return self._losing(lambda: orig_set(account, inst_id, pos_side, **kw))

        ex.margin_balance = margin_balance  # type: ignore[method-assign]
        ex.set_position = set_position  # type: ignore[method-assign]
        ex.set_mark_price = set_mark_price  # type: ignore[method-assign]

    def _losing(self, fn: Callable[[], Any]) -> Any:
        """Run a mutation; add the margin it lost to liquidations (the exchange's type-5
        liquidation bills, partial ones included) to lost."""
        ex = self.sim.exchange
        seen = {a.name: len(a.bills.bills) for a in ex.accounts.values()}
        result = fn()
        for a in ex.accounts.values():
            for bill in a.bills.bills[seen[a.name] :]:
                if bill["type"] == "5":
                    self.lost -= Decimal(bill["posBalChg"])
        return result

    def total(self) -> Decimal:
        """Balances plus isolated margins: margin-balance only moves money between them."""
        ex = self.sim.exchange
        return sum(
            (
                a.balance
                + sum(
                    (p.margin for p in a.positions.values() if p.mgn_mode == "isolated"), Decimal(0)
                )
                for a in ex.accounts.values()
            ),
            Decimal(0),
        )

    def margin(self, account: str, inst_id: str, pos_side: str) -> Decimal | None:
        p = self.sim.exchange.accounts[account].positions.get((inst_id, pos_side, "isolated"))
        return None if p is None else p.margin

    def traded(self) -> Decimal:
        """Realised PnL and fees of fills (the exchange's type-2 trade bills)."""
        return sum(
            (
                Decimal(b["pnl"]) + Decimal(b["fee"])
                for a in self.sim.exchange.accounts.values()
                for b in a.bills.bills
                if b["type"] == "2"
            ),
            Decimal(0),
        )

    def assert_conserved(self) -> None:
        expected = self.initial_total + self.injected + self.traded()
        assert self.total() + self.lost == expected, (
            self.total(),
            self.lost,
            self.initial_total,
            self.injected,
            self.traded(),
        )

    def assert_no_double_application(self, logs: LogCapture) -> None:
        """Every transfer the exchange applied was decided from the margin the exchange held
        at that moment: a transfer computed from a margin that lacks an earlier applied one
        (an ambiguous call resent, a stale book) is a double application."""
        pool: Counter[tuple[str, str, str, str, Decimal, Decimal]] = Counter()
        for e in logs.events("margin.adjust.sent"):
            pool[
                (
                    e["account"],
                    e["instId"],
                    e["posSide"],
                    e["action"],
                    Decimal(e["amount"]),
                    Decimal(e["margin"]),
                )
            ] += 1
        for a in self.applied:
            k = (a.account, a.inst_id, a.pos_side, a.kind, a.amount, a.before)
            assert pool[k] > 0, f"applied transfer not decided from the exchange's margin: {a}"
            pool[k] -= 1

    def assert_no_avoidable_59301(self) -> None:
        """A 59301 is acceptable only for a reduction the lenient rule allows (it came from a
        stricter exchange rule); the policy must avoid every other one."""
        assert all(r.allowed_by_model for r in self.refused if r.kind == "reduce"), self.refused


async def setup(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sim_factory: Any,
    scen: dict[str, Any],
    accounts: list[dict[str, Any]] | None = None,
    *,
    policy: dict[str, Any] | None = None,
    **timing: Any,
) -> tuple[Simulator, SimAdmin, Config, ExchangeTap]:
    # Regular snapshots every 0.5 s (OKX: 5 s): a silent mark move reaches the reactor
    # through them, as on OKX, without slowing the suite.
    sim = await sim_factory(scen, price_walk=False, time_scale=0.1)
    set_credentials(monkeypatch, scen)
    names = accounts if accounts is not None else [{"name": a["name"]} for a in scen["accounts"]]
    cfg = make_config(tmp_path, sim.url, names, policy=policy, **timing)
    return sim, SimAdmin(sim.url), cfg, ExchangeTap(sim)


def in_band(value: Decimal | None, lo: str = "9.5", hi: str = "10.5") -> bool:
    return value is not None and Decimal(lo) <= value <= Decimal(hi)


def codes(calls: list[dict[str, Any]]) -> list[str]:
    return [c["code"] for c in calls]


def report(name: str, seconds: float) -> None:
    """A measurement for the report (visible with pytest -s); never asserted."""
    print(f"\nFAULT-METRIC {name}: {seconds:.3f} s")


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.t0
