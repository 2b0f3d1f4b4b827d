"""Pure: OKX margin-transfer bills and which journalled call each one belongs to.

OKX books every manual margin transfer as a bill: type 6, subType 160 (add) or 161 (reduce),
``sz`` the amount, ``posBalChg`` +-amount, ``posBal`` the position's margin after, ``ts`` when it
was booked (docs/spec/okx-fidelity.md §5.1-§5.2, DOC-TA, CCXT-BILL). Bills carry no ``posSide``.
Two uses:

- an ambiguous call (timeout, reset, 50004, bare 5xx) is applied exactly when a bill matches it
  (:func:`match_ambiguous`, the recipe of docs/spec/okx-fidelity.md §5.4);
- a bill no journalled call accounts for is a transfer this reactor did not make - another
  controller, a person in the web UI (:func:`attribute`).

A bill is credited to at most one call (its ``billId`` is stored in the journal row), so an
ambiguous call is never matched to an earlier call's bill.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from reactor.okx.models import Position, finite_decimal

SUBTYPE = {"add": "160", "reduce": "161"}
ACTION = {v: k for k, v in SUBTYPE.items()}


@dataclass(frozen=True, slots=True)
class Bill:
    """One margin-transfer bill of an isolated SWAP position."""

    bill_id: str
    inst_id: str
    action: str  # add (160) | reduce (161)
    sz: Decimal
    pos_bal_chg: Decimal
    pos_bal: Decimal | None
    ts: int  # ms, OKX's clock


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A journalled margin call that may own a bill (its answer was ok, unknown or pending)."""

    journal_id: int
    inst_id: str
    action: str
    amount: Decimal
    sent_ms: int  # on OKX's clock (the journal's send time corrected by the measured offset)
    done_ms: int | None  # when its answer was journalled (None: still pending)
    bill_id: str | None = None  # the bill already credited to it


def parse_bills(raw: Iterable[Any]) -> tuple[list[Bill], list[str]]:
    """The margin-transfer bills (type 6, subType 160/161) of a ``GET bills`` answer, and the
    reasons of records that could not be read. Other bills (fills, 162 auto-margin) are not
    transfers a controller makes and are skipped."""
    bills: list[Bill] = []
    errors: list[str] = []
    for item in raw:
        if not isinstance(item, dict) or item.get("type") != "6":
            continue
        action = ACTION.get(str(item.get("subType")))
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
            Bill(bill_id, inst_id, action, sz, chg, finite_decimal(item.get("posBal")), int(ts))
        )
    return bills, errors


def _same_transfer(bill: Bill, inst_id: str, action: str, amount: Decimal) -> bool:
    signed = amount if action == "add" else -amount
    return (
        bill.inst_id == inst_id
        and bill.action == action
        and bill.sz == amount
        and bill.pos_bal_chg == signed
    )


def match_ambiguous(
    bills: Sequence[Bill],
    call: CallRecord,
    margin_before: Decimal | None,
    credited: set[str],
    *,
    skew_ms: int,
) -> Bill | None:
    """The bill showing that ``call`` was applied, or None (not booked, or not yet).

    Instrument, subType, ``sz`` == amount, ``posBalChg`` == +-amount, ``ts`` no earlier than the
    send time less ``skew_ms`` (the two clocks), a ``billId`` not credited to another call, and,
    when the margin the call was decided from is known, ``posBal`` == that margin +- amount (it
    tells a long from a short on one instrument). The earliest such bill wins.
    """
    expected_after = None
    if margin_before is not None:
        expected_after = margin_before + (call.amount if call.action == "add" else -call.amount)
    for bill in sorted(bills, key=lambda b: (b.ts, b.bill_id)):
        if bill.bill_id in credited or bill.ts < call.sent_ms - skew_ms:
            continue
        if not _same_transfer(bill, call.inst_id, call.action, call.amount):
            continue
        if expected_after is not None and bill.pos_bal != expected_after:
            continue
        return bill
    return None


def attribute(
    bills: Sequence[Bill],
    calls: Sequence[CallRecord],
    *,
    skew_ms: int,
    late_ms: int,
) -> tuple[list[tuple[int, str]], list[Bill]]:
    """Which call each bill belongs to: (credits to journal, foreign bills).

    A bill already credited to a call is that call's. Every other bill goes to the earliest
    uncredited call of the same transfer (instrument, action, amount) sent at most ``skew_ms``
    after it was booked and answered at most ``late_ms`` before (a pending call: any time).
    What is left is foreign: no call of this reactor accounts for it.
    """
    own = {c.bill_id for c in calls if c.bill_id is not None}
    open_calls = sorted((c for c in calls if c.bill_id is None), key=lambda c: c.sent_ms)
    credits: list[tuple[int, str]] = []
    foreign: list[Bill] = []
    for bill in sorted(bills, key=lambda b: (b.ts, b.bill_id)):
        if bill.bill_id in own:
            continue
        owner = None
        for call in open_calls:
            if not _same_transfer(bill, call.inst_id, call.action, call.amount):
                continue
            if bill.ts < call.sent_ms - skew_ms:
                continue
            if call.done_ms is not None and bill.ts > call.done_ms + late_ms:
                continue
            owner = call
            break
        if owner is None:
            foreign.append(bill)
        else:
            open_calls.remove(owner)
            credits.append((owner.journal_id, bill.bill_id))
    return credits, foreign


def side_of(bill: Bill, positions: Sequence[Position]) -> str:
    """The position a bill moved, among the account's ``positions`` on its instrument: bills
    carry no posSide; ``posBal`` (the margin after) names it when it equals one position's
    margin, or the only position does. "" when it cannot tell."""
    if len(positions) == 1:
        return positions[0].key[2]
    for pos in positions:
        if bill.pos_bal is not None and pos.margin == bill.pos_bal:
            return pos.key[2]
    return ""
