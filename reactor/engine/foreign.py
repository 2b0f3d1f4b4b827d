"""Sans-I/O: what OKX's margin-transfer bills say, and holding a position someone else keeps
moving (the second fence against a second controller; the first is the state-dir lock).

Bills (:class:`reactor.okx.bills.Bill`, docs/spec/okx-fidelity.md §5.1-§5.2) are matched to the
journalled calls: an ambiguous call (timeout, reset, 50004, bare 5xx) is applied exactly when a
bill matches it (:func:`match_ambiguous`, the recipe of docs/spec/okx-fidelity.md §5.4); a bill no
journalled call accounts for is a transfer this reactor did not make - another controller, a
person in the web UI (:func:`attribute`). A bill is credited to at most one call (its ``billId``
is stored in the journal row), so an ambiguous call is never matched to an earlier call's bill.
Which bills were read and judged already is :class:`BillWindow` (the shell only does the reads
and writes).

Two reactors with different state dirs on one account fight: each undoes the other's transfer.
Fighting back is the wrong answer, so ``limit`` foreign transfers on an instrument of an account
within ``window_s`` put its positions on hold. Bills carry no ``posSide`` (docs/spec/okx-fidelity.md
§5.1), so the unit is (account, instId).

The hold ends by itself once ``window_s`` passes without a foreign transfer (the other
controller was stopped, or a person finished by hand): an operator is paged by the hold event
but does not have to come back to release it, and a restart releases it too. While the other
controller runs, it ends nothing: after a release the position is on probation for another
window, and one foreign transfer in it holds the position again at once, so a tug of war
costs at most one transfer per side per window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from reactor.engine.commands import opt_str
from reactor.engine.state import PositionControl, Status
from reactor.engine.timing import Ctx, set_timer
from reactor.okx.bills import Bill, transfer_bill
from reactor.okx.models import Position, PositionKey

if TYPE_CHECKING:
    from reactor.store import JournalEntry

Unit = tuple[str, str]  # (account, instId)


@dataclass(slots=True)
class _Watch:
    seen: deque[float] = field(default_factory=deque)  # arrival times within the window
    held_since: float | None = None
    last_foreign: float = -1e18
    probation_until: float = -1e18
    total: int = 0


class ForeignWatch:
    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = max(1, limit)
        self.window_s = window_s
        self._units: dict[Unit, _Watch] = {}
        # Margin drifts whose bills were not read yet, per unit: each may be a foreign
        # transfer the watch has not counted.
        self._unread: dict[Unit, int] = {}

    def record(self, unit: Unit, now: float) -> bool:
        """A foreign transfer arrived; True when it starts a hold."""
        w = self._units.setdefault(unit, _Watch())
        w.total += 1
        w.last_foreign = now
        w.seen.append(now)
        while w.seen and now - w.seen[0] > self.window_s:
            w.seen.popleft()
        if w.held_since is not None:
            return False
        if len(w.seen) >= self.limit or now < w.probation_until:
            w.held_since = now
            return True
        return False

    def would_hold(self, unit: Unit, now: float) -> bool:
        """Whether one more foreign transfer on ``unit`` now would hold it: it is held, on
        probation, or already has ``limit - 1`` within the window, counting the drifts whose
        bills are still unread as foreign."""
        w = self._units.get(unit)
        unread = self._unread.get(unit, 0)
        if w is None:
            return unread + 1 >= self.limit
        if w.held_since is not None or now < w.probation_until:
            return True
        recent = sum(1 for t in w.seen if now - t <= self.window_s)
        return recent + unread + 1 >= self.limit

    def drifted(self, unit: Unit) -> None:
        """A margin drift on ``unit`` whose bills are not read yet."""
        self._unread[unit] = self._unread.get(unit, 0) + 1

    def bills_answered(self, account: str) -> None:
        """A bills read of ``account`` answered (or failed): its drifts are judged."""
        for unit in [u for u in self._unread if u[0] == account]:
            del self._unread[unit]

    def held(self, unit: Unit) -> bool:
        w = self._units.get(unit)
        return w is not None and w.held_since is not None

    def release_due(self, unit: Unit) -> float | None:
        """When the hold ends if nothing foreign comes (None: not held)."""
        w = self._units.get(unit)
        if w is None or w.held_since is None:
            return None
        return w.last_foreign + self.window_s

    def try_release(self, unit: Unit, now: float) -> bool:
        """End the hold when the window passed quietly; True when it ended now."""
        due = self.release_due(unit)
        if due is None or now < due:
            return False
        w = self._units[unit]
        w.held_since = None
        w.seen.clear()
        w.probation_until = now + self.window_s
        return True

    def count(self, unit: Unit) -> int:
        """Foreign transfers seen on the unit since start-up."""
        w = self._units.get(unit)
        return 0 if w is None else w.total

    def recent(self, unit: Unit) -> int:
        w = self._units.get(unit)
        return 0 if w is None else len(w.seen)

    def held_units(self) -> list[Unit]:
        return [u for u, w in self._units.items() if w.held_since is not None]


# -- which journalled call a bill belongs to ---------------------------------------------


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A journalled margin call that may own a bill (its answer was ok, unknown or pending)."""

    journal_id: int
    inst_id: str
    action: str
    amount: Decimal
    sent_ms: int  # on OKX's clock (the journal's send time corrected by the measured offset)
    done_ms: int | None  # when its answer was journalled (None: still pending)
    bill_id: str | None = None  # the bill already credited to it


def _same_transfer(bill: Bill, inst_id: str, action: str, amount: Decimal) -> bool:
    signed = amount if action == "add" else -amount
    return (
        bill.inst_id == inst_id
        and bill.action == action
        and bill.sz == amount
        and bill.pos_bal_chg == signed
    )


def match_ambiguous(
    bills: Sequence[Bill],
    call: CallRecord,
    margin_before: Decimal | None,
    credited: set[str],
    *,
    skew_ms: int,
) -> Bill | None:
    """The bill showing that ``call`` was applied, or None (not booked, or not yet).

    Instrument, subType, ``sz`` == amount, ``posBalChg`` == +-amount, ``ts`` no earlier than the
    send time less ``skew_ms`` (the two clocks), a ``billId`` not credited to another call, and,
    when the margin the call was decided from is known, ``posBal`` == that margin +- amount (it
    tells a long from a short on one instrument). The earliest such bill wins.
    """
    expected_after = None
    if margin_before is not None:
        expected_after = margin_before + (call.amount if call.action == "add" else -call.amount)
    for bill in sorted(bills, key=lambda b: (b.ts, b.bill_id)):
        if bill.bill_id in credited or bill.ts < call.sent_ms - skew_ms:
            continue
        if not _same_transfer(bill, call.inst_id, call.action, call.amount):
            continue
        if expected_after is not None and bill.pos_bal != expected_after:
            continue
        return bill
    return None


def attribute(
    bills: Sequence[Bill],
    calls: Sequence[CallRecord],
    *,
    skew_ms: int,
    late_ms: int,
) -> tuple[list[tuple[int, str]], list[Bill]]:
    """Which call each bill belongs to: (credits to journal, foreign bills).

    A bill already credited to a call is that call's. Every other bill goes to the earliest
    uncredited call of the same transfer (instrument, action, amount) sent at most ``skew_ms``
    after it was booked and answered at most ``late_ms`` before (a pending call: any time).
    What is left is foreign: no call of this reactor accounts for it.
    """
    own = {c.bill_id for c in calls if c.bill_id is not None}
    open_calls = sorted((c for c in calls if c.bill_id is None), key=lambda c: c.sent_ms)
    credits: list[tuple[int, str]] = []
    foreign: list[Bill] = []
    for bill in sorted(bills, key=lambda b: (b.ts, b.bill_id)):
        if bill.bill_id in own:
            continue
        owner = None
        for call in open_calls:
            if not _same_transfer(bill, call.inst_id, call.action, call.amount):
                continue
            if bill.ts < call.sent_ms - skew_ms:
                continue
            if call.done_ms is not None and bill.ts > call.done_ms + late_ms:
                continue
            owner = call
            break
        if owner is None:
            foreign.append(bill)
        else:
            open_calls.remove(owner)
            credits.append((owner.journal_id, bill.bill_id))
    return credits, foreign


def side_of(bill: Bill, positions: Sequence[Position]) -> str:
    """The position a bill moved, among the account's ``positions`` on its instrument: bills
    carry no posSide; ``posBal`` (the margin after) names it when it equals one position's
    margin, or the only position does. "" when it cannot tell."""
    if len(positions) == 1:
        return positions[0].key[2]
    for pos in positions:
        if bill.pos_bal is not None and pos.margin == bill.pos_bal:
            return pos.key[2]
    return ""


# -- the bills read: a cursor per account, attribution to the journal ----------------------

# Journal rows that may own a bill: answered ok, ambiguous, or not answered yet.
MAY_HAVE_MOVED = frozenset({"ok", "unknown", "pending"})
BILL_PAGES_MAX = 5  # 500 margin transfers per read; older ones wait for the next read
# Attributing bills to our calls allows OKX's own timestamp tolerance (a signed request more
# than 30 s off is refused, 50102), so a local clock off by seconds never makes our own
# transfers look foreign.
ATTRIBUTION_SKEW_MS = 30_000
HOUR_MS = 3_600_000


def okx_sent_ms(entry: JournalEntry, offset_ms: int) -> int:
    """When ``entry`` was sent, on OKX's clock: the time written with it (the offset in force
    then, the one its signed request carried), else today's offset (a row written before
    the journal kept it)."""
    return entry.sent_ms + offset_ms if entry.sent_okx_ms is None else entry.sent_okx_ms


def journal_floor_ms(okx_ms: int, offset_ms: int) -> int:
    """The local time from which journal rows may have been sent within the hour before
    ``okx_ms`` (OKX's clock): converted with today's offset or with none, so a row written
    before the local clock stepped (with the offset in force then) is still among them."""
    return min(okx_ms - offset_ms, okx_ms) - HOUR_MS


def call_record(entry: JournalEntry, offset_ms: int) -> CallRecord:
    """A journal row as a call that may own a bill, its times on OKX's clock. The answer
    time is the send time plus the local time between the two (never negative: a clock
    stepped back between them)."""
    sent = okx_sent_ms(entry, offset_ms)
    done = None if entry.done_ms is None else sent + max(0, entry.done_ms - entry.sent_ms)
    return CallRecord(
        entry.id,
        entry.inst_id,
        entry.action,
        Decimal(entry.amount),
        sent,
        done,
        entry.bill_id,
    )


def credited_bill(entry: JournalEntry) -> Bill:
    """The bill a journal row was already credited with (found by an earlier read)."""
    assert entry.bill_id is not None
    amount = Decimal(entry.amount)
    ts = entry.sent_ms if entry.sent_okx_ms is None else entry.sent_okx_ms
    return transfer_bill(entry.bill_id, entry.inst_id, entry.action, amount, None, ts)


def bill_of_call(
    bills: Sequence[Bill],
    entry: JournalEntry,
    recent: Sequence[JournalEntry],
    offset_ms: int,
    margin_before: Decimal | None,
    skew_ms: int,
) -> Bill | None:
    """The bill of the ambiguous call journalled as ``entry``, among ``bills`` read since it was
    sent. Earlier calls of its position (in ``recent``, the journal's last hour) take their own
    bills first, so an earlier call's transfer of the same amount is never taken for it."""
    credited = {e.bill_id for e in recent if e.bill_id is not None}
    earlier = [
        call_record(e, offset_ms)
        for e in recent
        if e.id < entry.id
        and e.account == entry.account
        and e.inst_id == entry.inst_id
        and e.status in MAY_HAVE_MOVED
        and e.bill_id is None
    ]
    credits, _ = attribute(bills, earlier, skew_ms=skew_ms, late_ms=skew_ms)
    credited |= {bill_id for _, bill_id in credits}
    me = call_record(entry, offset_ms)
    return match_ambiguous(bills, me, margin_before, credited, skew_ms=skew_ms)


@dataclass(slots=True)
class BillsJudged:
    """What one read of an account's bills says: bills to credit to journal rows, and the
    foreign ones not reported before."""

    credits: list[tuple[int, str]]
    foreign: list[Bill]


class BillWindow:
    """Per account: from when (OKX ms) the next bills read starts, the bills already judged (so
    a transfer is reported once), and one read at a time (a request during a read runs once
    more after it). Plain state; the shell does the reads and the journal writes."""

    def __init__(self, started_ms: int, skew_ms: int) -> None:
        self._started_ms = started_ms
        self.skew_ms = max(skew_ms, ATTRIBUTION_SKEW_MS)
        self._since: dict[str, int] = {}
        self._seen: dict[str, dict[str, int]] = {}
        self._busy: set[str] = set()
        self._again: dict[str, str] = {}

    def begin(self, account: str, trigger: str) -> bool:
        """True when a read of ``account`` starts now; False: one runs, it reads again after."""
        if account in self._busy:
            self._again[account] = trigger
            return False
        self._busy.add(account)
        return True

    def again(self, account: str) -> str | None:
        """The trigger of a read asked for meanwhile (None: the account's read ends)."""
        trigger = self._again.pop(account, None)
        if trigger is None:
            self._busy.discard(account)
        return trigger

    def fold(self, account: str) -> None:
        """A read of ``account`` is about to fetch: the requests made before it are covered."""
        self._again.pop(account, None)

    def end(self, account: str) -> None:
        """The read failed with a bug: the next request starts a new one."""
        self._busy.discard(account)

    def since(self, account: str, offset_ms: int) -> int:
        """Bills from this time on (OKX ms) are read: the newest judged, or start-up."""
        return self._since.get(account, self._started_ms + offset_ms)

    def journal_since(self, account: str, offset_ms: int) -> int:
        """The journal's rows from this time on (local ms) may own the bills read: an hour
        before the cursor, converted with today's offset or with none (a row written before
        the local clock stepped was written with the offset in force then)."""
        return journal_floor_ms(self.since(account, offset_ms), offset_ms)

    def judge(
        self,
        account: str,
        bills: Sequence[Bill],
        entries: Sequence[JournalEntry],
        offset_ms: int,
    ) -> BillsJudged:
        """Attribute the bills read to the journal's calls; move the cursor on."""
        skew = self.skew_ms
        since = self.since(account, offset_ms)
        seen = self._seen.setdefault(account, {})
        calls = [
            call_record(e, offset_ms)
            for e in entries
            if e.account == account and e.status in MAY_HAVE_MOVED
        ]
        credits, foreign = attribute(bills, calls, skew_ms=skew, late_ms=60_000)
        new_foreign = [b for b in foreign if b.bill_id not in seen]
        for b in bills:
            seen[b.bill_id] = b.ts
        if bills:
            # Re-read a margin behind the newest bill: a bill booked late is not missed.
            self._since[account] = max(since, max(b.ts for b in bills) - skew)
        floor = self._since.get(account, since) - 2 * skew
        for bill_id in [i for i, ts in seen.items() if ts < floor]:
            del seen[bill_id]
        return BillsJudged(credits, new_foreign)


# -- the fence: holds on the positions' control records ----------------------------------


def mark_held_foreign(control: PositionControl, recent: int, window_s: float) -> None:
    """Held against a second controller (:class:`ForeignWatch` decides when)."""
    control.foreign_held = True
    control.status = Status.HELD
    control.reason = (
        f"foreign transfers: {recent} margin transfer(s) this reactor did "
        f"not make within {window_s:g} s: another "
        "controller? held until a quiet window"
    )


def record_foreign(
    ctx: Ctx, watch: ForeignWatch, account: str, foreign: Sequence[Bill], trigger: str
) -> None:
    """Say each foreign transfer; hold the instrument's positions when the watch starts a hold,
    waking them when it may end."""
    out, window_s = ctx.out, watch.window_s
    for bill in foreign:
        unit = (account, bill.inst_id)
        on_inst = [
            p
            for p in ctx.book.positions(account)
            if p.inst_id == bill.inst_id and p.is_managed_kind
        ]
        keys = [p.key for p in on_inst]
        started = watch.record(unit, ctx.now)
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
            control = ctx.control(key)
            mark_held_foreign(control, watch.recent(unit), window_s)
            if due is not None and not control.in_flight:
                set_timer(key, control, due, out)


def held_foreign(ctx: Ctx, watch: ForeignWatch, pos: Position, control: PositionControl) -> bool:
    """Whether ``pos`` stays held now; a quiet window releases its whole instrument."""
    unit = (pos.account, pos.inst_id)
    if not watch.held(unit):
        control.foreign_held = False
        return False
    if watch.try_release(unit, ctx.now):
        ctx.out.warning(
            "margin.position.released_foreign",
            account=pos.account,
            instId=pos.inst_id,
            quiet_s=watch.window_s,
            foreign_transfers=watch.count(unit),
        )
        for p in ctx.book.positions(pos.account):
            other = ctx.controls.get(p.key)
            if p.inst_id == pos.inst_id and other is not None:
                other.foreign_held = False
        return False
    mark_held_foreign(control, watch.recent(unit), watch.window_s)
    due = watch.release_due(unit)
    if due is not None and (control.due_at is None or control.due_at > due):
        set_timer(pos.key, control, due, ctx.out)
    return True


def end_bills_wait(ctx: Ctx, account: str) -> None:
    """The bills read after a margin drift answered (or failed): the positions act on."""
    for pos in ctx.book.positions(account):
        control = ctx.controls.get(pos.key)
        if control is not None and control.bills_wait_until > 0:
            waited_until, control.bills_wait_until = control.bills_wait_until, 0.0
            # Wake it now if it sleeps for the wait; an earlier wake-up (the debounce's)
            # stands.
            if not control.in_flight and (control.due_at is None or control.due_at >= waited_until):
                set_timer(pos.key, control, max(ctx.now, control.cooldown_until), ctx.out)


def drift_waits(ctx: Ctx, watch: ForeignWatch, key: PositionKey, control: PositionControl) -> None:
    """A margin drift on ``key`` (no fill, no call of ours): act on it at once, unless it
    could be the foreign transfer that trips the hold - then wait for the bills read, at most
    ``bills_wait_s`` (issue 18: the wait cost every correction a rate-limited read).

    The fence keeps its guarantee: the reactor answers at most ``limit - 1`` foreign
    transfers on a unit within the window, as when every drift waited. A drift is answered at
    once only while the unit has fewer than ``limit - 1`` foreign transfers in its window,
    counting every drift whose bills are unread as one, and is not on probation; the drift
    that would be the ``limit``-th waits for the bills, which hold it before it is answered.
    """
    unit = (key[0], key[1])
    if not ctx.settings.dry_run and watch.would_hold(unit, ctx.now):
        control.bills_wait_until = ctx.now + ctx.settings.bills_wait_s
    watch.drifted(unit)


def bills_read(
    ctx: Ctx, watch: ForeignWatch, account: str, foreign: Sequence[Bill], trigger: str
) -> None:
    """The answer of :class:`ReadBills`: margin transfers on ``account`` that no journalled
    call of this reactor accounts for. Each is ``margin.foreign_transfer``;
    ``foreign_transfer_limit`` of them on one instrument within the window hold its positions
    (``margin.position.held_foreign``) instead of fighting back."""
    watch.bills_answered(account)
    end_bills_wait(ctx, account)
    record_foreign(ctx, watch, account, foreign, trigger)


def bills_failed(ctx: Ctx, account: str, trigger: str, error: str) -> None:
    """The bills could not be read: foreign transfers go unseen until the next read (the
    reconcile interval); corrections go on, never stuck on the bills."""
    ctx.out.warning("bills.read.failed", account=account, trigger=trigger, error=error[:200])
    end_bills_wait(ctx, account)
