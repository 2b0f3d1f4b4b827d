"""Sans-I/O: the REST re-reads. Parsing a read, correcting the book from it (the answers of
:class:`ReadPositions` and :class:`ResolveOutcome`), what a re-read says about a call, and the
calls a crash left unanswered (resolved by a re-read before anything is sent for their
positions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from reactor.domain.book import BookChange, PositionBook
from reactor.engine.commands import Out, ReadPositions, opt_str, pos_fields
from reactor.engine.fills import MaintenanceFills
from reactor.engine.state import PendingOutcome, PositionControl
from reactor.engine.timing import Ctx
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


@dataclass(frozen=True, slots=True)
class BillVerdict:
    """What OKX's bills said about an ambiguous call (the shell reads them)."""

    applied: bool | None = None  # a matching bill: booked; None: the bills did not decide
    bill_id: str | None = None
    note: str | None = None  # why the bills could not decide (none found, unreadable)


def log_resolution(
    ctx: Ctx, key: PositionKey, control: PositionControl, verdict: BillVerdict
) -> None:
    """Say what the re-read (the book's position after it) showed about the call it was
    made for: by its bill when the shell could read one, else by the margin."""
    out, now_pos = ctx.out, ctx.book.get(key)
    bill_applied, bill_id, bills = verdict.applied, verdict.bill_id, verdict.note
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
        key = PositionKey(entry.account, entry.inst_id, entry.pos_side, "isolated")
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


@dataclass(slots=True)
class Unanswered:
    """The calls a crash left unanswered, by position: resolved from the bills like any
    ambiguous answer (the margin they were decided from is not journalled)."""

    keys: set[PositionKey] = field(default_factory=set)
    pending: dict[PositionKey, PendingOutcome] = field(default_factory=dict)

    def recover(self, entries: Sequence[JournalEntry], now: float, out: Out) -> None:
        recovered = unanswered_calls(entries, now, out)
        self.keys.update(recovered)
        self.pending.update(recovered)

    def forget_gone(self, book: PositionBook, account: str) -> None:
        """A snapshot without the position: nothing is left to resolve for it."""
        for key in [k for k in self.keys if k[0] == account and book.get(k) is None]:
            self.keys.discard(key)
            self.pending.pop(key, None)

    def claim(self, key: PositionKey, control: PositionControl) -> bool:
        """Whether the position has a call from before the restart to resolve first (its
        pending outcome moves onto the control)."""
        if key not in self.keys:
            return False
        if control.pending is None:
            control.pending = self.pending.pop(key, None)
        return True


def positions_read(
    ctx: Ctx, account: str, positions: Sequence[Position], trigger: str
) -> list[BookChange]:
    """The answer of :class:`ReadPositions`: correct the book, log each drift; the changes."""
    if not ctx.book.is_fresh(account):
        return []  # the stream broke while we read: the next snapshot decides
    drifts, changes = reconcile_book(ctx.book, account, positions, None, ctx.out)
    log = ctx.out.debug if trigger == "interval" and not drifts else ctx.out.info
    log(
        "book.reconciled",
        account=account,
        trigger=trigger,
        positions=len(ctx.book.positions(account)),
        drifts=drifts,
    )
    return changes


def resolved(
    ctx: Ctx,
    key: PositionKey,
    positions: Sequence[Position],
    unanswered: Unanswered,
    verdict: BillVerdict,
) -> tuple[list[BookChange], tuple[PositionControl, float] | None]:
    """The answer of :class:`ResolveOutcome`: a REST read of the position's instrument, and
    what the bills said. The book's changes, and the control to wake at the time returned
    (an ambiguous answer is a failure like any other: the next call waits its back-off)."""
    _, changes = reconcile_book(ctx.book, key[0], positions, key[1], ctx.out)
    control = ctx.controls.get(key)
    if control is None:
        return changes, None
    pending = control.pending
    log_resolution(ctx, key, control, verdict)
    control.pending = None
    control.reread = False
    unanswered.keys.discard(key)
    control.expected_margin = None
    control.in_flight = False
    delay = 0.0
    if pending is not None:
        delay = ctx.backoff_delay(key, control, pending.code or "unknown")
    control.cooldown_until = ctx.now + delay
    return changes, (control, ctx.now + delay)


def snapshot_done(ctx: Ctx, account: str, fills: MaintenanceFills) -> bool:
    """A full snapshot of ``account`` was applied: said at info once per (re)connect (OKX's
    regular snapshots, every ~5 s, at debug); True for that first one. Once per (re)connect,
    not on the periodic snapshots, a REST read catches what the stream may have lost while the
    account was away (and fills missed meanwhile are read back,
    :meth:`MaintenanceFills.on_connect`)."""
    state = ctx.accounts.get(account)
    first = state is None or not state.snapshot_logged
    log = ctx.out.info if first else ctx.out.debug
    log("book.snapshot", account=account, positions=len(ctx.book.positions(account)))
    if state is not None:
        state.snapshot_logged = True
        if state.reconcile_due:
            state.reconcile_due = False
            ctx.out.add(ReadPositions(account, "connect"))
            fills.on_connect(ctx, state)
    return first


def read_failed(ctx: Ctx, account: str, trigger: str, error: str) -> None:
    ctx.out.warning("reconcile.failed", account=account, trigger=trigger, error=error)


def resolve_failed(ctx: Ctx, key: PositionKey, error: str) -> None:
    ctx.out.warning(
        "reconcile.failed", account=key[0], instId=key[1], trigger="resolve", error=error
    )
    control = ctx.controls.get(key)
    if control is not None:
        control.in_flight = False
        control.failures += 1
        ctx.retry_later(key, control, "resolve")
