"""The engine core, sans-I/O: timestamped inputs in, :mod:`commands <reactor.engine.commands>` out.

It coordinates the timing rules of docs/spec/domain.md - debounce with a leading edge, single flight
per position, a cooldown that ends early when a push confirms the new margin, the 59301 step rule,
the runaway guard - and what every exchange answer means for the position. What to do is
decided by the pure :func:`reactor.domain.policy.decide`; when things happen is decided against the
``now`` each input carries, so a fake clock drives every rule in unit tests. This module owns
the per-position records, routes each input to its feature (:mod:`.calls`, :mod:`.fills`,
:mod:`.foreign`, :mod:`.guard`, :mod:`.reconcile`, :mod:`.instruments`, :mod:`.health`; the
timing moves in :mod:`.timing`) through one :class:`Ctx`, and decides one position in
:meth:`EngineCore._evaluate`. The core never awaits, never sleeps, never touches a socket or the
ledger's writes: it asks for them (:class:`WriteIntent` before every :class:`SendMarginCall`,
timers, reads) and is told the result through another input.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from reactor.domain.book import BookChange, ChangeKind, PositionBook
from reactor.domain.fills import FillGate, RecordMaintenance
from reactor.domain.policy import Action, ActionKind, decide, target_for
from reactor.engine.calls import Call, CallTable, Outcome, dry_run, intent_command, send_command
from reactor.engine.commands import (
    CheckReduce,
    Command,
    FetchInstrument,
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
from reactor.engine.episodes import track_blocked, watch_main_positions
from reactor.engine.fills import FILLS_KEY, MaintenanceCounts, MaintenanceFills
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
    Role,
    Status,
    StorageError,
)
from reactor.engine.timing import (
    Ctx,
    backoff_for,
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
    from reactor.store import JournalEntry

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
        # Counts from fills: the no-race gate, maintenances seen but not yet in the
        # ledger (they count meanwhile), accounts whose missed fills are being recovered.
        self.counts = MaintenanceCounts(counts)
        self.fills = MaintenanceFills(fills, self.counts)
        # A task that raised (a bug): the answer that keeps nothing in flight, by command.
        self._task_failures: dict[type[Any], Callable[[Ctx, Any, str], None]] = {
            SendMarginCall: self._send_failed,
            CheckReduce: self._before_send_failed,
            WriteIntent: self._before_send_failed,
            ResolveOutcome: self._key_failed,
            SetTimer: self._key_failed,
            FetchInstrument: lambda ctx, c, e: self._fetches.answered(
                ctx, c.inst_id, None, f"internal error: {e}", self.ct_vals
            ),
            ReadBills: lambda ctx, c, e: self._bills_failed(ctx, c.account, c.trigger, e),
            RecoverFills: lambda ctx, c, e: self._recovery_failed(
                ctx, c.account, f"internal error: {e}"
            ),
        }

    def _ctx(self, now: float) -> Ctx:
        return Ctx(
            self.book,
            self._controls,
            self.accounts,
            self.settings,
            self._paused,
            lambda failures: self._backoff.delay(failures, self._rand),
            now,
        )

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
        ctx = self._ctx(now)
        recovered = unanswered_calls(unanswered, now, ctx.out)
        self._unknown_at_start.update(recovered)
        self._recovered.update(recovered)
        seed_guard(self.guard, recent, self.accounts, now, wall_now, ctx.out)
        return ctx.out.commands

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
        ctx = self._ctx(now)
        out = ctx.out
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
            self._main_below = watch_main_positions(ctx, account, self._main_below)
            if state is not None and state.reconcile_due:
                # Once per (re)connect, not on the periodic snapshots: a REST read catches what
                # the stream may have lost while the account was away.
                state.reconcile_due = False
                out.add(ReadPositions(account, "connect"))
                if self.fills.gate is not None and state.role is Role.SUB:
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
                ctx.schedule(pos.key)
        self._handle_changes(ctx, changes)
        return out.commands

    def on_update(
        self, account: str, positions: Sequence[Position], *, now: float
    ) -> list[Command]:
        ctx = self._ctx(now)
        self._handle_changes(ctx, self.book.apply_update(account, positions), baseline=False)
        return ctx.out.commands

    def on_disconnected(self, account: str, reason: str, *, now: float) -> list[Command]:
        self.book.mark_stale(account)
        state = self.accounts.get(account)
        if state is not None:
            state.connected = False
            self.observer.inc_reconnect(account, reason)
        ctx = self._ctx(now)
        self.fills.on_account_lost(ctx, account)
        return ctx.out.commands

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
        ctx = self._ctx(now)
        for account in {k[0] for k in wanted}:
            for pos in self.book.positions(account):
                if pos.key[:3] in wanted:
                    ctx.schedule(pos.key, immediate=True)
        return ctx.out.commands

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
        ctx = self._ctx(now)
        self.book.mark_stale(account)
        state = self.accounts.get(account)
        if state is not None:
            state.enabled = False
            state.connected = False
        for key in [k for k, c in self._controls.items() if k[0] == account and not c.in_flight]:
            ctx.drop(key)
        if removed:
            self.accounts.pop(account, None)
            self.book.forget(account)
        return ctx.out.commands

    def on_paused(self, paused: Mapping[PauseKey, str], *, now: float) -> list[Command]:
        """The operator's pauses now (the whole set, from the ledger): a paused account or
        position gets no margin call until it is resumed; a resumed one is evaluated at once.
        Calls already in flight finish (their answers are journaled as always)."""
        changed = set(self._paused) ^ set(paused)
        self._paused.clear()
        self._paused.update(paused)
        ctx = self._ctx(now)
        for account in {k[0] for k in changed}:
            whole = (account, None, None) in changed
            for pos in self.book.positions(account):
                if whole or (account, pos.inst_id, pos.pos_side) in changed:
                    ctx.schedule(pos.key, immediate=True)
        return ctx.out.commands

    def paused_reason(self, key: PositionKey) -> str | None:
        """Why the position is paused ("" without a reason), or None when it is not."""
        return self._ctx(0.0).paused_reason(key)

    # ------------------------------------------------------------------ fills (:mod:`.fills`)

    def on_orders(
        self, account: str, orders: Sequence[OrderUpdate], *, now: float
    ) -> list[Command]:
        """An ``orders`` push: maintenances are recorded, held positions released."""
        ctx = self._ctx(now)
        self.fills.on_orders(ctx, account, orders)
        return ctx.out.commands

    def on_maintenance_written(
        self, record: RecordMaintenance, record_id: int | None, *, now: float
    ) -> list[Command]:
        """The answer of :class:`WriteMaintenance` (``record_id`` None: it was there already)."""
        ctx = self._ctx(now)
        self.fills.written(record, record_id, ctx.out)
        return ctx.out.commands

    def on_maintenance_failed(
        self, record: RecordMaintenance, error: str, *, now: float, retry: bool = True
    ) -> list[Command]:
        """The ledger refused the write: it keeps counting in memory and is written again."""
        ctx = self._ctx(now)
        self.fills.write_failed(record, error, now, retry, ctx.out)
        return ctx.out.commands

    def on_fills_recovered(
        self, account: str, keys: Iterable[PositionKey], *, now: float
    ) -> list[Command]:
        """Recovery wrote what was missed (``keys``: positions with new records): go on."""
        ctx = self._ctx(now)
        self.fills.recovered(account, keys)
        ctx.schedule_account(account)
        return ctx.out.commands

    def on_fills_recovery_failed(self, account: str, error: str, *, now: float) -> list[Command]:
        """Recovery could not read OKX's history: correct with the counts there are (never
        stuck), and say so; the next (re)connect tries again."""
        ctx = self._ctx(now)
        self._recovery_failed(ctx, account, error)
        return ctx.out.commands

    def _recovery_failed(self, ctx: Ctx, account: str, error: str) -> None:
        self.fills.recovery_failed(account, error, ctx.out)
        ctx.schedule_account(account)

    def on_timer(self, key: PositionKey, *, now: float) -> list[Command]:
        ctx = self._ctx(now)
        if key == STORAGE_KEY:
            self.health.retry_results(ctx.out)
        elif key == FILLS_KEY:
            self.fills.tick(ctx)
        else:
            control = self._controls.get(key)
            if control is None or control.due_at is None:
                return []
            control.due_at = None
            self._evaluate(ctx, key)
        return ctx.out.commands

    # ------------------------------------------------------------------ reads

    def on_positions_read(
        self, account: str, positions: Sequence[Position], trigger: str, *, now: float
    ) -> list[Command]:
        """A REST read of the whole account: correct the book, log each drift."""
        ctx = self._ctx(now)
        if not self.book.is_fresh(account):
            return []  # the stream broke while we read: the next snapshot decides
        drifts, changes = reconcile_book(self.book, account, positions, None, ctx.out)
        self._handle_changes(ctx, changes)
        log = ctx.out.debug if trigger == "interval" and not drifts else ctx.out.info
        log(
            "book.reconciled",
            account=account,
            trigger=trigger,
            positions=len(self.book.positions(account)),
            drifts=drifts,
        )
        return ctx.out.commands

    def on_read_failed(
        self, account: str, trigger: str, error: str, *, now: float
    ) -> list[Command]:
        ctx = self._ctx(now)
        ctx.out.warning("reconcile.failed", account=account, trigger=trigger, error=error)
        return ctx.out.commands

    def on_instrument(
        self, inst_id: str, ct_val: Decimal | None, error: str | None, *, now: float
    ) -> list[Command]:
        """The answer to :class:`FetchInstrument`: its ctVal, or why it is not known."""
        ctx = self._ctx(now)
        self._fetches.answered(ctx, inst_id, ct_val, error, self.ct_vals)
        return ctx.out.commands

    def on_bills_read(
        self, account: str, foreign: Sequence[Bill], trigger: str, *, now: float
    ) -> list[Command]:
        """Margin transfers on ``account`` that no journalled call of this reactor accounts for.

        Each is ``margin.foreign_transfer``; ``foreign_transfer_limit`` of them on one instrument
        within the window hold its positions (``margin.position.held_foreign``) instead of
        fighting back (:mod:`reactor.engine.foreign`)."""
        ctx = self._ctx(now)
        end_bills_wait(ctx, account)
        record_foreign(ctx, self.foreign, account, foreign, trigger)
        return ctx.out.commands

    def on_bills_failed(
        self, account: str, trigger: str, error: str, *, now: float
    ) -> list[Command]:
        """The bills could not be read: foreign transfers go unseen until the next read (the
        reconcile interval); corrections go on, never stuck on the bills."""
        ctx = self._ctx(now)
        self._bills_failed(ctx, account, trigger, error)
        return ctx.out.commands

    def _bills_failed(self, ctx: Ctx, account: str, trigger: str, error: str) -> None:
        ctx.out.warning("bills.read.failed", account=account, trigger=trigger, error=error[:200])
        end_bills_wait(ctx, account)

    # ------------------------------------------------------------------ call answers

    def on_reduce_checked(self, call: int, cap: Decimal | None, *, now: float) -> list[Command]:
        """OKX's own reduce limit (``estAvailTrans``): :meth:`CallTable.reduce_checked`."""
        ctx = self._ctx(now)
        c = self._calls.reduce_checked(ctx, call, cap)
        if c is not None:
            self._write_intent(ctx, call, c)
        return ctx.out.commands

    def on_reduce_check_failed(
        self, call: int, error: str, *, now: float, outcome: Outcome | None = None
    ) -> list[Command]:
        """``estAvailTrans`` unreadable: no reduce (:meth:`CallTable.reduce_check_failed`)."""
        ctx = self._ctx(now)
        self._calls.reduce_check_failed(ctx, call, error, outcome)
        return ctx.out.commands

    def on_intent_written(self, call: int, journal_id: int, *, now: float) -> list[Command]:
        """The intent is durable: the call may be sent."""
        ctx = self._ctx(now)
        self.health.say_recovered(ctx.out)
        c = self._calls.intent_written(ctx, call, journal_id)
        if c is not None:
            self.calls_sent += 1
            # A call after a failed one waited out its back-off: apart from reaction latency.
            self.observer.observe_latency(
                now - c.control.changed_at, retry=c.control.failures > 0, account=c.key[0]
            )
            send_command(call, c, journal_id, now, ctx.out)
        return ctx.out.commands

    def on_intent_failed(self, call: int, error: str, *, now: float) -> list[Command]:
        """No durable intent, so no call: the position retries with back-off."""
        ctx = self._ctx(now)
        self.health.say_failed(error, "intent", ctx.out)
        c = self._calls.intent_failed(ctx, call, error)
        if c is not None:
            self.observer.inc_adjustment("journal_failed", account=c.key[0])
        return ctx.out.commands

    def on_result_written(self, journal_id: int, *, now: float) -> list[Command]:
        ctx = self._ctx(now)
        self.health.unwritten.pop(journal_id, None)
        self.health.say_recovered(ctx.out)
        return ctx.out.commands

    def on_result_failed(self, result: WriteResult, error: str, *, now: float) -> list[Command]:
        """The call's answer is known here but not on disk: keep it and write it again later.

        Until then the entry stays ``pending``, which a restart reads as unknown (a re-read):
        never unsafe, only slower."""
        ctx = self._ctx(now)
        self.health.say_failed(error, "result", ctx.out)
        self.health.unwritten[result.journal_id] = result
        self.health.storage_failures += 1
        ctx.out.add(SetTimer(STORAGE_KEY, now + ctx.backoff(self.health.storage_failures)))
        return ctx.out.commands

    def on_call_done(self, call: int, outcome: Outcome, *, now: float) -> list[Command]:
        """The answer of a :class:`SendMarginCall`."""
        ctx = self._ctx(now)
        c = self._calls.done(ctx, call, outcome)
        if c is None:
            return []
        self.observer.inc_adjustment(outcome.label, account=c.key[0])
        return ctx.out.commands

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
        ctx = self._ctx(now)
        out = ctx.out
        control = self._controls.get(key)
        _, changes = reconcile_book(self.book, key[0], positions, key[1], out)
        if control is None:
            self._handle_changes(ctx, changes)
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
            delay = ctx.backoff_delay(key, control, pending.code or "unknown")
        control.cooldown_until = now + delay
        self._handle_changes(ctx, changes)
        if self._controls.get(key) is control:
            set_timer(key, control, now + delay, out)
        return out.commands

    def on_resolve_failed(self, key: PositionKey, error: str, *, now: float) -> list[Command]:
        ctx = self._ctx(now)
        ctx.out.warning(
            "reconcile.failed", account=key[0], instId=key[1], trigger="resolve", error=error
        )
        control = self._controls.get(key)
        if control is not None:
            control.in_flight = False
            control.failures += 1
            ctx.retry_later(key, control, "resolve")
        return ctx.out.commands

    def on_task_failed(self, command: Command, error: str, *, now: float) -> list[Command]:
        """A task the shell ran for ``command`` raised (a bug): nothing may stay in flight."""
        ctx = self._ctx(now)
        self.health.internal_error(error, now)
        handler = self._task_failures.get(type(command))
        if handler is not None:
            handler(ctx, command, error)
        return ctx.out.commands

    def _send_failed(self, ctx: Ctx, command: SendMarginCall, error: str) -> None:
        self._calls.task_failed(command.call, refund=False)
        self._key_failed(ctx, command, error)

    def _before_send_failed(self, ctx: Ctx, command: CheckReduce | WriteIntent, error: str) -> None:
        self._calls.task_failed(command.call, refund=True)
        self._key_failed(ctx, command, error)

    def _key_failed(self, ctx: Ctx, command: Any, error: str) -> None:
        control = self._controls.get(command.key)
        if control is not None:
            control.in_flight = False
            control.failures += 1
            control.status, control.reason = Status.ERROR, f"internal error: {error[:120]}"
            ctx.retry_later(command.key, control, "internal")

    # ------------------------------------------------------------------ changes and evaluation

    def _handle_changes(
        self, ctx: Ctx, changes: list[BookChange], *, baseline: bool = True
    ) -> None:
        """``baseline``: the changes come from a snapshot or a REST read, not an event push."""
        for change in changes:
            key = change.key
            self.fills.on_change(ctx, change, baseline=baseline)
            if change.kind is not ChangeKind.UPDATED:
                self._main_below = watch_main_positions(ctx, key[0], self._main_below)
            if change.kind is ChangeKind.CLOSED:
                ctx.drop(key)
                continue
            if change.kind is ChangeKind.REOPENED:
                ctx.drop(key)
            control = self._controls.get(key)
            if control is not None:
                note_push(ctx, key, control, change)
                if change.kind is ChangeKind.UPDATED and still_in_band(control, change):
                    continue
            ctx.schedule(key)

    def count_for(self, pos: Position) -> int:
        """The ledger's count plus maintenances seen on ``orders`` not yet written to it."""
        return self.counts.count(pos)

    def sources_for(self, pos: Position) -> dict[str, int]:
        """Where the counted records came from (cached with the count; no I/O)."""
        return self.counts.sources(pos)

    def _view_sources(self, pos: Position) -> tuple[tuple[str, int], ...]:
        return tuple(sorted(self.sources_for(pos).items()))

    def _evaluate(self, ctx: Ctx, key: PositionKey) -> Action | None:
        """Decide for one position now and start what is due (a call, a re-read, a fetch)."""
        now, out = ctx.now, ctx.out
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
            set_timer(key, control, control.cooldown_until, out)
            return None
        if control.bills_wait_until > now:
            set_timer(key, control, control.bills_wait_until, out)
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
        if held_foreign(ctx, self.foreign, pos, control) or self.fills.holds(ctx, pos, control):
            return None
        ct_val = self.ct_vals.get(pos.inst_id)
        if ct_val is None:
            self._fetches.need(ctx, pos, control)
            return None
        try:
            count = self.count_for(pos)
        except StorageError as exc:
            self.health.say_failed(str(exc), "count", out)
            control.failures += 1
            control.status, control.reason = Status.ERROR, f"ledger read failed: {exc}"
            ctx.retry_later(key, control, "ledger")
            return None
        rule = target_for(count, self.settings.policy.targets)
        control.count, control.target = count, rule.target
        control.band = (rule.band_lo, rule.band_hi)
        action = decide(pos, ct_val, count, self.settings.policy, step_cap=control.step_cap)
        track_blocked(pos, control, action, out)
        if action.kind is ActionKind.NONE:
            control.status, control.reason = Status.OK, action.reason
            control.step_cap = None
            return action
        if action.kind is ActionKind.BLOCKED:
            control.status, control.reason = Status.BLOCKED, action.reason
            return action
        check = self.guard.check(key, action.amount, now)
        if not guard_allows(ctx, check, pos, control, action):
            return action
        if self.settings.dry_run:
            dry_run(ctx, pos, control, action, count)
            return action
        call, c = self._calls.open(key, control, pos, action, check.entry)
        control.in_flight = True
        control.status, control.reason = Status.ADJUSTING, action.reason
        control.last_acted = now
        if self.settings.pre_reduce_check and action.kind is ActionKind.REDUCE:
            out.add(CheckReduce(call, key, action.amount, pos.lever))
        else:
            self._write_intent(ctx, call, c)
        return action

    def _write_intent(self, ctx: Ctx, call: int, c: Call) -> None:
        self.health.retry_results(ctx.out)  # results a failed write left behind go first
        ctx.out.add(intent_command(call, c))

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
