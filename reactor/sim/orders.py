"""Orders: the request OKX's ``POST /api/v5/trade/order`` takes, and the order record that
``GET /api/v5/trade/order`` and the ``orders`` channel send.

Request parameters and formats from DOC (Trade "Place order"): ``clOrdId`` "a combination of
case-sensitive alphanumerics, all numbers, or all letters of up to 32 characters", ``tag`` up
to 16; ``posSide`` defaults to ``net``; ``reduceOnly`` a boolean. The record's field set is
the NT fixture ``ws_orders.json`` (a SWAP market order, ``state`` "filled").

The simulator fills at once: ``market`` orders, and ``limit``/``ioc``/``fok`` orders that are
marketable at the mark price; it keeps no resting book, so a non-marketable order or another
``ordType`` is refused with 51000 (an answer OKX would not give: the simulator's limit).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from reactor.sim.decimals import fmt
from reactor.sim.errors import ExchangeError

ZERO = Decimal(0)
_CL_ORD_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_TAG = re.compile(r"[A-Za-z0-9]{1,16}")
FILLABLE_TYPES = ("market", "limit", "ioc", "fok")


@dataclass(frozen=True)
class OrderRequest:
    inst_id: str
    td_mode: str  # isolated | cross
    side: str  # buy | sell
    pos_side: str  # long | short | net
    ord_type: str
    sz: Decimal
    px: Decimal | None
    cl_ord_id: str
    tag: str
    reduce_only: bool


def _param_error(name: str) -> ExchangeError:
    return ExchangeError("51000", f"Parameter {name} error")


def parse_order(raw: Mapping[str, Any]) -> OrderRequest:
    """Validate a place-order body; every failure is an :class:`ExchangeError`."""
    fields = {k: v for k, v in raw.items() if v not in ("", None)}
    for name in ("instId", "tdMode", "side", "ordType", "sz"):
        if name not in fields:
            raise ExchangeError("50014", f"Parameter {name} can not be empty.")
    inst_id = fields["instId"]
    if not isinstance(inst_id, str):
        raise _param_error("instId")
    td_mode = fields["tdMode"]
    if td_mode not in ("isolated", "cross"):
        raise _param_error("tdMode")
    side = fields["side"]
    if side not in ("buy", "sell"):
        raise _param_error("side")
    pos_side = fields.get("posSide", "net")
    if pos_side not in ("long", "short", "net"):
        raise _param_error("posSide")
    ord_type = fields["ordType"]
    if not isinstance(ord_type, str) or ord_type not in FILLABLE_TYPES:
        raise _param_error("ordType")
    sz = _decimal(fields["sz"], "sz")
    if sz <= 0:
        raise _param_error("sz")
    px: Decimal | None = None
    if ord_type != "market":
        if "px" not in fields:
            raise ExchangeError("50014", "Parameter px can not be empty.")
        px = _decimal(fields["px"], "px")
        if px <= 0:
            raise _param_error("px")
    cl_ord_id = fields.get("clOrdId", "")
    if cl_ord_id and (not isinstance(cl_ord_id, str) or not _CL_ORD_ID.fullmatch(cl_ord_id)):
        raise _param_error("clOrdId")
    tag = fields.get("tag", "")
    if tag and (not isinstance(tag, str) or not _TAG.fullmatch(tag)):
        raise _param_error("tag")
    reduce_only = fields.get("reduceOnly", False)
    if reduce_only in ("true", "false"):
        reduce_only = reduce_only == "true"
    if not isinstance(reduce_only, bool):
        raise _param_error("reduceOnly")
    return OrderRequest(
        inst_id, td_mode, side, pos_side, ord_type, sz, px, cl_ord_id, tag, reduce_only
    )


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _param_error(name)
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise _param_error(name) from None
    if not d.is_finite():
        raise _param_error(name)
    return d


def marketable(req: OrderRequest, mark_px: Decimal) -> bool:
    """A limit-like order fills at once when its price crosses the mark."""
    if req.px is None:
        return True
    return req.px >= mark_px if req.side == "buy" else req.px <= mark_px


@dataclass
class Order:
    """One filled order; ``record()`` is the OKX-shaped dict (every field a string)."""

    req: OrderRequest
    ord_id: str
    lever: Decimal
    c_time: int
    fill_px: Decimal
    fill_time: int
    trade_id: str
    fee: Decimal
    pnl: Decimal

    def record(self) -> dict[str, Any]:
        r = self.req
        return {
            "accFillSz": fmt(r.sz),
            "algoClOrdId": "",
            "algoId": "",
            "attachAlgoClOrdId": "",
            "attachAlgoOrds": [],
            "avgPx": fmt(self.fill_px),
            "cTime": str(self.c_time),
            "cancelSource": "",
            "cancelSourceReason": "",
            "category": "normal",
            "ccy": "",
            "clOrdId": r.cl_ord_id,
            "execType": "T",
            "fee": fmt(self.fee),
            "feeCcy": "USDT",
            "fillPx": fmt(self.fill_px),
            "fillSz": fmt(r.sz),
            "fillTime": str(self.fill_time),
            "instId": r.inst_id,
            "instType": "SWAP",
            "isTpLimit": "false",
            "lever": fmt(self.lever),
            "linkedAlgoOrd": {"algoId": ""},
            "ordId": self.ord_id,
            "ordType": r.ord_type,
            "pnl": fmt(self.pnl),
            "posSide": r.pos_side,
            "px": fmt(r.px) if r.px is not None else "",
            "pxType": "",
            "pxUsd": "",
            "pxVol": "",
            "quickMgnType": "",
            "rebate": "0",
            "rebateCcy": "USDT",
            "reduceOnly": "true" if r.reduce_only else "false",
            "side": r.side,
            "slOrdPx": "",
            "slTriggerPx": "",
            "slTriggerPxType": "",
            "source": "",
            "state": "filled",
            "stpId": "",
            "stpMode": "cancel_maker",
            "sz": fmt(r.sz),
            "tag": r.tag,
            "tdMode": r.td_mode,
            "tgtCcy": "",
            "tpOrdPx": "",
            "tpTriggerPx": "",
            "tpTriggerPxType": "",
            "tradeId": self.trade_id,
            "uTime": str(self.fill_time),
        }
