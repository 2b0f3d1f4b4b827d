"""Bills: one record for every change of an account's balance or a position's margin.

Shape and filters from DOC-TA "Get bills details (last 7 days)" (``GET /api/v5/account/bills``):
every field a string, ``""`` when not applicable; newest first; ``after``/``before`` page on
``billId``, ``begin``/``end`` filter on ``ts``; ``limit`` at most 100 (default 100); 7 days
kept. A captured margin-transfer bill (CCXT-BILL, docs/spec/okx-fidelity.md §5.2) fixes the type-6
conventions: ``balChg`` opposite ``posBalChg``, ``sz`` = the amount, ``posBal`` = the margin
after, ``tradeId`` "0", ``px`` "".

Types and subtypes used (DOC-TA lists): 2 trade (1 buy, 2 sell in net mode; 3/4 open
long/short, 5/6 close long/short in long/short mode); 5 liquidation (100/101 partial
liquidation close long/short, 102/103 partial liquidation buy/sell, 104/105 liquidation
long/short, 106/107 liquidation buy/sell); 6 margin transfer (160 manual increase, 161
manual decrease); 8 funding fee (173 expense, 174 income; the payment in ``pnl``, DOC-TA
"Funding Fee expense (subType = 173): You may refer to pnl for the fee payment"). The trading
fee is the ``fee`` field of the trade bill, not a bill of its own (DOC-TA example: a type-2
bill with ``fee`` "-0.000021955779").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reactor.okx.bills import (
    BILL_TYPE_FUNDING,
    BILL_TYPE_MARGIN,
    BILL_TYPE_TRADE,
    FUNDING_SUBTYPE,
    TRANSFER_SUBTYPE,
)
from reactor.sim.errors import ExchangeError

SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
MAX_LIMIT = 100

# DOC-TA response parameters of "Get bills details", in the documented order.
BILL_FIELDS = (
    "instType",
    "billId",
    "type",
    "subType",
    "ts",
    "balChg",
    "posBalChg",
    "bal",
    "posBal",
    "sz",
    "px",
    "ccy",
    "pnl",
    "fee",
    "earnAmt",
    "earnApr",
    "mgnMode",
    "instId",
    "ordId",
    "execType",
    "from",
    "to",
    "notes",
    "interest",
    "tag",
    "fillTime",
    "tradeId",
    "clOrdId",
    "fillIdxPx",
    "fillMarkPx",
    "fillPxVol",
    "fillPxUsd",
    "fillMarkVol",
    "fillFwdPx",
)

# The venue's own table (reactor/okx/bills.py, one home); 5 (liquidation) only the simulator books.
TYPE_TRADE, TYPE_MARGIN, TYPE_FUNDING = BILL_TYPE_TRADE, BILL_TYPE_MARGIN, BILL_TYPE_FUNDING
TYPE_LIQUIDATION = "5"
SUB_MARGIN_ADD, SUB_MARGIN_REDUCE = TRANSFER_SUBTYPE["add"], TRANSFER_SUBTYPE["reduce"]
SUB_FUNDING_EXPENSE, SUB_FUNDING_INCOME = FUNDING_SUBTYPE["expense"], FUNDING_SUBTYPE["income"]


def trade_subtype(pos_side: str, side: str, opening: bool) -> str:
    """DOC-TA subType of a fill: 1/2 buy/sell (net mode), 3-6 open/close long/short."""
    if pos_side == "net":
        return "1" if side == "buy" else "2"
    if opening:
        return "3" if pos_side == "long" else "4"
    return "5" if pos_side == "long" else "6"


def liquidation_subtype(pos_side: str, long: bool, partial: bool) -> str:
    """DOC-TA subType of a liquidation bill (100-107)."""
    if pos_side == "net":
        base = 102 if partial else 106  # buy closes a short, sell closes a long
        return str(base + (1 if long else 0))
    base = 100 if partial else 104
    return str(base + (0 if long else 1))


def make_bill(**values: str) -> dict[str, str]:
    """A bill with every DOC-TA field; unknown names are a programming error."""
    unknown = set(values) - set(BILL_FIELDS)
    if unknown:
        raise KeyError(f"not bill fields: {sorted(unknown)}")
    bill = dict.fromkeys(BILL_FIELDS, "")
    bill.update(instType="SWAP", ccy="USDT", interest="0", pnl="0", fee="0")
    bill.update(values)
    return bill


@dataclass
class BillBook:
    """One account's bills, oldest first in memory."""

    bills: list[dict[str, str]] = field(default_factory=list)

    def add(self, bill: dict[str, str]) -> None:
        self.bills.append(bill)

    def query(self, params: Mapping[str, str], now_ms: int) -> list[dict[str, str]]:
        """``GET /api/v5/account/bills``; raises :class:`ExchangeError` 51000 on bad values."""
        raw_limit = _int_param(params, "limit", None)
        limit = MAX_LIMIT if raw_limit is None else raw_limit
        if not 1 <= limit <= MAX_LIMIT:
            raise ExchangeError("51000", "Parameter limit error")
        after = _int_param(params, "after", None)
        before = _int_param(params, "before", None)
        begin = _int_param(params, "begin", None)
        end = _int_param(params, "end", None)
        exact = {
            k: params[k]
            for k in ("instType", "instId", "ccy", "mgnMode", "type", "subType")
            if params.get(k)
        }
        if params.get("ctType") not in (None, "", "linear"):
            return []  # every simulated instrument is linear
        oldest = now_ms - SEVEN_DAYS_MS
        out: list[dict[str, str]] = []
        for bill in reversed(self.bills):
            bill_id, ts = int(bill["billId"]), int(bill["ts"])
            if ts < oldest:
                break
            if after is not None and bill_id >= after:
                continue
            if before is not None and bill_id <= before:
                continue
            if (begin is not None and ts < begin) or (end is not None and ts > end):
                continue
            if any(bill[k] != v for k, v in exact.items()):
                continue
            out.append(bill)
            if len(out) == limit:
                break
        return out


def _int_param(params: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = params.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ExchangeError("51000", f"Parameter {name} error") from None
