"""OKX order/fill/bill parsing against captured payloads (tests/fixtures/okx/README.md)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from reactor.okx.bills import parse_bill
from reactor.okx.models import PayloadError
from reactor.okx.orders import (
    orders_subscribe_arg,
    orders_subscribe_frame,
    parse_order,
    parse_orders_push,
)
from tests.paths import FIXTURES


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_subscribe_arg_and_frame() -> None:
    assert orders_subscribe_arg() == {"channel": "orders", "instType": "SWAP"}
    assert json.loads(orders_subscribe_frame()) == {
        "op": "subscribe",
        "args": [{"channel": "orders", "instType": "SWAP"}],
    }


def test_filled_swap_order_push() -> None:
    push = parse_orders_push("sub1", load("ws_orders_nt.json"))
    assert push.invalid == []
    [o] = push.orders
    assert (o.account, o.inst_id, o.inst_type) == ("sub1", "BTC-USDT-SWAP", "SWAP")
    assert (o.ord_id, o.cl_ord_id, o.tag) == ("2497956918703120384", "001BTCUSDT20250106001", "")
    assert (o.state, o.side, o.pos_side, o.td_mode) == ("filled", "buy", "long", "isolated")
    assert o.fill_sz == o.acc_fill_sz == Decimal("0.03")
    assert o.fill_px == o.avg_px == Decimal("103698.9")
    assert o.fee == Decimal("-0.021776769")
    assert (o.trade_id, o.fill_time, o.c_time, o.u_time) == (
        "1518905529",
        1746947317402,
        1746947317401,
        1746947317402,
    )
    assert o.reduce_only is False
    assert o.has_fill and o.adds_to_position


def test_creation_push_has_no_fill_then_fill_push() -> None:
    created, filled = load("ws_orders_swap_created_then_filled.json")
    [c] = parse_orders_push("sub1", created).orders
    [f] = parse_orders_push("sub1", filled).orders
    assert c.ord_id == f.ord_id
    assert c.state == "live" and not c.has_fill
    assert (c.fill_px, c.avg_px, c.trade_id, c.fill_time) == (None, None, "", 0)
    assert f.state == "filled" and f.has_fill
    assert (f.fill_sz, f.acc_fill_sz, f.trade_id) == (Decimal("0.1"), Decimal("0.1"), "293429690")
    # A reduce-only sell on a net position closes contracts: never a maintenance.
    assert f.reduce_only and not f.adds_to_position


def test_orders_history_row_parses_like_a_push() -> None:
    [row] = load("http_orders_history_swap.json")["data"]
    o = parse_order("sub1", row)
    [pushed] = parse_orders_push("sub1", load("ws_orders_nt.json")).orders
    assert o.ord_id == pushed.ord_id and o.acc_fill_sz == pushed.acc_fill_sz
    assert o.cl_ord_id == ""  # the history copy has no clOrdId


def test_trade_bill() -> None:
    [raw] = load("http_bills_trade.json")["data"]
    b = parse_bill("sub1", raw)
    assert (b.bill_id, b.type, b.sub_type, b.ord_id) == (
        "310394313544966151",
        "2",
        "2",
        "310394313519800320",
    )
    assert b.sz == Decimal("664.26795866") and b.ts == 1620275771196
    assert b.is_trade and b.opens and (b.side, b.pos_side) == ("sell", "net")
    assert b.tag == "" and b.cl_ord_id == ""  # absent in that capture: read as empty


@pytest.mark.parametrize(
    ("sub_type", "pos_side", "side", "opens"),
    [
        ("3", "long", "buy", True),
        ("4", "short", "sell", True),
        ("5", "long", "sell", False),
        ("6", "short", "buy", False),
    ],
)
def test_bill_subtypes(sub_type: str, pos_side: str, side: str, opens: bool) -> None:
    b = parse_bill("a", {"billId": "1", "type": "2", "subType": sub_type})
    assert (b.pos_side, b.side, b.opens) == (pos_side, side, opens)
    margin = parse_bill("a", {"billId": "2", "type": "6", "subType": "160"})
    assert (margin.pos_side, margin.side, margin.opens) == ("", "", False)


@pytest.mark.parametrize(
    ("pos_side", "side", "reduce_only", "adds"),
    [
        ("long", "buy", "false", True),
        ("long", "sell", "false", False),
        ("short", "sell", "", True),
        ("short", "buy", "", False),
        ("net", "buy", "false", True),
        ("net", "sell", "false", True),
        ("long", "buy", "true", False),
    ],
)
def test_adds_to_position(pos_side: str, side: str, reduce_only: str, adds: bool) -> None:
    o = parse_order(
        "a",
        {
            "ordId": "1",
            "instId": "X-USDT-SWAP",
            "posSide": pos_side,
            "side": side,
            "reduceOnly": reduce_only,
        },
    )
    assert o.adds_to_position is adds


def test_bad_items_are_kept_aside() -> None:
    msg = {
        "arg": {"channel": "orders", "instType": "SWAP"},
        "data": [
            {"ordId": "1", "instId": "A-USDT-SWAP", "accFillSz": "abc"},
            {"instId": "A-USDT-SWAP"},
            "not an object",
            {"ordId": "2", "instId": "A-USDT-SWAP", "fillSz": "-1"},
            {"ordId": "3", "instId": "A-USDT-SWAP", "accFillSz": "", "fillSz": ""},
        ],
    }
    push = parse_orders_push("a", msg)
    assert [o.ord_id for o in push.orders] == ["3"]
    reasons = [i.reason for i in push.invalid]
    assert reasons[0].startswith("accFillSz: not a number")
    assert reasons[1] == "ordId: missing"
    assert reasons[2].startswith("order: expected an object")
    assert reasons[3].startswith("fillSz/accFillSz: negative")
    assert not push.orders[0].has_fill


@pytest.mark.parametrize(
    "msg",
    [
        {"arg": {"channel": "positions"}, "data": []},
        {"arg": "orders", "data": []},
        {"arg": {"channel": "orders"}, "data": {}},
    ],
)
def test_not_an_orders_push(msg: dict[str, Any]) -> None:
    with pytest.raises(PayloadError):
        parse_orders_push("a", msg)
