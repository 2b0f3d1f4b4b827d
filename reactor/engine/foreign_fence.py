"""Sans-I/O: the core's side of the fence against a second controller (issue: foreign
transfers). What a bills read says (``margin.foreign_transfer``), which positions it holds
(``margin.position.held_foreign``) and releases, and ending the short wait a margin drift
starts for the bills read. :class:`reactor.engine.foreign.ForeignWatch` decides when a unit is
held; this module applies that to the positions' :class:`PositionControl` records.
"""

from __future__ import annotations

from collections.abc import Sequence

from reactor.domain.book import PositionBook
from reactor.engine.bills import Bill, side_of
from reactor.engine.commands import Out
from reactor.engine.episodes import mark_held_foreign
from reactor.engine.fields import opt_str
from reactor.engine.foreign import ForeignWatch
from reactor.engine.state import PositionControl
from reactor.engine.timing import set_timer
from reactor.okx.models import Position, PositionKey

Controls = dict[PositionKey, PositionControl]


def record_foreign(
    account: str,
    foreign: Sequence[Bill],
    trigger: str,
    watch: ForeignWatch,
    book: PositionBook,
    controls: Controls,
    now: float,
    out: Out,
) -> None:
    """Say each foreign transfer; hold the instrument's positions when the watch starts a hold,
    waking them when it may end."""
    window_s = watch.window_s
    for bill in foreign:
        unit = (account, bill.inst_id)
        on_inst = [
            p for p in book.positions(account) if p.inst_id == bill.inst_id and p.is_managed_kind
        ]
        keys = [p.key for p in on_inst]
        started = watch.record(unit, now)
        out.warning(
            "margin.foreign_transfer",
            account=account,
            instId=bill.inst_id,
            posSide=side_of(bill, on_inst),
            billId=bill.bill_id,
            action=bill.action,
            amount=str(bill.sz),
            posBal=opt_str(bill.pos_bal),
            ts=bill.ts,
            recent=watch.recent(unit),
            trigger=trigger,
        )
        if not started:
            continue
        due = watch.release_due(unit)
        out.error(
            "margin.position.held_foreign",
            account=account,
            instId=bill.inst_id,
            posSides=sorted(k[2] for k in keys),
            foreign_transfers=watch.recent(unit),
            window_s=window_s,
            limit=watch.limit,
        )
        for key in keys:
            control = controls.get(key)
            if control is None:
                control = controls[key] = PositionControl()
            mark_held_foreign(control, watch.recent(unit), window_s)
            if due is not None and not control.in_flight:
                set_timer(key, control, due, out)


def held_foreign(
    pos: Position,
    control: PositionControl,
    watch: ForeignWatch,
    book: PositionBook,
    controls: Controls,
    now: float,
    out: Out,
) -> bool:
    """Whether ``pos`` stays held now; a quiet window releases its whole instrument."""
    unit = (pos.account, pos.inst_id)
    if not watch.held(unit):
        control.foreign_held = False
        return False
    if watch.try_release(unit, now):
        out.warning(
            "margin.position.released_foreign",
            account=pos.account,
            instId=pos.inst_id,
            quiet_s=watch.window_s,
            foreign_transfers=watch.count(unit),
        )
        for p in book.positions(pos.account):
            other = controls.get(p.key)
            if p.inst_id == pos.inst_id and other is not None:
                other.foreign_held = False
        return False
    mark_held_foreign(control, watch.recent(unit), watch.window_s)
    due = watch.release_due(unit)
    if due is not None and (control.due_at is None or control.due_at > due):
        set_timer(pos.key, control, due, out)
    return True


def end_bills_wait(
    account: str, book: PositionBook, controls: Controls, now: float, out: Out
) -> None:
    """The bills read after a margin drift answered (or failed): the positions act on."""
    for pos in book.positions(account):
        control = controls.get(pos.key)
        if control is not None and control.bills_wait_until > 0:
            waited_until, control.bills_wait_until = control.bills_wait_until, 0.0
            # Wake it now if it sleeps for the wait; an earlier wake-up (the debounce's)
            # stands.
            if not control.in_flight and (control.due_at is None or control.due_at >= waited_until):
                set_timer(pos.key, control, max(now, control.cooldown_until), out)
