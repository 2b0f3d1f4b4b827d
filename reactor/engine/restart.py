"""Pure: what the journal tells the core after a restart.

Intents a crash left unanswered are resolved (re-read, bills) before anything is sent for their
positions; the journal's last hour refills the runaway guard, so a crash loop cannot reset the
ceiling.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from reactor.engine.commands import Out
from reactor.engine.fields import pos_fields
from reactor.engine.guard import RunawayGuard
from reactor.engine.state import PendingOutcome
from reactor.okx.models import PositionKey

if TYPE_CHECKING:
    from reactor.store import JournalEntry


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


def seed_guard(
    guard: RunawayGuard,
    recent: Sequence[JournalEntry],
    accounts: Container[str],
    now: float,
    wall_now: float,
    out: Out,
) -> None:
    """Refill ``guard`` from the journal's recent calls of the managed ``accounts``."""
    seeded: dict[str, int] = {}
    for entry in recent:
        # Answered ok or unknown moved (or may have moved) margin; rejected ones did not.
        if entry.account not in accounts or entry.status not in ("ok", "unknown"):
            continue
        age = max(0.0, wall_now - entry.sent_ms / 1000)
        key = (entry.account, entry.inst_id, entry.pos_side, "isolated")
        guard.seed(key, now - age, Decimal(entry.amount))
        seeded[entry.account] = seeded.get(entry.account, 0) + 1
    for account in seeded:
        moved, calls = guard.moved(account, now)
        out.info(
            "margin.guard.seeded",
            account=account,
            moved_last_hour=str(moved),
            calls=calls,
            limit=str(guard.account_limit),
        )
