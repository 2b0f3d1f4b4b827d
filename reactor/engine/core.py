"""The engine core, sans-I/O: timestamped inputs in, :mod:`commands <reactor.engine.commands>` out.

It coordinates the timing rules of domain.md - debounce with a leading edge, single flight per
position, a cooldown that ends early when a push confirms the new margin, the 59301 step rule,
the runaway guard - and what every exchange answer means for the position. What to do is
decided by the pure :func:`reactor.domain.policy.decide`; when things happen is decided against the
``now`` each input carries, so a fake clock drives every rule in unit tests. The rules live in
parts that take plain state and return values (or commands on the input's :class:`Out`):
:mod:`.timing`, :mod:`.gates`, :mod:`.calls` (one margin call's life), :mod:`.episodes`,
:mod:`.reconcile`, :mod:`.restart`, :mod:`.counts`, :mod:`.maintenance_fills`,
:mod:`.foreign_fence`; this module owns the per-position records and routes inputs to them.
The core never awaits, never sleeps, never touches a socket or the ledger's writes: it asks for them
(:class:`WriteIntent` before every :class:`SendMarginCall`, timers, reads) and is told the
result through another input.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from reactor.domain.book import BookChange, ChangeKind, PositionBook
from reactor.domain.fills import (
    Effect,
    FillGate,
    RecordMaintenance,
)
from reactor.domain.policy import (
    Action,
    ActionKind,
    decide,
    target_for,
)
from reactor.engine.calls import (
    Call,
    CallTable,
    Outcome,
    OutcomeKind,
    capped_amount,
    dry_run,
    intent_command,
    send_command,
    settle_failure,
    settle_ok,
    wake_balance_waiters,
)
from reactor.engine.commands import (
    CancelTimer,
    CheckReduce,
    Command,
    FetchInstrument,
    Out,
    ReadBills,
    ReadPositions,
    RecoverFills,
    ResolveOutcome,
    SendMarginCall,
    SetTimer,
    WriteIntent,
    WriteResult,
    pos_fields,
)
from reactor.engine.episodes import enter_blocked, track_blocked, watch_main_positions
from reactor.engine.fills import FILLS_KEY, MaintenanceCounts, MaintenanceFills, ms
from reactor.engine.foreign import ForeignWatch, end_bills_wait, held_foreign, record_foreign
from reactor.engine.guard import RunawayGuard, guard_allows, seed_guard
from reactor.engine.health import EngineHealth
from reactor.engine.instruments import InstrumentFetches
from reactor.engine.reconcile import log_resolution, reconcile_book, unanswered_calls
from reactor.engine.state import (
    AccountState,
    CountSource,
    EngineObserver,
    EngineSettings,
    NullObserver,
    PauseKey,
    PendingOutcome,
    PositionControl,
    StorageError,
)
from reactor.engine.timing import (
    backoff_for,
    next_due,
    note_push,
    refusal,
    set_timer,
    settled,
    still_in_band,
)
from reactor.engine.view import EngineView, build_view
from reactor.okx.bills import Bill
from reactor.okx.models import Position, PositionKey
from reactor.okx.orders import OrderUpdate

if TYPE_CHECKING:
    from reactor.store.ledger import JournalEntry

# The timer of engine-wide work (retrying journal writes that failed); not a position.
STORAGE_KEY: PositionKey = ("", "", "", "")


class EngineCore:
    """Margin control over a :class:`PositionBook`. Every ``on_*`` input returns commands."""

    def __init__(
        self,
        settings: EngineSettings,
        accounts: Mapping[str, AccountState],
        ct_vals: Mapping[str, Decimal],
        counts: CountSource,
        *,
        book: PositionBook | None = None,
        observer: EngineObserver | None = None,
        rand: Callable[[], float] = random.random,
        fills: FillGate | None = None,
    ) -> None:
        self.settings = settings
        self.accounts = dict(accounts)
        self.ct_vals = dict(ct_vals)
        self.book = book or PositionBook()
        self.observer: EngineObserver = observer or NullObserver()
        self.guard = RunawayGuard(settings.max_moved_per_hour, settings.position_limit)
        self.calls_sent = 0
        self._rand = rand
        self._backoff = backoff_for(settings)
        self._controls: dict[PositionKey, PositionControl] = {}
        self._calls = CallTable(self.guard)
        self._cross_logged: set[PositionKey] = set()
        self._unknown_at_start: set[PositionKey] = set()
        # The calls a crash left unanswered, by position: resolved from the bills like any
        # ambiguous answer (the margin they were decided from is not journalled).
        self._recovered: dict[PositionKey, PendingOutcome] = {}
        self._main_below = False
        self._fetches = InstrumentFetches()
        self.health = EngineHealth(settings.internal_error_window_s)
        self.foreign = ForeignWatch(
            settings.foreign_transfer_limit, settings.foreign_transfer_window_s
        )
        # Operator pauses (account-wide keys have inst_id/pos_side None) -> reason.
        self._paused: dict[PauseKey, str] = {}
        # Counts from fills (issue 13): the no-race gate, maintenances seen but not yet in the
        # ledger (they count meanwhile), accounts whose missed fills are being recovered.
        self.counts = MaintenanceCounts(counts)
        self.fills = MaintenanceFills(fills, self.counts)
        self._fill_gate = self.fills.gate  # None: counts from fills are off

    # ------------------------------------------------------------------ start-up

    def recover(
        self,
        unanswered: Sequence[JournalEntry],
        recent: Sequence[JournalEntry],
        *,
        now: float,
        wall_now: float,
    ) -> list[Command]:
        """After a restart: ``unanswered`` intents (the shell journaled them unknown) are re-read
        before anything is sent for their positions; ``recent`` (the journal's last hour) refills
        the runaway guard, so a crash loop cannot reset the ceiling."""
        out = Out()
        recovered = unanswered_calls(unanswered, now, out)
        self._unknown_at_start.update(recovered)
        self._recovered.update(recovered)
        seed_guard(self.guard, recent, self.accounts, now, wall_now, out)
        return out.commands

    # ------------------------------------------------------------------ session inputs

    def on_connected(self, account: str, *, now: float) -> list[Command]:
        state = self.accounts.get(account)
        if state is not None:
            state.connected = True
            state.reconcile_due = True
            state.snapshot_logged = False
        return []

    def on_snapshot(
        self,
        account: str,
        positions: Sequence[Position],
        *,
        last_page: bool,
        now: float,
        cur_page: int | None = None,
    ) -> list[Command]:
        out = Out()
        changes = self.book.apply_snapshot_page(
            account, positions, last_page=last_page, cur_page=cur_page
        )
        if last_page:
            state = self.accounts.get(account)
            # One info line per (re)connect; OKX's regular snapshots (every ~5 s) at debug.
            first = state is None or not state.snapshot_logged
            log = out.info if first else out.debug
            log("book.snapshot", account=account, positions=len(self.book.positions(account)))
            if state is not None:
                state.snapshot_logged = True
            for key in [k for k in self._unknown_at_start if k[0] == account]:
                if self.book.get(key) is None:
                    self._unknown_at_start.discard(key)
                    self._recovered.pop(key, None)
            self._watch_main(account, out)
            if state is not None and state.reconcile_due:
                # Once per (re)connect, not on the periodic snapshots: a REST read catches what
                # the stream may have lost while the account was away.
                state.reconcile_due = False
                out.add(ReadPositions(account, "connect"))
                if self._fill_gate is not None and state.role == "sub":
                    # Maintenances filled while away are read back before anything is corrected.
                    self.fills.start_recovery(account)
                    opened = tuple(p for p in self.book.positions(account) if p.is_open)
                    out.add(RecoverFills(account, opened))
            # After a (re)connect every position is re-evaluated from the fresh snapshot. On the
            # regular snapshots that follow (OKX: every 2-5 s) a position whose last evaluation
            # settled on nothing to do is skipped unless its record changed (scheduled below):
            # that decision is a function of the record and the count alone, and a count change
            # re-evaluates at once. Everything else (blocked, waiting, errors) is re-evaluated.
            # (bench: 1.0 -> 0 evaluations per unchanged record at 10,000 records/s.)
            for pos in self.book.positions(account):
                if not first:
                    control = self._controls.get(pos.key)
                    if control is not None and settled(control):
                        continue
                self._schedule(pos.key, now, out)
        self._handle_changes(changes, now, out)
        return out.commands

    def on_update(
        self, account: str, positions: Sequence[Position], *, now: float
    ) -> list[Command]:
        out = Out()
        changes = self.book.apply_update(account, positions)
        self._handle_changes(changes, now, out, baseline=False)
        return out.commands

    def on_disconnected(self, account: str, reason: str, *, now: float) -> list[Command]:
        self.book.mark_stale(account)
        state = self.accounts.get(account)
        if state is not None:
            state.connected = False
            self.observer.inc_reconnect(account, reason)
        if self._fill_gate is not None:
            out = Out()
            self._fill_effects(self._fill_gate.reset_account(account, ms(now)), now, out)
            return out.commands
        return []

    def on_stopped(self, account: str, reason: str, *, now: float) -> list[Command]:
        self.book.mark_stale(account)
        state = self.accounts.get(account)
        if state is not None:
            state.connected = False
            state.stopped_reason = reason
        return []

    # ------------------------------------------------------------------ other inputs

    def on_counts_changed(
        self, keys: Iterable[tuple[str, str, str]], *, now: float
    ) -> list[Command]:
        """The ledger gained maintenance records for (account, instId, posSide)."""
        wanted = set(keys)
        self.counts.forget(wanted)
        out = Out()
        for account in {k[0] for k in wanted}:
            for pos in self.book.positions(account):
                if pos.key[:3] in wanted:
                    self._schedule(pos.key, now, out, immediate=True)
        return out.commands

    def on_account_enabled(self, state: AccountState, *, now: float) -> list[Command]:
        """A config reload added or enabled ``state``: it is managed from its first snapshot.
        An account already known keeps its guard history; its new client and role are taken."""
        old = self.accounts.get(state.name)
        if old is not None:
            state.guard_tripped = old.guard_tripped
        self.accounts[state.name] = state
        return []

    def on_account_disabled(self, account: str, *, removed: bool, now: float) -> list[Command]:
        """A config reload disabled (or removed) ``account``: nothing more is sent for it; calls
        in flight finish and are journaled. A removed account leaves the book and the view."""
        out = Out()
        self.book.mark_stale(account)
        state = self.accounts.get(account)
        if state is not None:
            state.enabled = False
            state.connected = False
        for key in [k for k, c in self._controls.items() if k[0] == account and not c.in_flight]:
            self._drop(key, out)
        if removed:
            self.accounts.pop(account, None)
            self.book.forget(account)
        return out.commands

    def on_paused(self, paused: Mapping[PauseKey, str], *, now: float) -> list[Command]:
        """The operator's pauses now (the whole set, from the ledger): a paused account or
        position gets no margin call until it is resumed; a resumed one is evaluated at once.
        Calls already in flight finish (their answers are journaled as always)."""
        before = self._paused
        self._paused = dict(paused)
        changed = set(before) ^ set(self._paused)
        out = Out()
        for account in {k[0] for k in changed}:
            whole = (account, None, None) in changed
            for pos in self.book.positions(account):
                if whole or (account, pos.inst_id, pos.pos_side) in changed:
                    self._schedule(pos.key, now, out, immediate=True)
        return out.commands

    def paused_reason(self, key: PositionKey) -> str | None:
        """Why the position is paused ("" without a reason), or None when it is not."""
        reason = self._paused.get((key[0], None, None))
        return reason if reason is not None else self._paused.get((key[0], key[1], key[2]))

    # ------------------------------------------------------------------ counts from fills

    def on_orders(
        self, account: str, orders: Sequence[OrderUpdate], *, now: float
    ) -> list[Command]:
        """An ``orders`` push: maintenances are recorded, held positions released."""
        out = Out()
        if self._fill_gate is None:
            return []
        for order in orders:
            if order.account == account:
                self._fill_effects(self._fill_gate.on_order(order, ms(now)), now, out)
        return out.commands

    def on_maintenance_written(
        self, record: RecordMaintenance, record_id: int | None, *, now: float
    ) -> list[Command]:
        """The answer of :class:`WriteMaintenance` (``record_id`` None: it was there already)."""
        out = Out()
        self.fills.written(record, record_id, out)
        return out.commands

    def on_maintenance_failed(
        self, record: RecordMaintenance, error: str, *, now: float, retry: bool = True
    ) -> list[Command]:
        """The ledger refused the write: it keeps counting in memory and is written again."""
        out = Out()
        self.fills.write_failed(record, error, now, retry, out)
        return out.commands

    def on_fills_recovered(
        self, account: str, keys: Iterable[PositionKey], *, now: float
    ) -> list[Command]:
        """Recovery wrote what was missed (``keys``: positions with new records): go on."""
        out = Out()
        self.fills.recovered(account, keys)
        for pos in self.book.positions(account):
            self._schedule(pos.key, now, out, immediate=True)
        return out.commands

    def on_fills_recovery_failed(self, account: str, error: str, *, now: float) -> list[Command]:
        """Recovery could not read OKX's history: correct with the counts there are (never
        stuck), and say so; the next (re)connect tries again."""
        out = Out()
        self.fills.recovery_failed(account, error, out)
        for pos in self.book.positions(account):
            self._schedule(pos.key, now, out, immediate=True)
        return out.commands

    def _fill_effects(self, effects: list[Effect], now: float, out: Out) -> None:
        for effect in effects:
            key = self.fills.apply(effect, out)
            if key is not None and self.book.get(key) is not None:
                self._schedule(key, now, out, immediate=True)
        self.fills.arm_timer(out)

    def _fills_tick(self, now: float, out: Out) -> None:
        if self._fill_gate is not None:
            self._fill_effects(self._fill_gate.expire(ms(now)), now, out)
        self.fills.retry_writes(now, out)
        self.fills.arm_timer(out)

    def on_timer(self, key: PositionKey, *, now: float) -> list[Command]:
        out = Out()
        if key == STORAGE_KEY:
            self._retry_results(out)
            return out.commands
        if key == FILLS_KEY:
            self._fills_tick(now, out)
            return out.commands
        control = self._controls.get(key)
        if control is None or control.due_at is None:
            return []
        control.due_at = None
        self._evaluate(key, now, out)
        return out.commands

    def on_positions_read(
        self, account: str, positions: Sequence[Position], trigger: str, *, now: float
    ) -> list[Command]:
        """A REST read of the whole account: correct the book, log each drift."""
        out = Out()
        if not self.book.is_fresh(account):
            return []  # the stream broke while we read: the next snapshot decides
        drifts, changes = reconcile_book(self.book, account, positions, None, out)
        self._handle_changes(changes, now, out)
        log = out.debug if trigger == "interval" and not drifts else out.info
        log(
            "book.reconciled",
            account=account,
            trigger=trigger,
            positions=len(self.book.positions(account)),
            drifts=drifts,
        )
        return out.commands

    def on_read_failed(
        self, account: str, trigger: str, error: str, *, now: float
    ) -> list[Command]:
        out = Out()
        out.warning("reconcile.failed", account=account, trigger=trigger, error=error)
        return out.commands

    def on_instrument(
        self, inst_id: str, ct_val: Decimal | None, error: str | None, *, now: float
    ) -> list[Command]:
        """The answer to :class:`FetchInstrument`: its ctVal, or why it is not known."""
        out = Out()
        waiting = [p.key for p in self.book.positions() if p.inst_id == inst_id]
        if ct_val is not None and ct_val > 0:
            self.ct_vals[inst_id] = ct_val
            self._fetches.done(inst_id)
            out.info("instrument.fetched", instId=inst_id, ctVal=str(ct_val))
            for key in waiting:
                self._schedule(key, now, out, immediate=True)
            return out.commands
        error = error or "ctVal missing"
        delay = self._backoff.delay(self._fetches.failures(inst_id) + 1, self._rand)
        failures = self._fetches.failed(inst_id, error, now, delay)
        out.warning(
            "instrument.fetch.failed",
            instId=inst_id,
            error=error,
            failures=failures,
            delay_s=round(delay, 3),
        )
        for key in waiting:
            control = self._control(key)
            control.status, control.reason = "unmanaged", self._fetches.reason(inst_id)
            if control.due_at is None or control.due_at > now + delay:
                self._set_timer(key, control, now + delay, out)
        return out.commands

    def on_bills_read(
        self, account: str, foreign: Sequence[Bill], trigger: str, *, now: float
    ) -> list[Command]:
        """Margin transfers on ``account`` that no journalled call of this reactor accounts for.

        Each is ``margin.foreign_transfer``; ``foreign_transfer_limit`` of them on one instrument
        within the window hold its positions (``margin.position.held_foreign``) instead of
        fighting back (:mod:`reactor.engine.foreign`)."""
        out = Out()
        end_bills_wait(account, self.book, self._controls, now, out)
        record_foreign(account, foreign, trigger, self.foreign, self.book, self._controls, now, out)
        return out.commands

    def on_bills_failed(
        self, account: str, trigger: str, error: str, *, now: float
    ) -> list[Command]:
        """The bills could not be read: foreign transfers go unseen until the next read (the
        reconcile interval); corrections go on."""
        out = Out()
        out.warning("bills.read.failed", account=account, trigger=trigger, error=error[:200])
        end_bills_wait(
            account, self.book, self._controls, now, out
        )  # act on: never stuck on the bills
        return out.commands

    # ------------------------------------------------------------------ call answers

    def on_reduce_checked(self, call: int, cap: Decimal | None, *, now: float) -> list[Command]:
        """The exchange's own reduce limit (``estAvailTrans``): never ask for more.

        ``cap`` None: the venue set no limit (tests of other rules). The policy's floor has
        already bounded the amount; the cap is the second bound, rounded down to the step.
        Less than ``min_action`` left: no call, blocked ``exchange_limit`` until a later check
        (with back-off: OKX's figure moves with the mark price, which pushes do not show).
        """
        out = Out()
        c = self._calls.get(call)
        if c is None or c.checked:
            return []  # a second answer, or one for a call already dropped
        c.checked = True
        if self._controls.get(c.key) is not c.control:
            self._calls.abandon(call, c, "position closed before send", out)
            return out.commands
        current = self.book.get(c.key)
        account = self.accounts.get(c.key[0])
        if (
            not self.book.is_fresh(c.key[0])
            or current != c.position
            or account is None
            or not account.managed
            or not account.enabled
            or self.paused_reason(c.key) is not None
        ):
            # The stream broke, the position moved, or the account was stopped, disabled or
            # paused while the exchange was asked: the call was decided from what no longer
            # holds. Decide again, never send it.
            self._calls.abandon(call, c, "", out)
            self._set_timer(c.key, c.control, now, out)
            return out.commands
        control = c.control
        amount = capped_amount(c.amount, cap, self.settings.policy.amount_step)
        if amount is not None:
            # Once per blocked episode at info: a blocked position is checked again and again.
            log = out.debug if control.exchange_limited else out.info
            log(
                "margin.adjust.capped",
                **pos_fields(c.key),
                amount=str(c.amount),
                capped=str(amount),
                est_avail=str(cap),
            )
            if amount < self.settings.policy.min_action:
                self._calls.abandon(call, c, "", out)
                reason = f"exchange_limit: estAvailTrans {cap} < min_action"
                control.status, control.reason = "blocked", reason
                control.exchange_limited = True
                enter_blocked(c.position, control, c.action, reason, out)
                control.failures += 1
                self._retry_later(c.key, control, "estAvailTrans", now, out)
                return out.commands
            self._calls.resize(c, amount)
        control.exchange_limited = False
        self._write_intent(call, c, out)
        return out.commands

    def on_reduce_check_failed(self, call: int, error: str, *, now: float) -> list[Command]:
        """``estAvailTrans`` could not be read (error, timeout, no number): no reduce is sent.

        Never a blind reduce: an over-margined position is safe, a reduce OKX would refuse or
        one sized from a guess is not needed now. The position decides again after the
        back-off, from fresh data and a fresh check."""
        out = Out()
        c = self._calls.get(call)
        if c is None or c.checked:
            return []  # answered already: the call goes on, or was dropped
        c.checked = True
        control = c.control
        self._calls.abandon(call, c, "", out)
        out.warning(
            "margin.reduce.check_failed",
            **pos_fields(c.key),
            amount=str(c.amount),
            error=error[:200],
        )
        if self._controls.get(c.key) is not control:
            return out.commands
        control.failures += 1
        control.status, control.reason = "error", f"estAvailTrans unreadable: {error[:120]}"
        self._retry_later(c.key, control, "estAvailTrans", now, out)
        return out.commands

    def on_intent_written(self, call: int, journal_id: int, *, now: float) -> list[Command]:
        """The intent is durable: the call may be sent."""
        out = Out()
        self._storage_recovered(out)
        c = self._calls.get(call)
        if c is None:
            out.add(WriteResult(journal_id, "error", "not_sent", "abandoned before send"))
            return out.commands
        if self._controls.get(c.key) is not c.control:
            c.journal_id = journal_id
            self._calls.abandon(call, c, "position closed before send", out)
            return out.commands
        self.calls_sent += 1
        # A call after a failed one waited out its back-off: kept apart from reaction latency.
        self.observer.observe_latency(
            now - c.control.changed_at, retry=c.control.failures > 0, account=c.key[0]
        )
        send_command(call, c, journal_id, now, out)
        return out.commands

    def on_intent_failed(self, call: int, error: str, *, now: float) -> list[Command]:
        """No durable intent, so no call: the position retries with back-off."""
        out = Out()
        self._storage_failed(error, "intent", out)
        c = self._calls.pop(call)
        if c is None:
            return out.commands
        self._calls.refund(c)
        self.observer.inc_adjustment("journal_failed", account=c.key[0])
        control = c.control
        control.in_flight = False
        control.failures += 1
        control.status, control.reason = "error", f"journal write failed: {error}"
        if self._controls.get(c.key) is control:
            self._retry_later(c.key, control, "journal", now, out)
        return out.commands

    def on_result_written(self, journal_id: int, *, now: float) -> list[Command]:
        out = Out()
        self.health.unwritten.pop(journal_id, None)
        self._storage_recovered(out)
        return out.commands

    def on_result_failed(self, result: WriteResult, error: str, *, now: float) -> list[Command]:
        """The call's answer is known here but not on disk: keep it and write it again later.

        Until then the entry stays ``pending``, which a restart reads as unknown (a re-read):
        never unsafe, only slower."""
        out = Out()
        self._storage_failed(error, "result", out)
        self.health.unwritten[result.journal_id] = result
        self.health.storage_failures += 1
        at = now + self._backoff.delay(self.health.storage_failures, self._rand)
        out.add(SetTimer(STORAGE_KEY, at))
        return out.commands

    def on_call_done(self, call: int, outcome: Outcome, *, now: float) -> list[Command]:
        """The answer of a :class:`SendMarginCall`."""
        out = Out()
        c = self._calls.pop(call)
        if c is None:
            return []
        out.add(
            WriteResult(c.journal_id, outcome.journal_status, outcome.code, outcome.msg or None)
        )
        self.observer.inc_adjustment(outcome.label, account=c.key[0])
        if outcome.moved_nothing:
            self._calls.refund(c)
        control, key = c.control, c.key
        control.in_flight = False
        attached = self._controls.get(key) is control
        fields = {**pos_fields(key), "action": c.action.kind.value, "amount": str(c.amount)}
        if outcome.kind is OutcomeKind.OK:
            delay = settle_ok(c, self.book.get(key), self.settings, now, out, fields)
            if c.action.kind is ActionKind.REDUCE:
                wake_balance_waiters(self.accounts.get(key[0]), self._controls, now, out)
        else:
            account = self.accounts.get(key[0])
            after = settle_failure(c, outcome, account, self.settings, out, fields)
            if after is None:
                after = self._backoff_delay(key, control, outcome.code or outcome.label, out)
            delay = after
        control.cooldown_until = now + delay
        if attached:
            self._set_timer(key, control, now + delay, out)
        return out.commands

    def on_resolved(
        self,
        key: PositionKey,
        positions: Sequence[Position],
        *,
        now: float,
        bill_applied: bool | None = None,
        bill_id: str | None = None,
        bills: str | None = None,
    ) -> list[Command]:
        """The answer of :class:`ResolveOutcome`: a REST read of the position's instrument, and
        (when the shell can read bills) whether OKX booked the call, and the matching bill;
        ``bills`` says why the bills could not decide (no bill after the re-query, unreadable).
        """
        out = Out()
        control = self._controls.get(key)
        _, changes = reconcile_book(self.book, key[0], positions, key[1], out)
        if control is None:
            self._handle_changes(changes, now, out)
            return out.commands
        pending = control.pending
        log_resolution(key, control, self.book.get(key), bill_applied, bill_id, bills, out)
        control.pending = None
        control.reread = False
        self._unknown_at_start.discard(key)
        control.expected_margin = None
        control.in_flight = False
        delay = 0.0
        if pending is not None:
            # An ambiguous answer is a failure like any other: the next call waits.
            delay = self._backoff_delay(key, control, pending.code or "unknown", out)
        control.cooldown_until = now + delay
        self._handle_changes(changes, now, out)
        if self._controls.get(key) is control:
            self._set_timer(key, control, now + delay, out)
        return out.commands

    def on_resolve_failed(self, key: PositionKey, error: str, *, now: float) -> list[Command]:
        out = Out()
        out.warning(
            "reconcile.failed", account=key[0], instId=key[1], trigger="resolve", error=error
        )
        control = self._controls.get(key)
        if control is not None:
            control.in_flight = False
            control.failures += 1
            self._retry_later(key, control, "resolve", now, out)
        return out.commands

    def on_task_failed(self, command: Command, error: str, *, now: float) -> list[Command]:
        """A task the shell ran for ``command`` raised (a bug): nothing may stay in flight."""
        out = Out()
        self.health.internal_error(error, now)
        key: PositionKey | None = None
        if isinstance(command, SendMarginCall):
            c = self._calls.pop(command.call)
            key = command.key
            if c is not None:
                # It may have been sent: resolve before anything else (the guard keeps it).
                c.control.pending = c.pending()
                c.control.in_flight = False
        elif isinstance(command, FetchInstrument):
            return self.on_instrument(command.inst_id, None, f"internal error: {error}", now=now)
        elif isinstance(command, ReadBills):
            return self.on_bills_failed(command.account, command.trigger, error, now=now)
        elif isinstance(command, RecoverFills):
            return self.on_fills_recovery_failed(
                command.account, f"internal error: {error}", now=now
            )
        elif isinstance(command, (ResolveOutcome, SetTimer, CheckReduce, WriteIntent)):
            key = command.key
            if isinstance(command, (CheckReduce, WriteIntent)):
                c = self._calls.pop(command.call)
                if c is not None:
                    self._calls.refund(c)
        if key is not None:
            control = self._controls.get(key)
            if control is not None:
                control.in_flight = False
                control.failures += 1
                control.status, control.reason = "error", f"internal error: {error[:120]}"
                self._retry_later(key, control, "internal", now, out)
        return out.commands

    # ------------------------------------------------------------------ changes and timers

    def _handle_changes(
        self, changes: list[BookChange], now: float, out: Out, *, baseline: bool = True
    ) -> None:
        """``baseline``: the changes come from a snapshot or a REST read, not an event push."""
        for change in changes:
            key = change.key
            if self._fill_gate is not None:
                if change.kind is ChangeKind.CLOSED:
                    effects = self._fill_gate.close(key, ms(now))
                else:
                    effects = self._fill_gate.on_position(
                        change.position, ms(now), baseline=baseline
                    )
                self._fill_effects(effects, now, out)
            if change.kind is not ChangeKind.UPDATED:
                self._watch_main(key[0], out)
            if change.kind is ChangeKind.CLOSED:
                self._drop(key, out)
                continue
            if change.kind is ChangeKind.REOPENED:
                self._drop(key, out)
            control = self._controls.get(key)
            if control is not None:
                note_push(key, control, change, self.settings, now, out)
                if change.kind is ChangeKind.UPDATED and still_in_band(control, change):
                    continue
            self._schedule(key, now, out)

    def _drop(self, key: PositionKey, out: Out) -> None:
        control = self._controls.pop(key, None)
        if control is not None and control.due_at is not None:
            out.add(CancelTimer(key))

    def _control(self, key: PositionKey) -> PositionControl:
        control = self._controls.get(key)
        if control is None:
            control = self._controls[key] = PositionControl()
        return control

    def _schedule(self, key: PositionKey, now: float, out: Out, *, immediate: bool = False) -> None:
        control = self._control(key)
        at = next_due(control, now, self.settings, immediate=immediate)
        if at is None:
            return  # the pending evaluation folds this change in
        control.changed_at = now
        self._set_timer(key, control, at, out)

    def _set_timer(self, key: PositionKey, control: PositionControl, at: float, out: Out) -> None:
        set_timer(key, control, at, out)

    def _backoff_delay(
        self, key: PositionKey, control: PositionControl, code: str, out: Out
    ) -> float:
        delay = self._backoff.delay(control.failures, self._rand)
        out.info(
            "margin.adjust.retry",
            **pos_fields(key),
            code=code,
            failures=control.failures,
            delay_s=round(delay, 3),
        )
        return delay

    def _retry_later(
        self, key: PositionKey, control: PositionControl, code: str, now: float, out: Out
    ) -> None:
        delay = self._backoff_delay(key, control, code, out)
        control.cooldown_until = now + delay
        self._set_timer(key, control, now + delay, out)

    # ------------------------------------------------------------------ evaluation

    def count_for(self, pos: Position) -> int:
        """The ledger's count plus maintenances seen on ``orders`` not yet written to it."""
        return self.counts.count(pos)

    def sources_for(self, pos: Position) -> dict[str, int]:
        """Where the counted records came from (cached with the count; no I/O)."""
        return self.counts.sources(pos)

    def _view_sources(self, pos: Position) -> tuple[tuple[str, int], ...]:
        return tuple(sorted(self.sources_for(pos).items()))

    def _evaluate(self, key: PositionKey, now: float, out: Out) -> Action | None:
        """Decide for one position now and start what is due (a call, a re-read, a fetch)."""
        pos = self.book.get(key)
        control = self._controls.get(key)
        if pos is None or control is None:
            return None
        account = self.accounts.get(pos.account)
        refused = refusal(pos, account, self.paused_reason(key), self.book.is_fresh(pos.account))
        if refused is not None:
            control.status, control.reason = refused.status, refused.reason
            if refused.foreign_kind and key not in self._cross_logged:
                self._cross_logged.add(key)
                out.info("book.cross.ignored", **pos_fields(key), mgnMode=pos.mgn_mode)
            return None
        assert account is not None  # refused otherwise
        if control.in_flight:
            return None  # its answer schedules the next evaluation
        if control.cooldown_until > now:
            self._set_timer(key, control, control.cooldown_until, out)
            return None
        if control.bills_wait_until > now:
            self._set_timer(key, control, control.bills_wait_until, out)
            return None  # the bills read after a margin drift answers first
        if control.expected_margin is not None and control.pending is None:
            control.reread = True  # an ok call no push confirmed within the cooldown
        if key in self._unknown_at_start and control.pending is None:
            control.pending = self._recovered.pop(key, None)
        if control.pending is not None or control.reread or key in self._unknown_at_start:
            # Unknown outcome, or an ok call whose effect no push has shown within the
            # cooldown: the book may lack a transfer the exchange made. Re-read, never guess.
            control.in_flight = True
            out.add(ResolveOutcome(key, control.pending))
            return None
        if control.hold_until_change is not None:
            return None
        if held_foreign(pos, control, self.foreign, self.book, self._controls, now, out):
            return None
        if self._fill_gate is not None:
            if pos.account in self.fills.recovering:
                control.status, control.reason = "adjusting", "recovering fills missed while away"
                return None  # the recovery's answer re-evaluates every position of the account
            until = self._fill_gate.hold_until(pos, ms(now))
            if until is not None:
                # It grew: the count may be about to move (a maintenance fill whose order event
                # has not come yet). Correcting now could send it to the old target.
                control.status, control.reason = "adjusting", "waiting for the fill's order event"
                self._set_timer(key, control, until / 1000, out)
                return None
        ct_val = self.ct_vals.get(pos.inst_id)
        if ct_val is None:
            self._need_instrument(pos, control, now, out)
            return None
        try:
            count = self.count_for(pos)
        except StorageError as exc:
            self._storage_failed(str(exc), "count", out)
            control.failures += 1
            control.status, control.reason = "error", f"ledger read failed: {exc}"
            self._retry_later(key, control, "ledger", now, out)
            return None
        rule = target_for(count, self.settings.policy.targets)
        control.count, control.target = count, rule.target
        control.band = (rule.band_lo, rule.band_hi)
        action = decide(pos, ct_val, count, self.settings.policy, step_cap=control.step_cap)
        track_blocked(pos, control, action, out)
        if action.kind is ActionKind.NONE:
            control.status, control.reason = "ok", action.reason
            control.step_cap = None
            return action
        if action.kind is ActionKind.BLOCKED:
            control.status, control.reason = "blocked", action.reason
            return action
        check = self.guard.check(key, action.amount, now)
        if not guard_allows(check, pos, control, account, action, self.settings, out):
            return action
        if self.settings.dry_run:
            dry_run(pos, control, action, count, self.settings, now, out)
            return action
        call, c = self._calls.open(key, control, pos, action, check.entry)
        control.in_flight = True
        control.call = call
        control.status, control.reason = "adjusting", action.reason
        control.last_acted = now
        if self.settings.pre_reduce_check and action.kind is ActionKind.REDUCE:
            out.add(CheckReduce(call, key, action.amount, pos.lever))
        else:
            self._write_intent(call, c, out)
        return action

    def _write_intent(self, call: int, c: Call, out: Out) -> None:
        self._retry_results(out)  # results a failed write left behind go first
        out.add(intent_command(call, c))

    def _need_instrument(
        self, pos: Position, control: PositionControl, now: float, out: Out
    ) -> None:
        """An instrument listed after start-up: unmanaged, visibly, until its ctVal is read."""
        if self._fetches.start(pos.inst_id, now):
            out.add(FetchInstrument(pos.account, pos.inst_id))
        control.status, control.reason = "unmanaged", self._fetches.reason(pos.inst_id)

    # ------------------------------------------------------------------ re-reads

    def _watch_main(self, account: str, out: Out) -> None:
        self._main_below = watch_main_positions(
            account,
            self.accounts.get(account),
            self.book,
            self.settings.main_expected_positions,
            self._main_below,
            out,
        )

    # ------------------------------------------------------------------ storage health

    def _storage_failed(self, error: str, what: str, out: Out) -> None:
        first = self.health.storage_failed(error)
        out.error("journal.write.failed", what=what, error=error[:200], first=first)

    def _storage_recovered(self, out: Out) -> None:
        ended = self.health.storage_recovered()
        if ended is not None:
            out.info("journal.write.recovered", error=ended)

    def _retry_results(self, out: Out) -> None:
        for result in list(self.health.unwritten.values()):
            out.add(result)

    # ------------------------------------------------------------------ status (read-only)

    def view(self, now: float) -> EngineView:
        """What the status page shows; reads engine state, never writes it, never does I/O."""
        return build_view(
            self.accounts.values(),
            self.book,
            self._controls,
            sources=self._view_sources,
            main_expected_positions=self.settings.main_expected_positions,
            problems=self.health.problems(now)
            + self._fetches.problems()
            + sorted(self.fills.problems.values()),
            storage_ok=self.health.storage_ok,
            internal_errors=self.health.internal_errors,
            paused_accounts={k[0]: r for k, r in self._paused.items() if k[1] is None},
        )

    # ------------------------------------------------------------------ introspection

    def control(self, key: PositionKey) -> PositionControl | None:
        """The position's control record (tests, the status page); do not mutate."""
        return self._controls.get(key)

    def in_flight(self) -> list[PositionKey]:
        return [k for k, c in self._controls.items() if c.in_flight]
