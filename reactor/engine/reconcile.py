"""Pure helpers of the REST re-reads: parsing a read, correcting the book from it, what a
re-read says about a call, and the calls a crash left unanswered (resolved by a re-read before
anything is sent for their positions)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from reactor.domain.book import BookChange, PositionBook
from reactor.engine.commands import Out, opt_str, pos_fields
from reactor.engine.state import PendingOutcome, PositionControl
from reactor.okx.models import PayloadError, Position, PositionKey, parse_position

if TYPE_CHECKING:
    from reactor.store import JournalEntry


def parse_rest_positions(
    account: str, raw: list[dict[str, Any]]
) -> tuple[list[Position], list[str]]:
    """Open positions of a REST read, and the reasons of the items that could not be parsed."""
    positions: list[Position] = []
    errors: list[str] = []
    for item in raw:
        try:
            p = parse_position(account, item)
        except PayloadError as exc:
            errors.append(str(exc))
            continue
        if p.is_open:
            positions.append(p)
    return positions, errors


def outcome_by_margin(pending: PendingOutcome, now: Position | None) -> str:
    """applied | not_applied | unclear | position_gone, from the margin before and now.

    The fallback when the exchange's bills cannot decide (or cannot be read yet).
    """
    if now is None:
        return "position_gone"
    if pending.margin_before is None or now.margin is None:
        return "unclear"
    delta = now.margin - pending.margin_before
    expected = pending.amount if pending.action == "add" else -pending.amount
    if delta == expected:
        return "applied"
    if delta == 0:
        return "not_applied"
    return "unclear"


def reconcile_book(
    book: PositionBook,
    account: str,
    positions: Sequence[Position],
    inst_id: str | None,
    out: Out,
) -> tuple[int, list[BookChange]]:
    """Correct the book from a REST read, logging each ``book.drift``."""
    drifts, changes = book.reconcile(account, positions, inst_id=inst_id)
    for d in drifts:
        out.warning(
            "book.drift",
            **pos_fields(d.key),
            field=d.field,
            book=d.book,
            exchange=d.exchange,
        )
    return len(drifts), changes


def log_resolution(
    key: PositionKey,
    control: PositionControl,
    now_pos: Position | None,
    bill_applied: bool | None,
    bill_id: str | None,
    bills: str | None,
    out: Out,
) -> None:
    """Say what the re-read (``now_pos``: the position after it) showed about the call it was
    made for: by its bill when the shell could read one, else by the margin."""
    fields = pos_fields(key)
    margin_now = None if now_pos is None else now_pos.margin
    pending = control.pending
    if pending is None:
        if control.expected_margin is not None:
            out.info(
                "margin.adjust.unconfirmed",
                **fields,
                expected=str(control.expected_margin),
                margin=opt_str(margin_now),
            )
        else:
            out.info(
                "margin.adjust.resolved", **fields, outcome="reread", margin=opt_str(margin_now)
            )
        return
    if bill_applied is not None:
        outcome, by = ("applied" if bill_applied else "not_applied"), "bill"
    else:
        outcome, by = outcome_by_margin(pending, now_pos), "margin"
    out.warning(
        "margin.adjust.resolved",
        **fields,
        outcome=outcome,
        resolved_by=by,
        action=pending.action,
        amount=str(pending.amount),
        margin_before=opt_str(pending.margin_before),
        margin=opt_str(margin_now),
        journal_id=pending.journal_id,
        **({"bill_id": bill_id} if bill_id is not None else {}),
        **({"bills": bills} if bills is not None else {}),
    )


def unanswered_calls(
    unanswered: Sequence[JournalEntry], now: float, out: Out
) -> dict[PositionKey, PendingOutcome]:
    """The calls to resolve, by position (the margin they were decided from is not
    journalled), each said as ``margin.adjust.unknown``."""
    pending: dict[PositionKey, PendingOutcome] = {}
    for entry in unanswered:
        key = (entry.account, entry.inst_id, entry.pos_side, "isolated")
        pending[key] = PendingOutcome(
            entry.id, entry.action, Decimal(entry.amount), None, now, "restart"
        )
        out.warning(
            "margin.adjust.unknown",
            **pos_fields(key),
            action=entry.action,
            amount=entry.amount,
            journal_id=entry.id,
            recovered=True,
        )
    return pending
