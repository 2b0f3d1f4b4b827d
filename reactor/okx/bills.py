"""OKX's ``GET /api/v5/account/bills`` record: one :class:`Bill`, its parsers, the subTypes.

One record, two uses in the reactor:
- type 2 (trade): one bill per fill, with ``ordId``, ``clOrdId``, ``tag``, ``subType`` (1 buy,
  2 sell (net mode), 3 open long, 4 open short, 5 close long, 6 close short), ``sz``, ``ts``; no
  ``posSide`` (OKX docs "Get bills details"; ccxt ``fetch_ledger`` comment). Recovery of
  maintenance fills missed while away reads them (:mod:`reactor.engine.fill_recovery`).
- type 6 (margin transfer): subType 160 manual increase (add), 161 manual decrease (reduce),
  ``sz`` the amount, ``posBalChg`` +-amount, ``posBal`` the position's margin after, ``ts`` when
  it was booked (docs/spec/okx-fidelity.md §5.1-§5.2, DOC-TA "Get bills details", CCXT-BILL
  shows a real one). Bills carry no ``posSide``. The engine reads them to resolve ambiguous
  calls and to see transfers it did not make.

Sans-I/O: typed views parsed from OKX's all-string JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from reactor.okx.models import PayloadError, _dec, _int, _str, finite_decimal

__all__ = [
    "BILL_TYPE_FUNDING",
    "BILL_TYPE_MARGIN",
    "BILL_TYPE_TRADE",
    "FUNDING_SUBTYPE",
    "SUBTYPE_ACTION",
    "TRANSFER_SUBTYPE",
    "Bill",
    "parse_bill",
    "parse_transfers",
    "transfer_bill",
]

BILL_TYPE_TRADE = "2"
BILL_TYPE_MARGIN = "6"
# Type 8, funding fee: subType 173 expense, 174 income, the payment in ``pnl`` (DOC-TA "Get
# bills details"); since 2024-07 it moves the isolated margin (docs/spec/okx-fidelity.md
# §11.2.2), which is why the probe and the simulator need it.
BILL_TYPE_FUNDING = "8"
FUNDING_SUBTYPE = {"expense": "173", "income": "174"}
# The subType table (DOC-TA "Get bills details"). Margin transfers: 160 add, 161 reduce (162,
# the automatic margin add, is not a transfer a controller makes). Trade bills: the posSide it
# applies to and the order side.
TRANSFER_SUBTYPE = {"add": "160", "reduce": "161"}
SUBTYPE_ACTION = {v: k for k, v in TRANSFER_SUBTYPE.items()}
_TRADE_SUBTYPE_POS_SIDE = {
    "1": "net",
    "2": "net",
    "3": "long",
    "4": "short",
    "5": "long",
    "6": "short",
}
_TRADE_SUBTYPE_SIDE = {"1": "buy", "2": "sell", "3": "buy", "4": "sell", "5": "sell", "6": "buy"}
_TRADE_OPENS = frozenset({"1", "2", "3", "4"})


@dataclass(frozen=True, slots=True)
class Bill:
    """One account bill: a fill (type 2) or a margin transfer (type 6) of an isolated SWAP."""

    bill_id: str
    type: str
    sub_type: str
    inst_id: str
    sz: Decimal | None
    ts: int  # ms, OKX's clock
    account: str = ""
    inst_type: str = ""
    mgn_mode: str = ""
    ord_id: str = ""
    cl_ord_id: str = ""
    tag: str = ""
    trade_id: str = ""
    pos_bal_chg: Decimal | None = None  # margin transfers: +-amount
    pos_bal: Decimal | None = None  # margin transfers: the position's margin after

    @property
    def is_trade(self) -> bool:
        return self.type == BILL_TYPE_TRADE

    @property
    def action(self) -> str:
        """add | reduce for a margin transfer (160/161); "" for anything else."""
        return SUBTYPE_ACTION.get(self.sub_type, "") if self.type == BILL_TYPE_MARGIN else ""

    @property
    def pos_side(self) -> str:
        """The side a trade bill applies to, from its subType ("" when not a trade bill)."""
        return _TRADE_SUBTYPE_POS_SIDE.get(self.sub_type, "") if self.is_trade else ""

    @property
    def side(self) -> str:
        return _TRADE_SUBTYPE_SIDE.get(self.sub_type, "") if self.is_trade else ""

    @property
    def opens(self) -> bool:
        """Open long / open short (or a net-mode buy/sell): a fill that may add contracts."""
        return self.is_trade and self.sub_type in _TRADE_OPENS


def transfer_bill(
    bill_id: str, inst_id: str, action: str, sz: Decimal, pos_bal: Decimal | None, ts: int
) -> Bill:
    """A margin-transfer bill (type 6) of ``action`` add/reduce, its ``posBalChg`` from ``sz``."""
    return Bill(
        bill_id,
        BILL_TYPE_MARGIN,
        TRANSFER_SUBTYPE[action],
        inst_id,
        sz,
        ts,
        pos_bal_chg=sz if action == "add" else -sz,
        pos_bal=pos_bal,
    )


def parse_bill(account: str, raw: Any) -> Bill:
    """Any bill; raises PayloadError on a wrong shape (absent fields read as empty)."""
    if not isinstance(raw, dict):
        raise PayloadError(f"bill: expected an object, got {type(raw).__name__}")
    return Bill(
        account=account,
        bill_id=_str(raw, "billId", required=True),
        type=_str(raw, "type"),
        sub_type=_str(raw, "subType"),
        inst_id=_str(raw, "instId"),
        inst_type=_str(raw, "instType"),
        mgn_mode=_str(raw, "mgnMode"),
        ord_id=_str(raw, "ordId"),
        cl_ord_id=_str(raw, "clOrdId"),
        tag=_str(raw, "tag"),
        trade_id=_str(raw, "tradeId"),
        sz=_dec(raw, "sz"),
        ts=_int(raw, "ts"),
    )


def parse_transfers(raw: Iterable[Any]) -> tuple[list[Bill], list[str]]:
    """The margin-transfer bills (type 6, subType 160/161) of a ``GET bills`` answer, and the
    reasons of records that could not be read. Other bills (fills, 162 auto-margin) are not
    transfers a controller makes and are skipped. Strict: a transfer without its id,
    instrument, time, a positive ``sz`` or a ``posBalChg`` is an error, not a guess."""
    bills: list[Bill] = []
    errors: list[str] = []
    for item in raw:
        if not isinstance(item, dict) or item.get("type") != BILL_TYPE_MARGIN:
            continue
        action = SUBTYPE_ACTION.get(str(item.get("subType")))
        if action is None:
            continue
        bill_id, inst_id, ts = item.get("billId"), item.get("instId"), item.get("ts")
        sz, chg = finite_decimal(item.get("sz")), finite_decimal(item.get("posBalChg"))
        if (
            not isinstance(bill_id, str)
            or not bill_id
            or not isinstance(inst_id, str)
            or not isinstance(ts, str)
            or not ts.isdigit()
            or sz is None
            or chg is None
            or sz <= 0
        ):
            errors.append(f"bill {str(bill_id)[:40]}: missing or invalid fields")
            continue
        bills.append(
            Bill(
                bill_id,
                BILL_TYPE_MARGIN,
                TRANSFER_SUBTYPE[action],
                inst_id,
                sz,
                int(ts),
                pos_bal_chg=chg,
                pos_bal=finite_decimal(item.get("posBal")),
            )
        )
    return bills, errors
