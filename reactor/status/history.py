"""Per-position history for the status page, from the journal of margin calls (pure).

The journal records every call (action, amount, outcome, time) but not the margin itself, so
the margin line is rebuilt backwards from the current margin: before an accepted call the margin
was ``after - amount`` for an add and ``after + amount`` for a reduce. Fills and fees change
isolated margin too and are not in the journal, so the line is the margin as the reactor moved
it, exact at the present and at each call, not a tick chart. Rows are matched by account,
instrument and side: calls made for an earlier position on the same key (closed and reopened
within the window) are drawn as its past.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Protocol

Key = tuple[str, str, str]  # account, instId, posSide


class JournalRow(Protocol):
    """What :class:`reactor.store.JournalEntry` provides (read-only)."""

    @property
    def account(self) -> str: ...
    @property
    def inst_id(self) -> str: ...
    @property
    def pos_side(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def amount(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def sent_ms(self) -> int: ...
    @property
    def done_ms(self) -> int | None: ...


def last_calls(rows: Iterable[JournalRow]) -> dict[Key, JournalRow]:
    """The latest call per position (by time sent; ties: the later row)."""
    out: dict[Key, JournalRow] = {}
    for r in rows:
        key = (r.account, r.inst_id, r.pos_side)
        prev = out.get(key)
        if prev is None or r.sent_ms >= prev.sent_ms:
            out[key] = r
    return out


def _amount(row: JournalRow) -> Decimal | None:
    try:
        amt = Decimal(row.amount)
    except (InvalidOperation, ValueError):
        return None
    return amt if amt.is_finite() and amt >= 0 else None


def margin_history(
    rows: Iterable[JournalRow],
    current: Mapping[Key, Decimal | None],
    *,
    now_ms: int,
    window_ms: int,
) -> dict[Key, tuple[tuple[int, Decimal], ...]]:
    """Margin steps per position over ``[now_ms - window_ms, now_ms]``, oldest first.

    One point at the window's start, one after each accepted call (``ok``) inside it, one at
    ``now_ms`` with the current margin. Positions without a current margin get no history.
    """
    start = now_ms - window_ms
    calls: dict[Key, list[JournalRow]] = {}
    for r in rows:
        if r.status == "ok" and r.sent_ms >= start:
            calls.setdefault((r.account, r.inst_id, r.pos_side), []).append(r)
    out: dict[Key, tuple[tuple[int, Decimal], ...]] = {}
    for key, margin in current.items():
        if margin is None:
            continue
        points = [(now_ms, margin)]
        after = margin
        for r in sorted(calls.get(key, ()), key=lambda r: r.sent_ms, reverse=True):
            amt = _amount(r)
            if amt is None:
                break  # an unreadable amount: stop rather than draw a wrong line
            at = min(r.done_ms or r.sent_ms, now_ms)
            points.append((at, after))
            after = after - amt if r.action == "add" else after + amt
            points.append((at, after))  # the step: before the call, at the same instant
        points.append((start, after))
        out[key] = tuple(reversed(_dedupe(points)))
    return out


def _dedupe(points: list[tuple[int, Decimal]]) -> list[tuple[int, Decimal]]:
    out: list[tuple[int, Decimal]] = []
    for p in points:
        if not out or out[-1] != p:
            out.append(p)
    return out
