"""The simulator's exchange mechanics: isolated-margin swaps, in Decimal, with no I/O.

Kept apart from the server so the margin rules (reduce limit, fills, liquidation) can be
property tested directly. Every mutating method returns the :class:`Change` list the server
pushes. Positions are keyed by (``instId``, ``posSide``, ``mgnMode``): an isolated and a cross
position on one instrument and side coexist, as on OKX (docs/spec/okx-fidelity.md §3.4). The pure
rules live in their own modules: :mod:`reactor.sim.fills` (what a fill does), :mod:`.reduce_rule`
(59301 and ``estAvailTrans``), :mod:`.tiers`, :mod:`.bills`, :mod:`.lifecycle`, :mod:`.orders`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal

from reactor.sim import bills as billing
from reactor.sim.bills import BillBook, make_bill
from reactor.sim.decimals import fmt
from reactor.sim.errors import ExchangeError
from reactor.sim.fills import Fill, close_fill, money, open_fill
from reactor.sim.lifecycle import (
    CLOSE_ALL,
    CLOSE_PARTIAL,
    LIQUIDATION,
    PARTIAL_LIQUIDATION,
    POS_ID_TTL_MS,
    Lifecycle,
    query_history,
)
from reactor.sim.orders import Order, OrderRequest, marketable
from reactor.sim.position_record import CloseAlgo, breakeven_px, position_record
from reactor.sim.reduce_rule import PositionFacts, ReduceRule, est_avail_trans
from reactor.sim.scenario import MechanicsSpec, Scenario
from reactor.sim.tiers import Tier, exceeds_limits, mmr_rate, partial_target

__all__ = ["Change", "Exchange", "ExchangeError", "Mechanics", "OrderFilled", "fmt"]

ZERO = Decimal(0)
_RATIO_Q = Decimal("1e-18")
MAX_LEVER = Decimal(75)  # the simulator's instruments list lever "75"

PosKey = tuple[str, str, str]  # instId, posSide, mgnMode
POS0_EMPTY = (
    "adl",
    "availPos",
    "avgPx",
    "bePx",
    "idxPx",
    "imr",
    "last",
    "lever",
    "liqPx",
    "margin",
    "markPx",
    "mgnRatio",
    "notionalUsd",
)


# DOC error table (HTTP 200): a position frozen by liquidation or auto-deleveraging
FROZEN_TEXT = {
    "50020": "Position frozen and related operations restricted due to forced liquidation. "
    "Please try again later.",
    "50017": "Position frozen and related operations restricted due to auto-deleveraging "
    "(ADL). Please try again later.",
}


def _ratio(a: Decimal, b: Decimal) -> Decimal:
    return (a / b).quantize(_RATIO_Q) if b else ZERO


@dataclass
class Instrument:
    inst_id: str
    ct_val: Decimal
    mark_px: Decimal
    mmr_rate: Decimal
    lot_sz: Decimal = Decimal("1")
    tick_sz: Decimal = Decimal("0.0001")
    ct_val_ccy: str = ""
    tiers: tuple[Tier, ...] = ()
    # per settlement; > 0: longs pay shorts (docs/spec/okx-fidelity.md §11.2.2)
    funding_rate: Decimal = ZERO
    funding_interval_s: float = 28800.0


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
    pnl: Decimal = ZERO  # realised this lifecycle, fee excluded
    fee: Decimal = ZERO  # accumulated, negative
    funding: Decimal = ZERO  # ``fundingFee``: funding received (+) or paid (-) this lifecycle
    trade_id: str = ""
    lifecycle: Lifecycle | None = None
    # TP/SL orders attached to the position (admin: /sim/position-state); reduces answer
    # 59302 while there are any (docs/spec/okx-fidelity.md §7.15).
    close_algos: list[CloseAlgo] = field(default_factory=list)
    # "50020" (liquidation) or "50017" (ADL) while OKX has the position frozen (§6).
    frozen_code: str = ""
    # The leverage ``lever`` shows when it differs from the set one (the switch
    # ``lever_after_margin_call: real``, docs/spec/okx-fidelity.md §7.14).
    shown_lever: Decimal | None = None

    @property
    def key(self) -> PosKey:
        return (self.inst_id, self.pos_side, self.mgn_mode)

    @property
    def short(self) -> bool:
        return self.pos_side == "short" or (self.pos_side == "net" and self.pos < 0)


@dataclass
class ClosedPosition:
    """A fully closed position: its ``posId`` stays valid for 30 days (DOC-TA)."""

    position: SimPosition
    closed_ms: int


@dataclass
class Flows:
    """Money that entered or left balance + isolated margins (the conservation check)."""

    pnl: Decimal = ZERO  # realised, including margin lost to liquidation
    fee: Decimal = ZERO  # negative
    injected: Decimal = ZERO  # margin written by the admin API (trading not modelled)


@dataclass
class Account:
    name: str
    uid: str
    api_key: str
    secret: str
    passphrase: str
    balance: Decimal
    main: bool = False
    perm: str = "read_only,trade"  # the API key's permissions (account/config ``perm``)
    pos_mode: str = "long_short_mode"  # account/config ``posMode``
    positions: dict[PosKey, SimPosition] = field(default_factory=dict)
    closed: dict[PosKey, ClosedPosition] = field(default_factory=dict)
    levers: dict[PosKey, Decimal] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    cl_ord_ids: dict[str, str] = field(default_factory=dict)
    bills: BillBook = field(default_factory=BillBook)
    history: list[Lifecycle] = field(default_factory=list)
    flows: Flows = field(default_factory=Flows)

    def isolated(self, inst_id: str, pos_side: str) -> SimPosition | None:
        return self.positions.get((inst_id, pos_side, "isolated"))


@dataclass(frozen=True)
class Change:
    """One position of one account changed; ``position`` is the OKX-shaped dict to push."""

    account: str
    position: dict[str, Any]


@dataclass(frozen=True)
class OrderFilled:
    """A placed order: the ack for the REST answer, the record for the ``orders`` channel,
    and the position changes to push."""

    account: str
    ack: dict[str, str]
    order: dict[str, Any]
    changes: list[Change]


@dataclass(frozen=True)
class Metrics:
    notional: Decimal
    upl: Decimal
    im: Decimal  # at mark
    mm: Decimal  # at mark, tiered rate
    im_avg: Decimal  # at avgPx
    close_fee: Decimal = ZERO  # taker fee of closing the whole position at mark

    @property
    def liq_line(self) -> Decimal:
        """What ``margin + upl`` must stay above: maintenance margin plus the closing fee
        (HELP-LIQ; two live ``mgnRatio`` values fit it to 15 digits, docs/spec/okx-fidelity.md
        §11.2.3)."""
        return self.mm + self.close_fee


@dataclass(frozen=True)
class PositionErrors:
    """Which code ``margin-balance`` answers when no isolated position matches
    (docs/spec/okx-fidelity.md §7.16, **unknown**): none at all, only a cross one, or one on the
    other ``posSide``."""

    missing: str = "59300"
    cross: str = "51000"
    wrong_pos_side: str = "59300"


# DOC error table (HTTP 200 each): 59300 "Margin call failed. Position does not exist.",
# 51023 "Position doesn't exist.", 51043 "This isolated position doesn't exist.", 51000
# "Parameter {param0} error".
POSITION_ERROR_TEXT = {
    "59300": "Margin call failed. Position does not exist.",
    "51023": "Position doesn't exist.",
    "51043": "This isolated position doesn't exist.",
    "51000": "Parameter posSide error",
}


@dataclass(frozen=True)
class Mechanics:
    """The scenario's ``mechanics`` switches, as the exchange uses them."""

    rule: ReduceRule = field(default_factory=ReduceRule)
    taker_fee_rate: Decimal = Decimal("0.0005")
    reopen_ctime: Literal["new", "keep"] = "new"
    default_lever: Decimal = Decimal(10)
    usdt_usd: Decimal = Decimal(1)  # notionalUsd = notional x USDT/USD (CCXT-POS, §3.1)
    lever_after_margin_call: Literal["keep", "real"] = "keep"
    close_orders_block_add: bool = False
    position_errors: PositionErrors = field(default_factory=PositionErrors)
    # ``simulator.est_avail_trans`` / ``_delta``: how adjust-leverage-info's estimate departs
    # from the reduce rule (unknown, docs/spec/okx-fidelity.md §11.2.1).
    est_avail_trans: Literal["exact", "optimistic", "pessimistic", "empty"] = "exact"
    est_avail_trans_delta: Decimal = Decimal("0.5")

    @classmethod
    def from_spec(cls, spec: MechanicsSpec) -> Mechanics:
        r = spec.reduce_rule
        e = spec.position_errors
        return cls(
            rule=ReduceRule(r.im_basis, r.fee_reserve, r.extra),
            taker_fee_rate=spec.taker_fee_rate,
            reopen_ctime=spec.reopen_ctime,
            default_lever=spec.default_lever,
            usdt_usd=spec.usdt_usd,
            lever_after_margin_call=spec.lever_after_margin_call,
            close_orders_block_add=spec.close_orders_block_add,
            position_errors=PositionErrors(e.missing, e.cross, e.wrong_pos_side),
        )


class Exchange:
    """Instruments, accounts and positions; the rules OKX applies to isolated margin."""

    def __init__(
        self, clock_ms: Callable[[], int] | None = None, mechanics: Mechanics | None = None
    ) -> None:
        self.instruments: dict[str, Instrument] = {}
        self.accounts: dict[str, Account] = {}
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        # Taker fee: OKX regular users (Lv1) pay 0.05 % on USDT-margined perpetuals, the fee
        # being rate x contracts x ctVal x fill price (okx.com/fees, Futures and Perp tab;
        # **likely**: the stored copy shows only the spot tab). A scenario switch.
        self.mechanics = mechanics or Mechanics()
        self._next_pos_id = 1
        self._next_bill_id = 1
        self._next_ord_id = 1
        self._next_trade_id = 1

    @classmethod
    def from_scenario(
        cls, scenario: Scenario, clock_ms: Callable[[], int] | None = None
    ) -> Exchange:
        sim = scenario.simulator
        mechanics = replace(
            Mechanics.from_spec(scenario.mechanics),
            est_avail_trans=sim.est_avail_trans,
            est_avail_trans_delta=sim.est_avail_trans_delta,
        )
        ex = cls(clock_ms, mechanics)
        for i in scenario.instruments:
            tiers = tuple(
                Tier(t.maxSz, t.mmr, t.maxLever) for t in scenario.mechanics.tiers.get(i.instId, [])
            )
            ex.instruments[i.instId] = Instrument(
                inst_id=i.instId,
                ct_val=i.ctVal,
                mark_px=i.markPx,
                mmr_rate=i.mmrRate,
                lot_sz=i.lotSz,
                tick_sz=i.tickSz,
                ct_val_ccy=i.ctValCcy or i.instId.split("-")[0],
                tiers=tiers,
                funding_rate=i.fundingRate,
                funding_interval_s=i.fundingIntervalS,
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
                perm=a.perm,
                pos_mode=a.posMode
                or (
                    "net_mode"
                    if any(p.posSide == "net" for p in a.positions)
                    else "long_short_mode"
                ),
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
            ex.accounts[a.name].flows.injected = ZERO  # the seed is the starting point
        return ex

    def now_ms(self) -> int:
        return self._clock_ms()

    # ---- derived values -------------------------------------------------------------
    def metrics(self, p: SimPosition) -> Metrics:
        inst = self.instruments[p.inst_id]
        size = abs(p.pos)
        qty = size * inst.ct_val
        notional = qty * inst.mark_px
        diff = qty * (inst.mark_px - p.avg_px)
        upl = -diff if p.short else diff
        rate = mmr_rate(inst.tiers, size, inst.mmr_rate)
        return Metrics(
            notional,
            upl,
            notional / p.lever,
            notional * rate,
            qty * p.avg_px / p.lever,
            notional * self.mechanics.taker_fee_rate,
        )

    def facts(self, p: SimPosition, lever: Decimal | None = None) -> PositionFacts:
        """What the reduce rule looks at; ``lever`` other than the position's for
        ``adjust-leverage-info``."""
        inst = self.instruments[p.inst_id]
        m = self.metrics(p)
        lev = lever or p.lever
        qty = abs(p.pos) * inst.ct_val
        return PositionFacts(
            margin=p.margin,
            im_mark=m.notional / lev,
            im_avg=qty * p.avg_px / lev,
            upl=m.upl,
            mm=m.mm,
            close_fee=m.close_fee,
        )

    def est_avail_trans(self, p: SimPosition, lever: Decimal | None = None) -> Decimal:
        return est_avail_trans(self.mechanics.rule, self.facts(p, lever))

    def available(self, acct: Account) -> Decimal:
        """Balance free for new margin: the cash balance less cross positions' initial margin
        (DOC-TA max-avail-size: "available balance for isolated margin positions")."""
        cross_im = sum(
            (self.metrics(p).im for p in acct.positions.values() if p.mgn_mode == "cross"), ZERO
        )
        return max(ZERO, acct.balance - cross_im)

    def liq_px(self, p: SimPosition) -> Decimal | None:
        """Mark price at which ``margin + upl == mm + closing fee`` (isolated only); None if
        unreachable. The fee term is HELP-LIQ's; the live JAVA-2025 ETH record's ``liqPx``
        2722.159673530889 is this root (2722.14967...) plus exactly 0.01, one tick, which the
        simulator does not copy (one record, cause unknown; docs/spec/okx-fidelity.md §11.2.3)."""
        if p.mgn_mode != "isolated" or p.pos == 0:
            return None
        inst = self.instruments[p.inst_id]
        qty = abs(p.pos) * inst.ct_val
        rate = mmr_rate(inst.tiers, abs(p.pos), inst.mmr_rate) + self.mechanics.taker_fee_rate
        if p.short:
            px = (p.margin + qty * p.avg_px) / (qty * (1 + rate))
        else:
            px = (qty * p.avg_px - p.margin) / (qty * (1 - rate))
        return px.quantize(_RATIO_Q) if px > 0 else None

    def position_dict(self, account: str, p: SimPosition) -> dict[str, Any]:
        """The position as OKX sends it: the captured live record's field set (see
        :mod:`reactor.sim.position_record`), numbers as strings, "" when not applicable."""
        inst = self.instruments[p.inst_id]
        m = self.metrics(p)
        isolated = p.mgn_mode == "isolated"
        liq = self.liq_px(p)
        usd = self.mechanics.usdt_usd
        qty = abs(p.pos) * inst.ct_val
        # bePx counts funding like a fee (CCXT-STATIC LTC, docs/spec/okx-fidelity.md §11.2.2)
        be_px = breakeven_px(
            qty, p.avg_px, p.fee + p.funding, self.mechanics.taker_fee_rate, p.short
        )
        upl_ratio = fmt(_ratio(m.upl, m.im_avg))
        values = {
            "instType": "SWAP",
            "instId": p.inst_id,
            "mgnMode": p.mgn_mode,
            "posId": p.pos_id,
            "posSide": p.pos_side,
            "pos": fmt(p.pos),
            # DOC-POS: availPos only "in the long/short mode"; CCXT-POS (net): ""
            "availPos": "" if p.pos_side == "net" else fmt(abs(p.pos)),
            "ccy": "USDT",
            "avgPx": fmt(p.avg_px),
            "markPx": fmt(inst.mark_px),
            # The simulator has one price per instrument: last and index are the mark.
            "last": fmt(inst.mark_px),
            "idxPx": fmt(inst.mark_px),
            # USDT/USD (a scenario value); the captured USDT swap had usdPx "1.00021"
            "usdPx": fmt(usd),
            "lever": fmt(p.shown_lever if p.shown_lever is not None else p.lever),
            "margin": fmt(p.margin) if isolated else "",
            "imr": "" if isolated else fmt(m.im),
            "mmr": fmt(m.mm),
            # HELP-LIQ: (margin + upl) / (mm + closing fee); JAVA-2025 and CCXT-STATIC fit it
            "mgnRatio": fmt(_ratio(p.margin + m.upl, m.liq_line)) if isolated else "",
            # CCXT-POS and the 2025 capture: notionalUsd = notional x USDT/USD
            "notionalUsd": fmt(m.notional * usd),
            "upl": fmt(m.upl),
            # CCXT-POS arithmetic: uplRatio is over the initial margin at avgPx
            "uplRatio": upl_ratio,
            # at the last price, which is the mark here
            "uplLastPx": fmt(m.upl),
            "uplRatioLastPx": upl_ratio,
            "liqPx": fmt(liq) if liq is not None else "",
            "adl": "1",
            # DOC-TA: realizedPnl = pnl + fee + fundingFee + liqPenalty
            "realizedPnl": fmt(p.pnl + p.fee + p.funding),
            "pnl": fmt(p.pnl),
            "fee": fmt(p.fee),
            "fundingFee": fmt(p.funding),
            "liqPenalty": "0",
            "bePx": fmt(be_px.quantize(_RATIO_Q)),
            "tradeId": p.trade_id,
            "cTime": str(p.c_time),
            "uTime": str(p.u_time),
            # no pTime: a push field (CCXT-POS), which the positions channel stamps at send
            # time; no REST capture has it (docs/spec/okx-fidelity.md §11.2.5)
        }
        return position_record(values, p.close_algos)

    def positions(self, account: str) -> list[dict[str, Any]]:
        acct = self.accounts[account]
        return [self.position_dict(account, p) for p in acct.positions.values()]

    def closed_positions(self, account: str, inst_ids: set[str]) -> list[dict[str, Any]]:
        """``pos`` "0" records ``GET positions?instId=`` returns while the ``posId`` is valid
        (DOC-TA Get positions; CCXT-16166); never without ``instId``."""
        acct = self.accounts[account]
        now = self._clock_ms()
        out = []
        for key, c in acct.closed.items():
            if key[0] in inst_ids and now - c.closed_ms <= POS_ID_TTL_MS:
                d = self._closed_dict(account, c.position)
                # CCXT-16166 (a captured pos-0 record): prices, lever, margin and sizes are "",
                # mmr "0"; posId, cTime and mgnMode kept.
                for k in POS0_EMPTY:
                    d[k] = ""
                d["mmr"] = "0"
                out.append(d)
        return out

    # ---- mutations ------------------------------------------------------------------
    def _touch(self, p: SimPosition, at_ms: int | None = None) -> None:
        p.u_time = max(self._clock_ms() if at_ms is None else at_ms, p.u_time + 1)

    def _closed_dict(self, account: str, p: SimPosition) -> dict[str, Any]:
        d = self.position_dict(account, p)
        zeroed = ("pos", "availPos", "margin", "mmr", "notionalUsd", "upl", "uplRatio")
        for k in (*zeroed, "uplLastPx", "uplRatioLastPx"):
            d[k] = "0" if d[k] != "" else ""
        d["liqPx"] = ""
        d["mgnRatio"] = ""
        d["adl"] = ""  # CCXT-16166: a pos-0 record has adl ""
        return d

    def _bill(
        self, acct: Account, p: SimPosition | None, at_ms: int | None = None, **values: str
    ) -> dict[str, str]:
        ts = self._clock_ms() if at_ms is None else at_ms
        bill = make_bill(
            billId=str(700000000000000000 + self._next_bill_id),
            ts=str(ts),
            fillTime=str(ts),
            bal=fmt(acct.balance),
            **values,
        )
        self._next_bill_id += 1
        acct.bills.add(bill)
        acct.flows.pnl += Decimal(bill["pnl"])
        acct.flows.fee += Decimal(bill["fee"])
        return bill

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
        p = acct.isolated(inst_id, pos_side)
        if p is None:
            raise self._no_isolated_position(acct, inst_id, pos_side)
        if p.frozen_code:
            # DOC error table: 50020 / 50017, HTTP 200 (docs/spec/okx-fidelity.md §6)
            raise ExchangeError(p.frozen_code, FROZEN_TEXT[p.frozen_code])
        if p.close_algos and (kind == "reduce" or self.mechanics.close_orders_block_add):
            # DOC error table: 59302, HTTP 200 (docs/spec/okx-fidelity.md §7.15); whether adds are
            # refused too is unknown (the switch close_orders_block_add).
            raise ExchangeError(
                "59302",
                "Margin adjustment failed due to pending close order. Please cancel any "
                "pending close orders.",
            )
        if kind == "add":
            if amt > self.available(acct):
                raise ExchangeError("59200", "Insufficient account balance.")
            acct.balance -= amt
            p.margin += amt
        else:
            if amt > self.est_avail_trans(p):
                raise ExchangeError(
                    "59301", "Margin adjustment failed for exceeding the max limit."
                )
            p.margin -= amt
            acct.balance += amt
        self._touch(p)
        sign = 1 if kind == "add" else -1
        # CCXT-BILL: type 6, subType 160/161, balChg opposite posBalChg, sz = amt
        self._bill(
            acct,
            p,
            type=billing.TYPE_MARGIN,
            subType=billing.SUB_MARGIN_ADD if kind == "add" else billing.SUB_MARGIN_REDUCE,
            balChg=fmt(-sign * amt),
            posBalChg=fmt(sign * amt),
            posBal=fmt(p.margin),
            sz=fmt(amt),
            instId=inst_id,
            mgnMode="isolated",
            tradeId="0",
        )
        m = self.metrics(p)
        # DOC-TA margin-balance: "leverage": "Real leverage after the margin adjustment"
        leverage = (m.notional / p.margin).quantize(Decimal("0.01")) if p.margin else ZERO
        if self.mechanics.lever_after_margin_call == "real" and leverage > 0:
            # unknown (docs/spec/okx-fidelity.md §7.14): the position's lever shows the real
            # leverage until a fill; the reduce rule keeps using the set leverage.
            p.shown_lever = leverage
        change = Change(account, self.position_dict(account, p))
        liquidated = self._liquidate([(acct, p.key)])
        result = {
            "instId": inst_id,
            "posSide": pos_side,
            "amt": fmt(amt),
            "type": kind,
            "leverage": fmt(leverage),
            "ccy": "USDT",
        }
        return result, [change, *liquidated]

    def _no_isolated_position(self, acct: Account, inst_id: str, pos_side: str) -> ExchangeError:
        """The refusal of a margin call without an isolated position at (instId, posSide)
        (a scenario switch per case, docs/spec/okx-fidelity.md §7.16)."""
        errs = self.mechanics.position_errors
        if any(k[:2] == (inst_id, pos_side) for k in acct.positions):
            code = errs.cross  # only a cross position there
        elif any(k[0] == inst_id and k[2] == "isolated" for k in acct.positions):
            code = errs.wrong_pos_side  # isolated, on another posSide
        else:
            code = errs.missing
        return ExchangeError(code, POSITION_ERROR_TEXT[code])

    def set_position_state(
        self,
        account: str,
        inst_id: str,
        pos_side: str,
        mgn_mode: str,
        *,
        close_orders: int | None = None,
        frozen: str | None = None,
    ) -> list[Change]:
        """Attach ``close_orders`` TP/SL orders (0 cancels them) and freeze the position
        (``frozen`` "50020" liquidation, "50017" ADL, "" thaws). Placing or cancelling an
        order pushes the position (DOC-POS: pushes "triggered by events such as
        placing/canceling order"); ``uTime`` stays: the position was not adjusted."""
        p = self.accounts[account].positions.get((inst_id, pos_side, mgn_mode))
        if p is None:
            raise ExchangeError("59300", "Margin call failed. Position does not exist.")
        if frozen is not None:
            if frozen not in ("", *FROZEN_TEXT):
                raise ExchangeError("51000", "Parameter frozen error")
            p.frozen_code = frozen
        if close_orders is None:
            return []
        if close_orders < 0:
            raise ExchangeError("51000", "Parameter closeOrders error")
        mark = self.instruments[inst_id].mark_px
        below, above = fmt(mark * Decimal("0.9")), fmt(mark * Decimal("1.1"))
        p.close_algos = [
            CloseAlgo(
                algo_id=str(800000000000000000 + self._next_ord_id + n),
                sl_trigger_px=above if p.short else below,
                tp_trigger_px=below if p.short else above,
            )
            for n in range(close_orders)
        ]
        self._next_ord_id += close_orders
        return [Change(account, self.position_dict(account, p))]

    def set_mark_price(self, inst_id: str, mark_px: Decimal) -> list[Change]:
        """Move the mark price. Silent, as on OKX: no change is pushed and ``uTime`` stays
        (DOC-POS: pushes come on position events and regular snapshots; CCXT-POS: ``uTime``
        462 s older than ``pTime`` with ``markPx`` != ``avgPx``; docs/spec/okx-fidelity.md
        §1.1-1.2). Only the liquidations it causes are changes."""
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

    def settle_funding(self, inst_id: str, rate: Decimal | None = None) -> list[Change]:
        """One funding settlement of ``inst_id`` (at its scenario rate unless ``rate``), for
        every position of every account at one timestamp.

        - The payment is the position value at mark times the rate; with a positive rate longs
          pay and shorts receive (okx.com/help/360053909272: "Funding fee = Position value x
          Funding rate"; docs/spec/okx-fidelity.md §11.2.2).
        - Isolated: taken from or credited to the position's margin (FUND-2024, since
          2024-07-01); cross: the account balance.
        - ``fundingFee`` and ``realizedPnl`` accumulate it (DOC-TA: realizedPnl = pnl + fee +
          fundingFee + liqPenalty); ``bePx`` counts it (CCXT-STATIC LTC, to the last digit).
        - A bill of type 8, subType 173 (expense) or 174 (income) (DOC-TA bill types), the
          payment in ``pnl`` (DOC-TA: "Funding Fee expense (subType = 173): You may refer to
          pnl for the fee payment") and, for isolated, in ``posBalChg``.
        - ``uTime`` moves (the margin changed, as on a margin call: **likely**) and each
          position is pushed as an ``event_update``; a payment that leaves a position
          liquidatable liquidates it.
        """
        inst = self.instruments[inst_id]
        rate = inst.funding_rate if rate is None else rate
        now = self._clock_ms()
        out: list[Change] = []
        for acct in self.accounts.values():
            for key, p in list(acct.positions.items()):
                if p.inst_id != inst_id or p.pos == 0:
                    continue
                notional = self.metrics(p).notional
                amount = money(notional * rate if p.short else -notional * rate)
                sub = billing.SUB_FUNDING_INCOME if amount > 0 else billing.SUB_FUNDING_EXPENSE
                if amount == 0:
                    continue
                isolated = p.mgn_mode == "isolated"
                if isolated:
                    p.margin += amount
                else:
                    acct.balance += amount
                p.funding += amount
                if p.lifecycle is not None:
                    p.lifecycle.funding += amount
                self._touch(p, now)
                self._bill(
                    acct,
                    p,
                    now,
                    type=billing.TYPE_FUNDING,
                    subType=sub,
                    balChg="0" if isolated else fmt(amount),
                    posBalChg=fmt(amount) if isolated else "0",
                    posBal=fmt(p.margin) if isolated else "0",
                    sz=fmt(abs(p.pos)),
                    px=fmt(inst.mark_px),
                    pnl=fmt(amount),
                    instId=p.inst_id,
                    mgnMode=p.mgn_mode,
                )
                liquidated = self._liquidate([(acct, key)])
                if not any(c.position["posId"] == p.pos_id for c in liquidated):
                    out.append(Change(acct.name, self.position_dict(acct.name, p)))
                out.extend(liquidated)
        return out

    def _new_position(
        self,
        acct: Account,
        key: PosKey,
        *,
        lever: Decimal,
        avg_px: Decimal,
        c_time: int | None = None,
    ) -> SimPosition:
        """An empty position at ``key``: the ``posId`` of a close within 30 days is reused
        (DOC-TA positions-history ``posId``); ``cTime`` on reopen is a switch (**unknown**,
        docs/spec/okx-fidelity.md §6: ``new`` by default)."""
        now = self._clock_ms()
        closed = acct.closed.pop(key, None)
        if closed is not None and now - closed.closed_ms <= POS_ID_TTL_MS:
            pos_id = closed.position.pos_id
            keep = self.mechanics.reopen_ctime == "keep"
            created = closed.position.c_time if keep else now
        else:
            pos_id = str(600000000000000000 + self._next_pos_id)
            self._next_pos_id += 1
            created = now
        if c_time is not None:
            created = c_time
        inst_id, pos_side, mgn_mode = key
        p = SimPosition(
            inst_id=inst_id,
            pos_side=pos_side,
            pos=ZERO,
            avg_px=avg_px,
            lever=lever,
            margin=ZERO,
            mgn_mode=mgn_mode,
            pos_id=pos_id,
            c_time=created,
            u_time=max(now, created),
        )
        p.lifecycle = Lifecycle(
            pos_id=pos_id,
            inst_id=inst_id,
            pos_side=pos_side,
            mgn_mode=mgn_mode,
            c_time=created,
            u_time=p.u_time,
            lever=lever,
            ct_val=self.instruments[inst_id].ct_val,
            direction="long",
        )
        acct.history.append(p.lifecycle)
        acct.positions[key] = p
        return p

    def _remove(self, acct: Account, p: SimPosition) -> dict[str, Any]:
        """Take a fully closed position off the book; remember it for ``posId`` reuse and
        the ``pos`` "0" REST record. Returns its close push."""
        del acct.positions[p.key]
        self._touch(p)
        acct.levers[p.key] = p.lever
        # Closing cancels its TP/SL orders and ends a freeze.
        closed = replace(p, margin=ZERO, close_algos=[], frozen_code="", shown_lever=None)
        acct.closed[p.key] = ClosedPosition(closed, self._clock_ms())
        return self._closed_dict(acct.name, closed)

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
        this stands for trading the simulator does not model (the margin written counts as
        ``flows.injected``); no bills."""
        acct = self.accounts[account]
        if inst_id not in self.instruments:
            raise ExchangeError("51001", "Instrument ID does not exist.")
        key = (inst_id, pos_side, mgn_mode)
        old = acct.positions.get(key)
        isolated = mgn_mode == "isolated"
        before = old.margin if old is not None and isolated else ZERO
        if pos == 0:
            if old is None:
                return []
            acct.flows.injected -= before
            self._lifecycle_close(old, abs(old.pos), CLOSE_ALL, ZERO, ZERO)
            return [Change(account, self._remove(acct, old))]
        if old is None:
            p = self._new_position(acct, key, lever=lever, avg_px=avg_px, c_time=c_time)
            self._lifecycle_open(p, abs(pos), avg_px, abs(pos), ZERO)
        else:
            p = old
            self._touch(p)
        p.pos, p.avg_px, p.lever, p.margin = pos, avg_px, lever, margin if isolated else ZERO
        p.shown_lever = None
        acct.flows.injected += p.margin - before
        if p.lifecycle is not None:
            p.lifecycle.direction = "short" if p.short else "long"
            p.lifecycle.open_max_pos = max(p.lifecycle.open_max_pos, abs(pos))
        liquidated = self._liquidate([(acct, key)])
        if any(c.account == account and c.position["posId"] == p.pos_id for c in liquidated):
            return liquidated
        return [Change(account, self.position_dict(account, p)), *liquidated]

    # ---- lifecycles -------------------------------------------------------------------
    def _lifecycle_open(
        self, p: SimPosition, sz: Decimal, px: Decimal, size_after: Decimal, fee: Decimal
    ) -> None:
        if p.lifecycle is not None:
            p.lifecycle.direction = "short" if p.short else "long"
            p.lifecycle.lever = p.lever
            p.lifecycle.opened(sz, px, size_after, fee)

    def _lifecycle_close(
        self,
        p: SimPosition,
        sz: Decimal,
        kind: str,
        pnl: Decimal,
        fee: Decimal,
        liq_penalty: Decimal = ZERO,
    ) -> None:
        if p.lifecycle is not None:
            px = self.instruments[p.inst_id].mark_px
            p.lifecycle.closed(
                sz,
                px,
                kind=kind,
                pnl=pnl,
                fee=fee,
                at_ms=max(self._clock_ms(), p.u_time),
                liq_penalty=liq_penalty,
            )

    def positions_history(self, account: str, params: Mapping[str, str]) -> list[dict[str, str]]:
        return query_history(self.accounts[account].history, params)

    def bills(self, account: str, params: Mapping[str, str]) -> list[dict[str, str]]:
        return self.accounts[account].bills.query(params, self._clock_ms())

    # ---- orders ---------------------------------------------------------------------
    def place_order(self, account: str, req: OrderRequest) -> OrderFilled:
        """``POST /api/v5/trade/order``: fill at once at the mark price as a taker, or raise
        :class:`ExchangeError` with OKX's ``sCode``.

        Codes: 51001 unknown instrument; 51121 "Order quantity must be a multiple of the lot
        size" (a captured answer in go-okx's tests, **likely**); 51016 duplicated
        ``clOrdId`` (**likely**); 51008 insufficient balance (DOC error table); 51169 nothing
        to close in that direction (**likely**); 51004 beyond the tier limits (**likely**);
        51000 closing more than held (**unknown**)."""
        acct = self.accounts[account]
        inst = self.instruments.get(req.inst_id)
        if inst is None:
            raise ExchangeError("51001", "Instrument ID does not exist.")
        if req.sz % inst.lot_sz != 0:
            raise ExchangeError("51121", "Order quantity must be a multiple of the lot size.")
        if req.cl_ord_id and req.cl_ord_id in acct.cl_ord_ids:
            raise ExchangeError("51016", "Duplicated clOrdId")
        px = inst.mark_px
        if not marketable(req, px):
            raise ExchangeError(
                "51000", "Parameter px error (the simulator fills only marketable orders)"
            )
        legs = self._plan(acct, req)
        # Check before any leg moves money: an order is filled whole or refused.
        for kind, key, sz in legs:
            if kind == "open":
                self._check_open(acct, key, sz, inst)
        now = self._clock_ms()
        ord_id = str(2500000000000000000 + self._next_ord_id)
        self._next_ord_id += 1
        trade_id = str(1500000000 + self._next_trade_id)
        self._next_trade_id += 1
        changes: list[Change] = []
        fee_total = pnl_total = ZERO
        lever = self.mechanics.default_lever
        for kind, key, sz in legs:
            fill, p, closed_push = self._apply_leg(
                acct, req, kind, key, sz, inst, ord_id, trade_id, now
            )
            fee_total += fill.fee
            pnl_total += fill.pnl
            lever = p.lever
            if closed_push is not None:
                changes.append(Change(account, closed_push))
            else:
                changes.append(Change(account, self.position_dict(account, p)))
                changes.extend(self._liquidate([(acct, key)]))
        order = Order(req, ord_id, lever, now, px, now, trade_id, fee_total, pnl_total)
        acct.orders[ord_id] = order
        if req.cl_ord_id:
            acct.cl_ord_ids[req.cl_ord_id] = ord_id
        ack = {
            "clOrdId": req.cl_ord_id,
            "ordId": ord_id,
            "tag": req.tag,
            "ts": str(now),
            "sCode": "0",
            "sMsg": "Order placed",
        }
        return OrderFilled(account, ack, order.record(), changes)

    def _plan(self, acct: Account, req: OrderRequest) -> list[tuple[str, PosKey, Decimal]]:
        """Split an order into opening/closing legs on the position it trades."""
        key = (req.inst_id, req.pos_side, req.td_mode)
        held = acct.positions.get(key)
        if req.pos_side != "net":
            opening = (req.side == "buy") == (req.pos_side == "long")
            if opening:
                return [("open", key, req.sz)]
            if held is None:
                raise ExchangeError(
                    "51169",
                    "Order failed because you don't have any positions in this direction "
                    "for this contract to reduce or close.",
                )
            if req.sz > abs(held.pos):
                raise ExchangeError("51000", "Parameter sz error")
            return [("close", key, req.sz)]
        signed = held.pos if held is not None else ZERO
        delta = req.sz if req.side == "buy" else -req.sz
        if signed == 0 or (signed > 0) == (delta > 0):
            if req.reduce_only:
                raise ExchangeError(
                    "51169",
                    "Order failed because you don't have any positions in this direction "
                    "for this contract to reduce or close.",
                )
            return [("open", key, req.sz)]
        closing = min(req.sz, abs(signed))
        rest = req.sz - closing
        if rest and req.reduce_only:
            raise ExchangeError("51000", "Parameter sz error")
        return [("close", key, closing)] + ([("open", key, rest)] if rest else [])

    def _lever_for(self, acct: Account, key: PosKey) -> Decimal:
        held = acct.positions.get(key)
        if held is not None:
            return held.lever
        return acct.levers.get(key, self.mechanics.default_lever)

    def _check_open(self, acct: Account, key: PosKey, sz: Decimal, inst: Instrument) -> None:
        lever = self._lever_for(acct, key)
        held = acct.positions.get(key)
        size_after = (abs(held.pos) if held is not None else ZERO) + sz
        if exceeds_limits(inst.tiers, size_after, lever):
            raise ExchangeError(
                "51004",
                "Order failed. The number of contracts of your position, open orders, and "
                "the current order has exceeded the position holding limit at your current "
                "leverage.",
            )
        notional = sz * inst.ct_val * inst.mark_px
        cost = notional / lever + notional * self.mechanics.taker_fee_rate
        if cost > self.available(acct):
            raise ExchangeError("51008", "Order failed. Insufficient USDT margin in account")

    def _apply_leg(
        self,
        acct: Account,
        req: OrderRequest,
        kind: str,
        key: PosKey,
        sz: Decimal,
        inst: Instrument,
        ord_id: str,
        trade_id: str,
        now: int,
    ) -> tuple[Fill, SimPosition, dict[str, Any] | None]:
        px = inst.mark_px
        rate = self.mechanics.taker_fee_rate
        isolated = key[2] == "isolated"
        opening = kind == "open"
        if opening:
            p = acct.positions.get(key) or self._new_position(
                acct, key, lever=self._lever_for(acct, key), avg_px=px
            )
            fill = open_fill(
                size=abs(p.pos),
                avg_px=p.avg_px,
                margin=p.margin,
                lever=p.lever,
                ct_val=inst.ct_val,
                sz=sz,
                px=px,
                fee_rate=rate,
                isolated=isolated,
            )
            negative = p.pos < 0 or (p.pos == 0 and key[1] == "net" and req.side == "sell")
        else:
            p = acct.positions[key]
            fill = close_fill(
                size=abs(p.pos),
                avg_px=p.avg_px,
                margin=p.margin,
                ct_val=inst.ct_val,
                sz=sz,
                px=px,
                fee_rate=rate,
                short=p.short,
            )
            negative = p.pos < 0
        p.pos = -fill.size if negative else fill.size
        p.avg_px, p.margin = fill.avg_px, fill.margin
        p.pnl += fill.pnl
        p.fee += fill.fee
        p.trade_id = trade_id
        p.shown_lever = None  # a fill shows the set leverage again (lever_after_margin_call)
        acct.balance += fill.bal_chg
        self._touch(p, now)
        self._bill(
            acct,
            p,
            now,
            type=billing.TYPE_TRADE,
            subType=billing.trade_subtype(key[1], req.side, opening),
            balChg=fmt(fill.bal_chg),
            posBalChg=fmt(fill.pos_bal_chg),
            posBal=fmt(fill.margin),
            sz=fmt(sz),
            px=fmt(px),
            pnl=fmt(fill.pnl),
            fee=fmt(fill.fee),
            instId=key[0],
            mgnMode=key[2],
            ordId=ord_id,
            clOrdId=req.cl_ord_id,
            tag=req.tag,
            tradeId=trade_id,
            execType="T",
            fillMarkPx=fmt(px),
            fillIdxPx=fmt(px),
        )
        if opening:
            self._lifecycle_open(p, sz, px, fill.size, fill.fee)
            return fill, p, None
        done = fill.size == 0
        self._lifecycle_close(p, sz, CLOSE_ALL if done else CLOSE_PARTIAL, fill.pnl, fill.fee)
        return fill, p, self._remove(acct, p) if done else None

    def order(self, account: str, inst_id: str, ord_id: str, cl_ord_id: str) -> dict[str, Any]:
        """``GET /api/v5/trade/order`` by ``ordId`` (preferred) or ``clOrdId``."""
        acct = self.accounts[account]
        oid = ord_id or acct.cl_ord_ids.get(cl_ord_id, "")
        found = acct.orders.get(oid)
        if found is None or found.req.inst_id != inst_id:
            raise ExchangeError("51603", "Order does not exist")
        return found.record()

    # ---- estimates ------------------------------------------------------------------
    def adjust_leverage_info(
        self, account: str, inst_id: str, mgn_mode: str, lever: Decimal, pos_side: str
    ) -> dict[str, Any]:
        """``GET /api/v5/account/adjust-leverage-info`` (DOC-TA fields). For an isolated
        position at a ``lever`` not above its own, ``estAvailTrans`` is exactly what the
        reduce rule lets a ``margin-balance`` reduce take; "" when raising the leverage
        ("not applicable", DOC-TA)."""
        acct = self.accounts[account]
        inst = self.instruments.get(inst_id)
        if inst is None:
            raise ExchangeError("51001", "Instrument ID does not exist.")
        if lever <= 0:
            raise ExchangeError("51000", "Parameter lever error")
        max_lever = inst.tiers[0].max_lever if inst.tiers else MAX_LEVER
        p = acct.positions.get((inst_id, pos_side, mgn_mode))
        avail = self.available(acct)
        unit = inst.ct_val * inst.mark_px * (1 / lever + self.mechanics.taker_fee_rate)
        max_amt = (avail / unit / inst.lot_sz).to_integral_value(ROUND_DOWN) * inst.lot_sz
        est_trans = ""
        est_mgn = ""
        est_liq = ""
        if p is not None:
            est_mgn = fmt(self.metrics(p).notional / lever)
            liq = self.liq_px(p)
            est_liq = fmt(liq) if liq is not None else ""
            if mgn_mode == "isolated" and lever <= p.lever:
                est_trans = self._estimate(self.est_avail_trans(p, lever))
        elif mgn_mode == "cross":
            est_trans = fmt(avail)
        return {
            "estAvailQuoteTrans": "",
            "estAvailTrans": est_trans,
            "estLiqPx": est_liq,
            "estMaxAmt": fmt(max_amt),
            "estMgn": est_mgn,
            "estQuoteMaxAmt": "",
            "estQuoteMgn": "",
            "existOrd": False,
            "maxLever": fmt(max_lever),
            "minLever": "0.01",
        }

    def _estimate(self, exact: Decimal) -> str:
        """``estAvailTrans`` as the ``simulator.est_avail_trans`` switch writes it: the reduce
        rule's own limit, biased up or down by the delta, or "" (docs/spec/okx-fidelity.md
        §11.2.1)."""
        mode = self.mechanics.est_avail_trans
        delta = self.mechanics.est_avail_trans_delta
        if mode == "empty":
            return ""
        if mode == "optimistic":
            return fmt(exact + delta)
        if mode == "pessimistic":
            return fmt(max(ZERO, exact - delta))
        return fmt(exact)

    def max_avail_size(self, account: str, inst_id: str) -> dict[str, str]:
        """``GET /api/v5/account/max-avail-size`` for SWAP: the balance an add or an opening
        order can use (DOC-TA), in USDT."""
        if inst_id not in self.instruments:
            raise ExchangeError("51001", "Instrument ID does not exist.")
        avail = fmt(self.available(self.accounts[account]))
        return {"instId": inst_id, "availBuy": avail, "availSell": avail}

    # ---- liquidation ----------------------------------------------------------------
    def _liquidate(self, candidates: list[tuple[Account, PosKey]] | None = None) -> list[Change]:
        """Liquidate every isolated position with ``margin + upl <= mm + closing fee``
        (HELP-LIQ: equity "equal to or less than the required maintenance margin plus any
        applicable liquidation fees"; docs/spec/okx-fidelity.md §11.2.3).

        Above the first position tier OKX liquidates partially, down to the tier below
        (docs/spec/okx-fidelity.md §6; DOC positions-history type 4): the closed part's margin is
        lost, the rest stays. In the first tier the whole position goes and its margin is lost.
        ``candidates`` limits the check to the positions a mutation touched: every mutation
        liquidates what it made liquidatable, so no other position can have become so, and a
        mark-price move over 10,000 positions stays proportional to that instrument's
        positions."""
        if candidates is None:
            candidates = [(a, k) for a in self.accounts.values() for k in a.positions]
        out: list[Change] = []
        for acct, key in candidates:
            p = acct.positions.get(key)
            partial = False
            while p is not None and p.mgn_mode == "isolated":
                m = self.metrics(p)
                if p.margin + m.upl > m.liq_line:
                    break
                inst = self.instruments[p.inst_id]
                size = abs(p.pos)
                was_long = not p.short
                target = partial_target(inst.tiers, size)
                closing = size - target if target is not None else size
                lost = p.margin if target is None else money(p.margin * closing / size)
                share_upl = money(m.upl * closing / size)
                p.margin -= lost
                p.pos = (-1 if p.pos < 0 else 1) * (size - closing)
                p.pnl += -lost
                self._touch(p)
                self._bill(
                    acct,
                    p,
                    type=billing.TYPE_LIQUIDATION,
                    subType=billing.liquidation_subtype(p.pos_side, was_long, target is not None),
                    balChg="0",
                    posBalChg=fmt(-lost),
                    posBal=fmt(p.margin),
                    sz=fmt(closing),
                    px=fmt(inst.mark_px),
                    pnl=fmt(-lost),
                    instId=p.inst_id,
                    mgnMode="isolated",
                )
                kind = PARTIAL_LIQUIDATION if target is not None else LIQUIDATION
                self._lifecycle_close(p, closing, kind, share_upl, ZERO, -lost - share_upl)
                if target is None:
                    out.append(Change(acct.name, self._remove(acct, p)))
                    p = None
                else:
                    partial = True
            if partial and p is not None:
                out.append(Change(acct.name, self.position_dict(acct.name, p)))
        return out
