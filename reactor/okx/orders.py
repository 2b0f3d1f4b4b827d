"""OKX order and fill payloads: the ``orders`` channel and ``trade/orders-history``.

Sans-I/O: typed views parsed from OKX's all-string JSON, plus the subscribe argument. The
reactor reads orders only to learn which fills grew a position and whether the desk's strategy
marked them as maintenances (``tag`` or a ``clOrdId`` prefix); it never places or cancels one.

Shapes (fixtures in ``tests/fixtures/okx/``, sources in its README):
- ``orders`` push: ``{"arg":{"channel":"orders","instType":"SWAP","uid":...},"data":[order...]}``
  (OKX docs "WS / Order channel"; nautilus_trader ``test_data/ws_orders.json``; ccxt 4.5.90
  ``okx.py`` ``parse_order`` comment with a captured LINK-USDT-SWAP isolated order). One order
  is pushed on creation with empty fill fields, then again per fill: ``fillSz``/``fillPx``/
  ``tradeId``/``fillTime`` describe that one fill, ``accFillSz``/``avgPx`` the order so far,
  ``state`` ``partially_filled`` or ``filled``.
- ``GET /api/v5/trade/orders-history``: the same order fields (nautilus_trader
  ``test_data/http_get_orders_history.json``).
- Type-2 (trade) bills, one per fill, are :mod:`reactor.okx.bills`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from reactor.okx.models import PayloadError, _dec, _int, _str

__all__ = [
    "ORDERS_CHANNEL",
    "OrderUpdate",
    "OrdersPush",
    "orders_subscribe_arg",
    "orders_subscribe_frame",
    "parse_order",
    "parse_orders_push",
]

ORDERS_CHANNEL = "orders"
_PREVIEW = 200


def orders_subscribe_arg(inst_type: str = "SWAP") -> dict[str, str]:
    """``{"channel":"orders","instType":"SWAP"}``: every SWAP order of the logged-in account."""
    return {"channel": ORDERS_CHANNEL, "instType": inst_type}


def orders_subscribe_frame(inst_type: str = "SWAP") -> str:
    return json.dumps(
        {"op": "subscribe", "args": [orders_subscribe_arg(inst_type)]}, separators=(",", ":")
    )


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One order as pushed on ``orders`` or read from orders-history.

    ``fill_sz`` is the size of the fill this push reports (0 when it reports none);
    ``acc_fill_sz`` the order's cumulative filled size, so a fill is new when it grows.
    """

    account: str
    inst_id: str
    inst_type: str
    ord_id: str
    cl_ord_id: str
    tag: str
    state: str
    side: str
    pos_side: str
    td_mode: str
    reduce_only: bool
    sz: Decimal | None
    fill_sz: Decimal
    fill_px: Decimal | None
    acc_fill_sz: Decimal
    avg_px: Decimal | None
    trade_id: str
    fee: Decimal | None
    fill_time: int
    c_time: int
    u_time: int

    @property
    def has_fill(self) -> bool:
        return self.acc_fill_sz > 0 or self.fill_sz > 0

    @property
    def adds_to_position(self) -> bool:
        """Buying a long or selling a short; in net mode either side may add (sign unknown)."""
        if self.reduce_only:
            return False
        if self.pos_side == "long":
            return self.side == "buy"
        if self.pos_side == "short":
            return self.side == "sell"
        return self.side in ("buy", "sell")


def _flag(raw: dict[str, Any], field: str) -> bool:
    value = raw.get(field, "")
    if isinstance(value, bool):
        return value
    return _str(raw, field).lower() == "true"


def parse_order(account: str, raw: Any) -> OrderUpdate:
    """Parse one element of an ``orders`` push or an orders-history ``data`` list."""
    if not isinstance(raw, dict):
        raise PayloadError(f"order: expected an object, got {type(raw).__name__}")
    ord_id = _str(raw, "ordId", required=True)
    fill_sz = _dec(raw, "fillSz") or Decimal(0)
    acc_fill_sz = _dec(raw, "accFillSz") or Decimal(0)
    if fill_sz < 0 or acc_fill_sz < 0:
        raise PayloadError("fillSz/accFillSz: negative")
    return OrderUpdate(
        account=account,
        inst_id=_str(raw, "instId", required=True),
        inst_type=_str(raw, "instType"),
        ord_id=ord_id,
        cl_ord_id=_str(raw, "clOrdId"),
        tag=_str(raw, "tag"),
        state=_str(raw, "state"),
        side=_str(raw, "side"),
        pos_side=_str(raw, "posSide"),
        td_mode=_str(raw, "tdMode"),
        reduce_only=_flag(raw, "reduceOnly"),
        sz=_dec(raw, "sz"),
        fill_sz=fill_sz,
        fill_px=_dec(raw, "fillPx"),
        acc_fill_sz=acc_fill_sz,
        avg_px=_dec(raw, "avgPx"),
        trade_id=_str(raw, "tradeId"),
        fee=_dec(raw, "fee"),
        fill_time=_int(raw, "fillTime"),
        c_time=_int(raw, "cTime"),
        u_time=_int(raw, "uTime"),
    )


@dataclass(frozen=True, slots=True)
class InvalidOrder:
    reason: str
    preview: str


@dataclass(frozen=True, slots=True)
class OrdersPush:
    """The orders of one ``orders`` push; items that did not parse are kept aside, never fatal."""

    orders: list[OrderUpdate]
    invalid: list[InvalidOrder]


def _preview(raw: Any) -> str:
    try:
        text = json.dumps(raw, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(raw)
    return text if len(text) <= _PREVIEW else text[:_PREVIEW] + "…"


def parse_orders_push(account: str, msg: dict[str, Any]) -> OrdersPush:
    """Parse a decoded push whose ``arg.channel`` is ``orders``; raises PayloadError on shape."""
    arg = msg.get("arg")
    if not isinstance(arg, dict) or arg.get("channel") != ORDERS_CHANNEL:
        raise PayloadError("arg: not an orders push")
    data = msg.get("data")
    if not isinstance(data, list):
        raise PayloadError("data: not a list")
    orders: list[OrderUpdate] = []
    invalid: list[InvalidOrder] = []
    for raw in data:
        try:
            orders.append(parse_order(account, raw))
        except PayloadError as exc:
            invalid.append(InvalidOrder(str(exc), _preview(raw)))
    return OrdersPush(orders, invalid)
