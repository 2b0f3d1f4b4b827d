"""Orders, bills, estimates and position history over OKX v5 REST, and the ``orders`` channel
(sans-I/O; the exchange mechanics are in :mod:`reactor.sim.exchange`).

Rate limits per sub-account User ID (DOC-TA and DOC Trade): place order and order details
60/2 s, bills 5/1 s, adjust-leverage-info 5/2 s, max-avail-size 20/2 s, positions-history
10/2 s.

A refused order is answered the way OKX answers a failed placement: ``code`` "1", ``msg``
"All operations failed" and the order's ``sCode``/``sMsg`` in ``data`` (a captured answer in
go-okx's tests: ``{"code":"1","data":[{"clOrdId":"","ordId":"","sCode":"51121","sMsg":"Order
quantity must be a multiple of the lot size.","tag":"","ts":"…"}],"msg":"All operations
failed",…}``); parameter errors and an unknown instrument come back as top-level codes
(**likely**).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from reactor.okx.endpoints import (
    ADJUST_LEVERAGE_INFO,
    BILLS,
    MAX_AVAIL_SIZE,
    ORDER,
    POSITIONS,
    POSITIONS_HISTORY,
    RATE_LIMITS,
)
from reactor.sim.endpoints import positions
from reactor.sim.exchange import Exchange, ExchangeError, OrderFilled
from reactor.sim.orders import OrderRequest, parse_order
from reactor.sim.rest_api import Call, Publisher, Reject, RestApi, parse_positive_decimal
from reactor.sim.ws_api import Channel, WsHub

ORDERS_CHANNEL = "orders"

# Answered at top level rather than per order.
_TOP_LEVEL = ("50000", "50002", "50014", "51001")


def register(api: RestApi, hub: WsHub) -> None:
    """Serve this module's endpoints on ``api`` and the ``orders`` channel on ``hub``."""
    limits = RATE_LIMITS
    api.add("POST", ORDER, place_order, private=True, rate_limit=limits[ORDER])
    api.add("GET", ORDER, get_order, private=True, rate_limit=limits[ORDER])
    api.add("GET", BILLS, bills, private=True, rate_limit=limits[BILLS])
    api.add(
        "GET",
        ADJUST_LEVERAGE_INFO,
        adjust_leverage_info,
        private=True,
        rate_limit=limits[ADJUST_LEVERAGE_INFO],
    )
    api.add("GET", MAX_AVAIL_SIZE, max_avail_size, private=True, rate_limit=limits[MAX_AVAIL_SIZE])
    api.add(
        "GET",
        POSITIONS_HISTORY,
        positions_history,
        private=True,
        rate_limit=limits[POSITIONS_HISTORY],
    )
    api.add("GET", POSITIONS, positions_with_closed, private=True, rate_limit=limits[POSITIONS])
    # DOC: the orders channel has no initial snapshot; it pushes on order events. DOC-WS: it is
    # connection-limited and sends channel-conn-count on a new subscription (ORD-CC, §11.2.6).
    hub.add_channel(Channel(ORDERS_CHANNEL, conn_count=True))


def fill(exchange: Exchange, publisher: Publisher, account: str, req: OrderRequest) -> OrderFilled:
    """Fill ``req`` and push what OKX pushes for it: the ``orders`` record, then the
    ``positions`` events. The REST order path and the simulated desk both come through here.
    Raises :class:`ExchangeError` (nothing changed) when the order is refused."""
    done = exchange.place_order(account, req)
    publisher.records(ORDERS_CHANNEL, account, [done.order])
    publisher.changes(done.changes)
    return done


def place_order(call: Call) -> list[Any]:
    raw = call.json_body()
    cl_ord_id = raw.get("clOrdId") if isinstance(raw.get("clOrdId"), str) else ""
    tag = raw.get("tag") if isinstance(raw.get("tag"), str) else ""
    try:
        req = parse_order(raw)
        done = fill(call.exchange, call.publisher, call.account.name, req)
    except ExchangeError as exc:
        if exc.code in _TOP_LEVEL:
            raise Reject(exc.code, exc.msg) from None
        ts = str(call.exchange.now_ms())
        failed = {"clOrdId": cl_ord_id, "ordId": "", "sCode": exc.code, "sMsg": exc.msg}
        raise Reject("1", "All operations failed", [{**failed, "tag": tag, "ts": ts}]) from None
    return [done.ack]


def get_order(call: Call) -> list[Any]:
    inst_id = call.require("instId")
    ord_id, cl_ord_id = call.query.get("ordId", ""), call.query.get("clOrdId", "")
    if not ord_id and not cl_ord_id:
        raise Reject("50014", "Parameter ordId cannot be empty.")
    try:
        return [call.exchange.order(call.account.name, inst_id, ord_id, cl_ord_id)]
    except ExchangeError as exc:
        raise Reject(exc.code, exc.msg) from None


def bills(call: Call) -> list[Any]:
    try:
        return call.exchange.bills(call.account.name, call.query)
    except ExchangeError as exc:
        raise Reject(exc.code, exc.msg) from None


def positions_history(call: Call) -> list[Any]:
    try:
        return call.exchange.positions_history(call.account.name, call.query)
    except ExchangeError as exc:
        raise Reject(exc.code, exc.msg) from None


def positions_with_closed(call: Call) -> list[Any]:
    """``GET positions``, plus the ``pos`` "0" records of closed positions whose ``posId`` is
    still valid when ``instId`` is given (DOC-TA Get positions; CCXT-16166)."""
    open_ones = positions(call)
    q = call.query
    inst_ids = {s for s in q.get("instId", "").split(",") if s}
    if not inst_ids or q.get("instType", "") not in ("", "SWAP"):
        return open_ones
    pos_ids = {s for s in q.get("posId", "").split(",") if s}
    closed = call.exchange.closed_positions(call.account.name, inst_ids)
    return open_ones + [p for p in closed if not pos_ids or p["posId"] in pos_ids]


def adjust_leverage_info(call: Call) -> list[Any]:
    inst_type = call.require("instType")
    mgn_mode = call.require("mgnMode")
    lever = parse_positive_decimal("lever", call.require("lever"))
    if inst_type not in ("MARGIN", "SWAP", "FUTURES"):
        raise Reject("51000", "Parameter instType error")
    if mgn_mode not in ("isolated", "cross"):
        raise Reject("51000", "Parameter mgnMode error")
    inst_id = call.require("instId")  # required for SWAP (DOC-TA)
    pos_side = call.query.get("posSide") or "net"
    if pos_side not in ("long", "short", "net"):
        raise Reject("51000", "Parameter posSide error")
    try:
        info = call.exchange.adjust_leverage_info(
            call.account.name, inst_id, mgn_mode, Decimal(lever), pos_side
        )
    except ExchangeError as exc:
        raise Reject(exc.code, exc.msg) from None
    return [info]


def max_avail_size(call: Call) -> list[Any]:
    inst_ids = [s for s in str(call.require("instId")).split(",") if s]
    td_mode = call.require("tdMode")
    if td_mode not in ("isolated", "cross", "cash", "spot_isolated"):
        raise Reject("51000", "Parameter tdMode error")
    if len(inst_ids) > 5:  # DOC-TA: no more than 5
        raise Reject("51000", "Parameter instId error")
    try:
        return [call.exchange.max_avail_size(call.account.name, i) for i in inst_ids]
    except ExchangeError as exc:
        raise Reject(exc.code, exc.msg) from None
