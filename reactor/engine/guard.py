"""The runaway guard: hourly ceilings on the margin moved, per account and per position.

A position over its own ceiling is held alone (one absurd correction or one bad value must not
stop the rest of the account); the account's ceiling stops the whole account.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from reactor.okx.models import PositionKey

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
            return GuardCheck(Verdict.ALLOW, entry, account_total, position_total, len(mine))
        return GuardCheck(verdict, None, account_total, position_total, len(mine))

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
