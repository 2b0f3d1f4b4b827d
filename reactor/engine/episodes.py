"""Pure: a position's (and the main account's) once-per-episode states and their events.

Blocked, held until the position changes, the main account below its expected positions: each
is entered once (one event, not one per push) and left once. (The runaway guard's and the
foreign transfers' holds live with their features, :mod:`.guard` and :mod:`.foreign`.) The
functions take the position's :class:`PositionControl` and the :class:`Out` of the current
input and return nothing to the coordinator but what they say.
"""

from __future__ import annotations

from reactor.domain.policy import Action, ActionKind
from reactor.engine.commands import Out, opt_str, pos_fields
from reactor.engine.state import PositionControl, Role, Status
from reactor.engine.timing import Ctx
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


def settle_decision(pos: Position, control: PositionControl, action: Action, out: Out) -> bool:
    """The policy's decision as the position's status (and its blocked episode); True when a
    call is due (an add or a reduce)."""
    track_blocked(pos, control, action, out)
    if action.kind is ActionKind.NONE:
        control.status, control.reason = Status.OK, action.reason
        control.step_cap = None
        return False
    if action.kind is ActionKind.BLOCKED:
        control.status, control.reason = Status.BLOCKED, action.reason
        return False
    return True


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


def watch_main_positions(ctx: Ctx, account: str, was_below: bool) -> bool:
    """Warn once when the main account holds fewer positions than expected; returns whether
    it is below now (unchanged when the book cannot tell)."""
    book, out, expected = ctx.book, ctx.out, ctx.settings.main_expected_positions
    state = ctx.accounts.get(account)
    if state is None or state.role is not Role.MAIN or not book.is_fresh(account):
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
