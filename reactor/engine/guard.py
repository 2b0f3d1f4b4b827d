"""The runaway guard: hourly ceilings on the margin moved, per account and per position.

A position over its own ceiling is held alone (one absurd correction or one bad value must not
stop the rest of the account); the account's ceiling stops the whole account. After a restart
the journal's last hour refills it (:func:`seed_guard`), so a crash loop cannot reset the
ceiling. Sans-I/O: the verdict's events go on the :class:`Out` of the current input.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from reactor.domain.policy import Action
from reactor.engine.commands import Out, opt_str, pos_fields
from reactor.engine.state import PositionControl, Status
from reactor.engine.timing import Ctx
from reactor.okx.models import Position, PositionKey

if TYPE_CHECKING:
    from reactor.store import JournalEntry

HOUR_S = 3600.0

Entry = tuple[float, Decimal, PositionKey]  # (engine time, amount, position)


class Verdict(StrEnum):
    ALLOW = "allow"
    POSITION_LIMIT = "position_limit"
    ACCOUNT_LIMIT = "account_limit"


@dataclass(frozen=True, slots=True)
class GuardCheck:
    verdict: Verdict
    entry: Entry | None  # the reservation (ALLOW only): refund it if the call moved nothing
    account_moved: Decimal  # in the last hour, before this amount
    position_moved: Decimal
    position_calls: int
    position_limit: Decimal


class RunawayGuard:
    def __init__(self, account_limit: Decimal, position_limit: Decimal) -> None:
        self.account_limit = account_limit
        self.position_limit = position_limit
        self._moved: dict[str, deque[Entry]] = {}

    def _window(self, account: str, now: float) -> deque[Entry]:
        moved = self._moved.setdefault(account, deque())
        while moved and now - moved[0][0] > HOUR_S:
            moved.popleft()
        return moved

    def check(self, key: PositionKey, amount: Decimal, now: float) -> GuardCheck:
        """Reserve ``amount`` for ``key`` if both ceilings allow it."""
        moved = self._window(key[0], now)
        account_total = sum((a for _, a, _ in moved), Decimal(0))
        mine = [a for _, a, k in moved if k == key]
        position_total = sum(mine, Decimal(0))
        if position_total + amount > self.position_limit:
            verdict = Verdict.POSITION_LIMIT
        elif account_total + amount > self.account_limit:
            verdict = Verdict.ACCOUNT_LIMIT
        else:
            entry = (now, amount, key)
            moved.append(entry)
            return GuardCheck(
                Verdict.ALLOW, entry, account_total, position_total, len(mine), self.position_limit
            )
        return GuardCheck(
            verdict, None, account_total, position_total, len(mine), self.position_limit
        )

    def refund(self, entry: Entry) -> None:
        """The call certainly moved nothing (rejected, never sent)."""
        moved = self._moved.get(entry[2][0])
        if moved is not None and entry in moved:
            moved.remove(entry)

    def reserve(self, key: PositionKey, amount: Decimal, at: float) -> Entry:
        """Reserve ``amount`` without a check (a smaller amount replacing a checked one)."""
        entry = (at, amount, key)
        self._moved.setdefault(key[0], deque()).append(entry)
        return entry

    def seed(self, key: PositionKey, at: float, amount: Decimal) -> None:
        """Refill from the journal at start-up (``at`` may lie in the past)."""
        moved = self._moved.setdefault(key[0], deque())
        moved.append((at, amount, key))

    def moved(self, account: str, now: float) -> tuple[Decimal, int]:
        window = self._window(account, now)
        return sum((a for _, a, _ in window), Decimal(0)), len(window)


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
        key = PositionKey(entry.account, entry.inst_id, entry.pos_side, "isolated")
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


def hold_for_position_guard(
    pos: Position, control: PositionControl, action: Action, check: GuardCheck, out: Out
) -> None:
    """Over the position's own ceiling: hold this position only, say what it already moved."""
    moved, calls, limit = check.position_moved, check.position_calls, check.position_limit
    control.status = Status.ERROR
    control.reason = f"runaway guard: {moved} of {limit} USDT moved this hour, next {action.amount}"
    if control.guard_held:
        return  # once per episode
    control.guard_held = True
    out.error(
        "margin.guard.position_held",
        **pos_fields(pos.key),
        action=action.kind.value,
        amount=str(action.amount),
        margin=opt_str(pos.margin),
        moved_last_hour=str(moved),
        calls_last_hour=calls,
        limit=str(limit),
    )


def guard_allows(
    ctx: Ctx, check: GuardCheck, pos: Position, control: PositionControl, action: Action
) -> bool:
    """Apply the runaway guard's verdict: the position's ceiling holds it alone, the account's
    stops the account; True when the call may go on (ending a position-guard episode)."""
    key, out = pos.key, ctx.out
    if check.verdict is Verdict.POSITION_LIMIT:
        hold_for_position_guard(pos, control, action, check, out)
        return False
    if check.verdict is Verdict.ACCOUNT_LIMIT:
        account = ctx.accounts[key[0]]
        account.guard_tripped = True
        control.status, control.reason = Status.ERROR, "runaway guard tripped"
        out.error(
            "margin.guard.tripped",
            **pos_fields(key),
            moved_last_hour=str(check.account_moved),
            position_moved_last_hour=str(check.position_moved),
            amount=str(action.amount),
            limit=str(ctx.settings.max_moved_per_hour),
        )
        return False
    control.guard_held = False
    return True
