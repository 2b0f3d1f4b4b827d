"""The simulator's exchange mechanics: isolated-margin swaps, in Decimal, with no I/O.

Kept apart from the server so the margin rules (reduce limit, liquidation) can be property
tested directly. Every mutating method returns the :class:`Change` list the server pushes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from reactor.sim.scenario import Scenario

ZERO = Decimal(0)
_RATIO_Q = Decimal("1e-18")


def fmt(d: Decimal) -> str:
    """Plain decimal string, never an exponent: ``Decimal('1E+2')`` -> ``"100"``."""
    if d == 0:
        return "0"
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _ratio(a: Decimal, b: Decimal) -> Decimal:
    return (a / b).quantize(_RATIO_Q) if b else ZERO


class ExchangeError(Exception):
    """A business rejection with OKX's code (59300, 59301, 59200, 51000...)."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


@dataclass
class Instrument:
    inst_id: str
    ct_val: Decimal
    mark_px: Decimal
    mmr_rate: Decimal
    lot_sz: Decimal = Decimal("1")
    tick_sz: Decimal = Decimal("0.0001")
    ct_val_ccy: str = ""


@dataclass
class SimPosition:
    inst_id: str
    pos_side: str
    pos: Decimal  # contracts; signed only for posSide "net"
    avg_px: Decimal
    lever: Decimal
    margin: Decimal  # isolated margin; unused (0) for cross
    mgn_mode: str
    pos_id: str
    c_time: int
    u_time: int


@dataclass
class Account:
    name: str
    uid: str
    api_key: str
    secret: str
    passphrase: str
    balance: Decimal
    main: bool = False
    positions: dict[tuple[str, str], SimPosition] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One position of one account changed; ``position`` is the OKX-shaped dict to push."""

    account: str
    position: dict[str, str]


@dataclass(frozen=True)
class Metrics:
    notional: Decimal
    upl: Decimal
    im: Decimal
    mm: Decimal


class Exchange:
    """Instruments, accounts and positions; the rules OKX applies to isolated margin."""

    def __init__(self, clock_ms: Callable[[], int] | None = None) -> None:
        self.instruments: dict[str, Instrument] = {}
        self.accounts: dict[str, Account] = {}
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._next_pos_id = 1

    @classmethod
    def from_scenario(
        cls, scenario: Scenario, clock_ms: Callable[[], int] | None = None
    ) -> Exchange:
        ex = cls(clock_ms)
        for i in scenario.instruments:
            ex.instruments[i.instId] = Instrument(
                inst_id=i.instId,
                ct_val=i.ctVal,
                mark_px=i.markPx,
                mmr_rate=i.mmrRate,
                lot_sz=i.lotSz,
                tick_sz=i.tickSz,
                ct_val_ccy=i.ctValCcy or i.instId.split("-")[0],
            )
        for n, a in enumerate(scenario.accounts):
            ex.accounts[a.name] = Account(
                name=a.name,
                uid=a.uid or str(440000000000000 + n + 1),
                api_key=a.apiKey,
                secret=a.secretKey.get_secret_value(),
                passphrase=a.passphrase.get_secret_value(),
                balance=a.balance,
                main=a.main,
            )
            for p in a.positions:
                ex.set_position(
                    a.name,
                    p.instId,
                    p.posSide,
                    pos=p.pos,
                    avg_px=p.avgPx,
                    lever=p.lever,
                    margin=p.margin or ZERO,
                    mgn_mode=p.mgnMode,
                    c_time=p.cTime,
                )
        return ex

    # ---- derived values -------------------------------------------------------------
    def metrics(self, p: SimPosition) -> Metrics:
        inst = self.instruments[p.inst_id]
        qty = abs(p.pos) * inst.ct_val
        notional = qty * inst.mark_px
        diff = qty * (inst.mark_px - p.avg_px)
        short = p.pos_side == "short" or (p.pos_side == "net" and p.pos < 0)
        upl = -diff if short else diff
        return Metrics(notional, upl, notional / p.lever, notional * inst.mmr_rate)

    def liq_px(self, p: SimPosition) -> Decimal | None:
        """Mark price at which ``margin + upl == mm`` (isolated only); None if unreachable."""
        if p.mgn_mode != "isolated":
            return None
        inst = self.instruments[p.inst_id]
        qty = abs(p.pos) * inst.ct_val
        if p.pos_side == "short" or (p.pos_side == "net" and p.pos < 0):
            px = (p.margin + qty * p.avg_px) / (qty * (1 + inst.mmr_rate))
        else:
            px = (qty * p.avg_px - p.margin) / (qty * (1 - inst.mmr_rate))
        return px.quantize(_RATIO_Q) if px > 0 else None

    def position_dict(self, account: str, p: SimPosition) -> dict[str, str]:
        """The position as OKX sends it: every field a string, "" when not applicable."""
        inst = self.instruments[p.inst_id]
        m = self.metrics(p)
        isolated = p.mgn_mode == "isolated"
        liq = self.liq_px(p)
        now = str(self._clock_ms())
        return {
            "instType": "SWAP",
            "instId": p.inst_id,
            "mgnMode": p.mgn_mode,
            "posId": p.pos_id,
            "posSide": p.pos_side,
            "pos": fmt(p.pos),
            "availPos": fmt(abs(p.pos)),
            "ccy": "USDT",
            "avgPx": fmt(p.avg_px),
            "markPx": fmt(inst.mark_px),
            "last": fmt(inst.mark_px),
            "idxPx": fmt(inst.mark_px),
            "lever": fmt(p.lever),
            "margin": fmt(p.margin) if isolated else "",
            "imr": "" if isolated else fmt(m.im),
            "mmr": fmt(m.mm),
            "mgnRatio": fmt(_ratio(p.margin + m.upl, m.mm)) if isolated else "",
            "notionalUsd": fmt(m.notional),
            "upl": fmt(m.upl),
            "uplRatio": fmt(_ratio(m.upl, m.im)),
            "liqPx": fmt(liq) if liq is not None else "",
            "adl": "1",
            "realizedPnl": "0",
            "fee": "0",
            "fundingFee": "0",
            "bePx": fmt(p.avg_px),
            "tradeId": "",
            "cTime": str(p.c_time),
            "uTime": str(p.u_time),
            "pTime": now,
        }

    def positions(self, account: str) -> list[dict[str, str]]:
        acct = self.accounts[account]
        return [self.position_dict(account, p) for p in acct.positions.values()]

    # ---- mutations ------------------------------------------------------------------
    def _touch(self, p: SimPosition) -> None:
        p.u_time = max(self._clock_ms(), p.u_time + 1)

    def _closed_dict(self, account: str, p: SimPosition) -> dict[str, str]:
        d = self.position_dict(account, p)
        for k in ("pos", "availPos", "margin", "mmr", "notionalUsd", "upl", "uplRatio"):
            d[k] = "0" if d[k] != "" else ""
        d["liqPx"] = ""
        d["mgnRatio"] = ""
        return d

    def margin_balance(
        self,
        account: str,
        inst_id: str,
        pos_side: str,
        kind: Literal["add", "reduce"],
        amt: Decimal,
    ) -> tuple[dict[str, str], list[Change]]:
        """``POST /api/v5/account/position/margin-balance``; raises :class:`ExchangeError`."""
        acct = self.accounts[account]
        if amt <= 0:
            raise ExchangeError("51000", "Parameter amt error")
        p = acct.positions.get((inst_id, pos_side))
        if p is None:
            raise ExchangeError("59300", "Margin call failed. Position does not exist.")
        if p.mgn_mode != "isolated":
            raise ExchangeError("51000", "Parameter posSide error")
        if kind == "add":
            if amt > acct.balance:
                raise ExchangeError("59200", "Insufficient account balance.")
            acct.balance -= amt
            p.margin += amt
        else:
            m = self.metrics(p)
            if p.margin - amt < m.im + max(ZERO, -m.upl):
                raise ExchangeError(
                    "59301", "Margin adjustment failed for exceeding the max limit."
                )
            p.margin -= amt
            acct.balance += amt
        self._touch(p)
        m = self.metrics(p)
        change = Change(account, self.position_dict(account, p))
        liquidated = self._liquidate([(acct, (inst_id, pos_side))])
        leverage = (m.notional / p.margin).quantize(Decimal("0.01")) if p.margin else ZERO
        result = {
            "instId": inst_id,
            "posSide": pos_side,
            "amt": fmt(amt),
            "type": kind,
            "leverage": fmt(leverage),
            "ccy": "USDT",
        }
        return result, [change, *liquidated]

    def set_mark_price(self, inst_id: str, mark_px: Decimal) -> list[Change]:
        """Move the mark price. Silent, as on OKX: no change is pushed and ``uTime`` stays
        (DOC-POS: pushes come on position events and regular snapshots; CCXT-POS: ``uTime``
        462 s older than ``pTime`` with ``markPx`` != ``avgPx``; okx-fidelity §1.1-1.2). Only
        the liquidations it causes are changes."""
        inst = self.instruments[inst_id]
        if mark_px <= 0:
            raise ExchangeError("51000", "Parameter markPx error")
        if mark_px == inst.mark_px:
            return []
        inst.mark_px = mark_px
        moved = [
            (acct, key)
            for acct in self.accounts.values()
            for key, p in acct.positions.items()
            if p.inst_id == inst_id
        ]
        return self._liquidate(moved)

    def set_position(
        self,
        account: str,
        inst_id: str,
        pos_side: str,
        *,
        pos: Decimal,
        avg_px: Decimal,
        lever: Decimal,
        margin: Decimal,
        mgn_mode: str = "isolated",
        c_time: int | None = None,
    ) -> list[Change]:
        """Open, replace (a fill) or, with ``pos`` 0, close a position. Balance is untouched:
        this stands for trading the simulator does not model."""
        acct = self.accounts[account]
        if inst_id not in self.instruments:
            raise ExchangeError("51001", "Instrument ID does not exist.")
        key = (inst_id, pos_side)
        old = acct.positions.get(key)
        if pos == 0:
            if old is None:
                return []
            del acct.positions[key]
            self._touch(old)
            return [Change(account, self._closed_dict(account, old))]
        if old is None:
            now = self._clock_ms()
            p = SimPosition(
                inst_id=inst_id,
                pos_side=pos_side,
                pos=pos,
                avg_px=avg_px,
                lever=lever,
                margin=margin,
                mgn_mode=mgn_mode,
                pos_id=str(600000000000000000 + self._next_pos_id),
                c_time=c_time if c_time is not None else now,
                u_time=now if c_time is None else max(now, c_time),
            )
            self._next_pos_id += 1
            acct.positions[key] = p
        else:
            p = old
            p.pos, p.avg_px, p.lever, p.margin, p.mgn_mode = pos, avg_px, lever, margin, mgn_mode
            self._touch(p)
        liquidated = self._liquidate([(acct, key)])
        if any(c.account == account and c.position["posId"] == p.pos_id for c in liquidated):
            return liquidated
        return [Change(account, self.position_dict(account, p)), *liquidated]

    def _liquidate(
        self, candidates: list[tuple[Account, tuple[str, str]]] | None = None
    ) -> list[Change]:
        """Close every isolated position with ``margin + upl <= mm``; its margin is lost.

        ``candidates`` limits the check to the positions a mutation touched: every mutation
        liquidates what it made liquidatable, so no other position can have become so, and a
        mark-price move over 10,000 positions stays proportional to that instrument's positions.
        """
        if candidates is None:
            candidates = [(a, k) for a in self.accounts.values() for k in a.positions]
        out: list[Change] = []
        for acct, key in candidates:
            p = acct.positions.get(key)
            if p is not None and p.mgn_mode == "isolated":
                m = self.metrics(p)
                if p.margin + m.upl <= m.mm:
                    del acct.positions[key]
                    self._touch(p)
                    out.append(Change(acct.name, self._closed_dict(acct.name, p)))
        return out
