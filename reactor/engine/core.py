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
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec

from reactor.domain.book import BookChange, ChangeKind, PositionBook
from reactor.domain.fills import FillGate, RecordMaintenance
from reactor.domain.policy import Action, decide, target_for
from reactor.engine import commands as cmd
from reactor.engine.calls import (
    CallTable,
    Outcome,
    internal_failure,
)
from reactor.engine.commands import Command, ResolveOutcome, WriteResult
from reactor.engine.episodes import settle_decision, watch_main_positions
from reactor.engine.fills import FILLS_KEY, MaintenanceCounts, MaintenanceFills
from reactor.engine.foreign import (
    BillWindow,
    ForeignWatch,
    bills_failed,
    bills_read,
    drift_waits,
    held_foreign,
)
from reactor.engine.guard import RunawayGuard, seed_guard
from reactor.engine.health import STORAGE_KEY, EngineHealth
from reactor.engine.instruments import InstrumentFetches
from reactor.engine.reconcile import (
    BillVerdict,
    Unanswered,
    positions_read,
    read_failed,
    read_refused,
    resolve_failed,
    resolved,
    snapshot_done,
)
from reactor.engine.state import (
    AccountState,
    CountSource,
    EngineObserver,
    EngineSettings,
    NullObserver,
    PauseKey,
    PositionControl,
)
from reactor.engine.timing import (
    Ctx,
    apply_pauses,
    backoff_for,
    note_push,
    refused,
    schedule_snapshot,
    set_timer,
    still_in_band,
    waits,
)
from reactor.engine.view import EngineView, build_view
from reactor.okx.bills import Bill
from reactor.okx.models import Position, PositionKey
from reactor.okx.orders import OrderUpdate

if TYPE_CHECKING:
    from reactor.store import JournalEntry

__all__ = ["STORAGE_KEY", "EngineCore"]

_P = ParamSpec("_P")


class EngineCore:
    """Margin control over a :class:`PositionBook`. Every ``on_*`` input returns commands; the
    inputs of a feature are handled by its part (the docstrings there say what each means)."""

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
        bills_since_ms: int = 0,
    ) -> None:
        self.settings = settings
        self.accounts = dict(accounts)
        self.ct_vals = dict(ct_vals)
        self.book = book or PositionBook()
        self.observer: EngineObserver = observer or NullObserver()
        self.guard = RunawayGuard(settings.max_moved_per_hour, settings.position_limit)
        self._rand = rand
        self._backoff = backoff_for(settings)
        self._controls: dict[PositionKey, PositionControl] = {}
        self._cross_logged: set[PositionKey] = set()
        self._unanswered = Unanswered()
        self._main_below = False
        self._fetches = InstrumentFetches(self.ct_vals)
        self.health = EngineHealth(settings.internal_error_window_s)
        self._calls = CallTable(self.guard, self.health)
        self.foreign = ForeignWatch(
            settings.foreign_transfer_limit, settings.foreign_transfer_window_s
        )
        # The foreign-transfer reads' cursor and judged bills (the shell does the reads).
        self.bill_window = BillWindow(bills_since_ms, settings.bill_skew_ms)
        # Operator pauses (account-wide keys have inst_id/pos_side None) -> reason.
        self._paused: dict[PauseKey, str] = {}
        # Counts from fills: the no-race gate, maintenances seen but not yet in the
        # ledger (they count meanwhile), accounts whose missed fills are being recovered.
        self.counts = MaintenanceCounts(counts)
        self.fills = MaintenanceFills(fills, self.counts)
        # A task that raised (a bug): the answer that keeps nothing in flight, by command.
        self._task_failures: dict[type[Any], Callable[[Ctx, Any, str], None]] = {
            cmd.SendMarginCall: self._calls.task_failed,
            cmd.CheckReduce: self._calls.task_failed,
            cmd.WriteIntent: self._calls.task_failed,
            cmd.ResolveOutcome: lambda ctx, c, e: internal_failure(ctx, c.key, e),
            cmd.SetTimer: lambda ctx, c, e: internal_failure(ctx, c.key, e),
            cmd.FetchInstrument: self._fetches.task_failed,
            cmd.ReadBills: lambda ctx, c, e: bills_failed(ctx, c.account, c.trigger, e),
            cmd.RecoverFills: self.fills.task_failed,
        }

    @property
    def calls_sent(self) -> int:
        """Margin calls sent since start (the benchmark and the status page read it)."""
        return self._calls.sent

    def _ctx(self, now: float) -> Ctx:
        return Ctx(
            self.book,
            self._controls,
            self.accounts,
            self.settings,
            self._paused,
            lambda failures: self._backoff.delay(failures, self._rand),
            now,
            observer=self.observer,
        )

    def _input(
        self,
        now: float,
        handle: Callable[Concatenate[Ctx, _P], object],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> list[Command]:
        """Run one input's handler (its feature part's) with a fresh :class:`Ctx`; the commands
        it asked for."""
        ctx = self._ctx(now)
        handle(ctx, *args, **kwargs)
        return ctx.out.commands

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
        self._unanswered.recover(unanswered, now, ctx.out)
        seed_guard(self.guard, recent, self.accounts, now, wall_now, ctx.out)
        return ctx.out.commands

    # ------------------------------------------------------------------ session inputs

    def on_connected(self, account: str, *, now: float) -> list[Command]:
        state = self.accounts.get(account)
        if state is not None:
            state.connect()
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
            first = snapshot_done(ctx, account, self.fills)
            self._unanswered.forget_gone(self.book, account)
            self._main_below = watch_main_positions(ctx, account, self._main_below)
            schedule_snapshot(ctx, account, first=first)
        self._handle_changes(ctx, changes)
        return out.commands

    def on_update(
        self, account: str, positions: Sequence[Position], *, now: float
    ) -> list[Command]:
        changes = self.book.apply_update(account, positions)
        return self._input(now, self._handle_changes, changes, baseline=False)

    def _lost(self, account: str) -> AccountState | None:
        """The account's stream is gone: its book is stale until the next snapshot."""
        self.book.mark_stale(account)
        return self.accounts.get(account)

    def on_disconnected(self, account: str, reason: str, *, now: float) -> list[Command]:
        if self._lost(account) is not None:
            self.observer.inc_reconnect(account, reason)
        return self._input(now, self.fills.on_account_lost, account)

    def on_stopped(self, account: str, reason: str, *, now: float) -> list[Command]:
        state = self._lost(account)
        if state is not None:
            state.stopped_reason = reason
        return []

    # ------------------------------------------------------------------ other inputs

    def on_counts_changed(
        self, keys: Iterable[tuple[str, str, str]], *, now: float
    ) -> list[Command]:
        return self._input(now, self.counts.changed, keys)

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
        state = self._lost(account)
        if state is not None:
            state.enabled = False
        ctx.drop_account(account)
        if removed:
            self.accounts.pop(account, None)
            self.book.forget(account)
        return ctx.out.commands

    def on_paused(self, paused: Mapping[PauseKey, str], *, now: float) -> list[Command]:
        return self._input(now, apply_pauses, paused)

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

    # ----------------------------------------- fills (:class:`MaintenanceFills` handles them)

    def on_orders(
        self, account: str, orders: Sequence[OrderUpdate], *, now: float
    ) -> list[Command]:
        return self._input(now, self.fills.on_orders, account, orders)

    def on_maintenance_written(
        self, record: RecordMaintenance, record_id: int | None, *, now: float
    ) -> list[Command]:
        return self._input(now, self.fills.written, record, record_id)

    def on_maintenance_failed(
        self, record: RecordMaintenance, error: str, *, now: float, retry: bool = True
    ) -> list[Command]:
        return self._input(now, self.fills.write_failed, record, error, retry)

    def on_fills_recovered(
        self, account: str, keys: Iterable[PositionKey], *, now: float
    ) -> list[Command]:
        return self._input(now, self.fills.recovered, account, keys)

    def on_fills_recovery_failed(self, account: str, error: str, *, now: float) -> list[Command]:
        return self._input(now, self.fills.recovery_failed, account, error)

    # ------------------- reads (:mod:`.reconcile`, :mod:`.instruments`, :mod:`.foreign`)

    def on_positions_read(
        self, account: str, positions: Sequence[Position], trigger: str, *, now: float
    ) -> list[Command]:
        return self._input(
            now,
            lambda ctx: self._handle_changes(ctx, positions_read(ctx, account, positions, trigger)),
        )

    def on_read_failed(
        self, account: str, trigger: str, error: str, *, now: float
    ) -> list[Command]:
        return self._input(now, read_failed, account, trigger, error)

    def on_read_refused(
        self, account: str, what: str, outcome: Outcome, *, now: float
    ) -> list[Command]:
        """OKX refused a read: what its class means (:func:`reconcile.read_refused`)."""
        return self._input(now, read_refused, account, what, outcome)

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
        """:func:`reconcile.resolved`; ``bills`` says why the bills could not decide."""
        ctx = self._ctx(now)
        verdict = BillVerdict(bill_applied, bill_id, bills)
        changes, wake = resolved(ctx, key, positions, self._unanswered, verdict)
        self._handle_changes(ctx, changes)
        if wake is not None and self._controls.get(key) is wake[0]:
            set_timer(key, wake[0], wake[1], ctx.out)
        return ctx.out.commands

    def on_resolve_failed(self, key: PositionKey, error: str, *, now: float) -> list[Command]:
        return self._input(now, resolve_failed, key, error)

    def on_instrument(
        self, inst_id: str, ct_val: Decimal | None, error: str | None, *, now: float
    ) -> list[Command]:
        return self._input(now, self._fetches.answered, inst_id, ct_val, error)

    def on_bills_read(
        self, account: str, foreign: Sequence[Bill], trigger: str, *, now: float
    ) -> list[Command]:
        return self._input(now, bills_read, self.foreign, account, foreign, trigger)

    def on_bills_failed(
        self, account: str, trigger: str, error: str, *, now: float
    ) -> list[Command]:
        return self._input(now, bills_failed, account, trigger, error)

    # -------------------- a call's answers (:class:`CallTable`), storage (:class:`EngineHealth`)

    def on_reduce_checked(self, call: int, cap: Decimal | None, *, now: float) -> list[Command]:
        return self._input(now, self._calls.reduce_checked, call, cap)

    def on_reduce_check_failed(
        self, call: int, error: str, *, now: float, outcome: Outcome | None = None
    ) -> list[Command]:
        return self._input(now, self._calls.reduce_check_failed, call, error, outcome)

    def on_reduce_check_empty(self, call: int, error: str, *, now: float) -> list[Command]:
        """OKX answered without a number: the reduce goes on up to the local bound."""
        return self._input(now, self._calls.reduce_check_failed, call, error, empty=True)

    def on_intent_written(self, call: int, journal_id: int, *, now: float) -> list[Command]:
        return self._input(now, self._calls.intent_written, call, journal_id)

    def on_intent_failed(self, call: int, error: str, *, now: float) -> list[Command]:
        return self._input(now, self._calls.intent_failed, call, error)

    def on_call_done(self, call: int, outcome: Outcome, *, now: float) -> list[Command]:
        return self._input(now, self._calls.done, call, outcome)

    def on_result_written(self, journal_id: int, *, now: float) -> list[Command]:
        return self._input(now, self.health.result_written, journal_id)

    def on_result_failed(self, result: WriteResult, error: str, *, now: float) -> list[Command]:
        return self._input(now, self.health.result_failed, result, error)

    def on_task_failed(self, command: Command, error: str, *, now: float) -> list[Command]:
        """A task the shell ran for ``command`` raised (a bug): nothing may stay in flight."""
        self.health.internal_error(error, now)
        handler = self._task_failures.get(type(command))
        return self._input(now, lambda ctx: handler and handler(ctx, command, error))

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
                if note_push(ctx, key, control, change):
                    drift_waits(ctx, self.foreign, key, control)
                if change.kind is ChangeKind.UPDATED and still_in_band(control, change):
                    continue
            ctx.schedule(key)

    def _evaluate(self, ctx: Ctx, key: PositionKey) -> Action | None:
        """Decide for one position now and start what is due (a call, a re-read, a fetch)."""
        out = ctx.out
        pos = self.book.get(key)
        control = self._controls.get(key)
        if pos is None or control is None:
            return None
        if refused(ctx, pos, control, self._cross_logged) or waits(ctx, key, control):
            return None
        if control.expected_margin is not None and control.pending is None:
            control.reread = True  # an ok call no push confirmed within the cooldown
        unknown = self._unanswered.claim(key, control)
        if control.pending is not None or control.reread or unknown:
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
        count = self.counts.read(ctx, pos, control, self.health)
        if count is None:
            return None
        rule = target_for(count, self.settings.policy.targets)
        control.count, control.target = count, rule.target
        control.band = (rule.band_lo, rule.band_hi)
        action = decide(pos, ct_val, count, self.settings.policy, step_cap=control.step_cap)
        if settle_decision(pos, control, action, out):
            self._calls.start(ctx, pos, action, count, ct_val)
        return action

    # ------------------------------------------------------------------ status (read-only)

    def view(self, now: float) -> EngineView:
        """What the status page shows; reads engine state, never writes it, never does I/O."""
        return build_view(
            self.accounts.values(),
            self.book,
            self._controls,
            sources=lambda pos: tuple(sorted(self.counts.sources(pos).items())),
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
