"""Pure helpers of the REST re-reads: parsing a read, and what a re-read says about a call."""

from __future__ import annotations

from typing import Any

from reactor.engine.state import PendingOutcome
from reactor.okx.models import PayloadError, Position, parse_position


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
