"""Pure: a position's (and the main account's) once-per-episode states and their events.

Blocked, held until a change, held by the position's runaway ceiling, held for foreign
transfers: each is entered once (one event, not one per push) and left once. The functions
take the position's :class:`PositionControl` and the :class:`Out` of the current input and
return nothing to the coordinator but what they say.
"""

from __future__ import annotations

from decimal import Decimal

from reactor.domain.book import PositionBook
from reactor.domain.policy import Action, ActionKind
from reactor.engine.commands import Out
from reactor.engine.fields import opt_str, pos_fields
from reactor.engine.guard import GuardCheck, Verdict
from reactor.engine.state import AccountState, EngineSettings, PositionControl
from reactor.okx.models import Position, PositionKey


def enter_blocked(
    pos: Position, control: PositionControl, action: Action, reason: str, out: Out
) -> None:
    """``margin.target.blocked`` once per episode, not on every push."""
    if control.blocked:
        return
    control.blocked = True
    out.warning(
        "margin.target.blocked",
        **pos_fields(pos.key),
        margin=str(pos.margin),
        target=str(action.target),
        floor=opt_str(action.floor),
        upl=opt_str(pos.upl),
        reason=reason,
    )


def track_blocked(pos: Position, control: PositionControl, action: Action, out: Out) -> None:
    """``margin.target.blocked`` once per episode, ``margin.target.unblocked`` when it ends."""
    if action.kind is not ActionKind.REDUCE:
        control.exchange_limited = False
    blocked = (
        action.kind is ActionKind.BLOCKED
        or action.limited_by_floor
        or control.exchange_limited  # until a check lets a reduce through
    )
    if blocked:
        enter_blocked(pos, control, action, action.reason, out)
    elif control.blocked:
        control.blocked = False
        out.info(
            "margin.target.unblocked",
            **pos_fields(pos.key),
            margin=str(pos.margin),
            target=str(action.target),
        )


def hold_until_change(
    key: PositionKey, control: PositionControl, code: str, size_only: bool, out: Out
) -> None:
    """An answer the same call would get again: wait until the position (or its size) changes."""
    control.hold_until_change = code
    control.hold_size_only = size_only
    out.warning(
        "margin.adjust.held",
        **pos_fields(key),
        code=code,
        until="size or margin change" if size_only else "position change",
    )


def hold_for_position_guard(
    pos: Position,
    control: PositionControl,
    action: Action,
    moved: Decimal,
    calls: int,
    limit: Decimal,
    out: Out,
) -> None:
    """Over the position's own ceiling: hold this position only, say what it already moved."""
    control.status = "error"
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
    check: GuardCheck,
    pos: Position,
    control: PositionControl,
    account: AccountState,
    action: Action,
    settings: EngineSettings,
    out: Out,
) -> bool:
    """Apply the runaway guard's verdict: the position's ceiling holds it alone, the account's
    stops the account; True when the call may go on (ending a position-guard episode)."""
    key = pos.key
    if check.verdict is Verdict.POSITION_LIMIT:
        hold_for_position_guard(
            pos,
            control,
            action,
            check.position_moved,
            check.position_calls,
            settings.position_limit,
            out,
        )
        return False
    if check.verdict is Verdict.ACCOUNT_LIMIT:
        account.guard_tripped = True
        control.status, control.reason = "error", "runaway guard tripped"
        out.error(
            "margin.guard.tripped",
            **pos_fields(key),
            moved_last_hour=str(check.account_moved),
            position_moved_last_hour=str(check.position_moved),
            amount=str(action.amount),
            limit=str(settings.max_moved_per_hour),
        )
        return False
    control.guard_held = False
    return True


def mark_held_foreign(control: PositionControl, recent: int, window_s: float) -> None:
    """Held against a second controller (:mod:`reactor.engine.foreign` decides when)."""
    control.foreign_held = True
    control.status = "held"
    control.reason = (
        f"foreign transfers: {recent} margin transfer(s) this reactor did "
        f"not make within {window_s:g} s: another "
        "controller? held until a quiet window"
    )


def watch_main_positions(
    account: str,
    state: AccountState | None,
    book: PositionBook,
    expected: int,
    was_below: bool,
    out: Out,
) -> bool:
    """Warn once when the main account holds fewer positions than expected; returns whether
    it is below now (unchanged when the book cannot tell)."""
    if state is None or state.role != "main" or not book.is_fresh(account):
        return was_below
    positions = book.positions(account)
    below = len(positions) < expected
    if below and not was_below:
        long_ = sum(
            1 for p in positions if p.pos_side == "long" or (p.pos_side == "net" and p.pos > 0)
        )
        out.warning(
            "main.positions.below_expected",
            account=account,
            positions=len(positions),
            long=long_,
            short=len(positions) - long_,
            expected=expected,
        )
    elif was_below and not below:
        out.info("main.positions.restored", account=account, positions=len(positions))
    return below
