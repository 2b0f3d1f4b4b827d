"""Position lifecycles: ``positions-history`` records and ``posId`` reuse after a close.

DOC-TA "Get positions history": one record per position, "the type of latest close
position" (1 partial close, 2 close all, 3 liquidation, 4 partial liquidation), newest
``uTime`` first, ``after``/``before`` page on ``uTime``, ``limit`` at most 100; ``posId``
"will be expired if it is more than 30 days after the last full close position, then position
will use new posId" (so a reopen within 30 days keeps it). Field set and formats from the NT
fixture ``http_get_account_positions-history.json`` (``lever`` "3.0", ``triggerPx`` "" unless
liquidated). ``pnlRatio`` = ``realizedPnl / (closeTotalPos x ctVal x openAvgPx / lever)``:
the NT fixture's numbers satisfy it (-0.06646211 / (0.1 x 0.1 x 3226.93 / 3) =
-0.0061788241).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from reactor.sim.decimals import fmt as _fmt
from reactor.sim.errors import ExchangeError

ZERO = Decimal(0)
POS_ID_TTL_MS = 30 * 24 * 3600 * 1000  # DOC-TA positions-history posId
CLOSE_PARTIAL, CLOSE_ALL, LIQUIDATION, PARTIAL_LIQUIDATION = "1", "2", "3", "4"


def lever_text(lever: Decimal) -> str:
    """``lever`` as positions-history writes it: always one decimal at least ("3.0")."""
    text = _fmt(lever)
    return text if "." in text else text + ".0"


@dataclass
class Lifecycle:
    """One position from its open to its full close (or to now)."""

    pos_id: str
    inst_id: str
    pos_side: str
    mgn_mode: str
    c_time: int
    u_time: int
    lever: Decimal
    ct_val: Decimal
    direction: str  # long | short
    open_sz: Decimal = ZERO
    open_value: Decimal = ZERO  # sum of sz x px over opening fills
    open_max_pos: Decimal = ZERO
    close_sz: Decimal = ZERO
    close_value: Decimal = ZERO
    pnl: Decimal = ZERO
    fee: Decimal = ZERO
    liq_penalty: Decimal = ZERO
    funding: Decimal = ZERO  # settled funding over the lifecycle (positions-history fundingFee)
    close_type: str = ""  # "" until the first close
    trigger_px: str = ""

    def opened(self, sz: Decimal, px: Decimal, size_after: Decimal, fee: Decimal) -> None:
        self.open_sz += sz
        self.open_value += sz * px
        self.open_max_pos = max(self.open_max_pos, size_after)
        self.fee += fee

    def closed(
        self,
        sz: Decimal,
        px: Decimal,
        *,
        kind: str,
        pnl: Decimal,
        fee: Decimal,
        at_ms: int,
        liq_penalty: Decimal = ZERO,
    ) -> None:
        self.close_sz += sz
        self.close_value += sz * px
        self.pnl += pnl
        self.fee += fee
        self.liq_penalty += liq_penalty
        self.close_type = kind
        self.u_time = at_ms
        self.trigger_px = _fmt(px) if kind in (LIQUIDATION, PARTIAL_LIQUIDATION) else ""

    def record(self) -> dict[str, str]:
        open_avg = self.open_value / self.open_sz if self.open_sz else ZERO
        close_avg = self.close_value / self.close_sz if self.close_sz else ZERO
        realized = self.pnl + self.fee + self.funding + self.liq_penalty
        basis = self.close_sz * self.ct_val * open_avg / self.lever
        return {
            "cTime": str(self.c_time),
            "ccy": "USDT",
            "closeAvgPx": _fmt(close_avg),
            "closeTotalPos": _fmt(self.close_sz),
            "direction": self.direction,
            "fee": _fmt(self.fee),
            "fundingFee": _fmt(self.funding),
            "instId": self.inst_id,
            "instType": "SWAP",
            "lever": lever_text(self.lever),
            "liqPenalty": _fmt(self.liq_penalty),
            "mgnMode": self.mgn_mode,
            "nonSettleAvgPx": "",
            "openAvgPx": _fmt(open_avg),
            "openMaxPos": _fmt(self.open_max_pos),
            "pnl": _fmt(self.pnl),
            "pnlRatio": _fmt(realized / basis) if basis else "0",
            "posId": self.pos_id,
            "posSide": self.pos_side,
            "realizedPnl": _fmt(realized),
            "settledPnl": "",
            "triggerPx": self.trigger_px,
            "type": self.close_type,
            "uTime": str(self.u_time),
            "uly": self.inst_id.removesuffix("-SWAP"),
        }


def query_history(lifecycles: list[Lifecycle], params: Mapping[str, str]) -> list[dict[str, str]]:
    """``GET /api/v5/account/positions-history`` over one account's lifecycles."""
    try:
        limit = int(params.get("limit") or 100)
        after = int(params["after"]) if params.get("after") else None
        before = int(params["before"]) if params.get("before") else None
    except ValueError:
        raise ExchangeError("51000", "Parameter limit error") from None
    if not 1 <= limit <= 100:
        raise ExchangeError("51000", "Parameter limit error")
    if params.get("instType") not in (None, "", "SWAP"):
        return []
    exact = {k: params[k] for k in ("instId", "mgnMode", "type", "posId") if params.get(k)}
    rows = [lc.record() for lc in lifecycles if lc.close_type]
    rows = [r for r in rows if all(r[k] == v for k, v in exact.items())]
    if after is not None:
        rows = [r for r in rows if int(r["uTime"]) < after]
    if before is not None:
        rows = [r for r in rows if int(r["uTime"]) > before]
    rows.sort(key=lambda r: int(r["uTime"]), reverse=True)
    return rows[:limit]
