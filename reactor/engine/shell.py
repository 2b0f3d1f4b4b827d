"""The asyncio shell of the engine: feeds the core and carries out its commands.

It is the WebSocket sessions' ``SessionHandler``. Timers become ``loop.call_at`` handles, journal
writes go to the ledger synchronously (the intent is committed before the call leaves), exchange
calls and reads run as tasks whose answers go back into the core. Every task's exception is
logged as ``engine.task.failed`` and handed to the core, so nothing stays in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from reactor.domain.book import PositionBook
from reactor.domain.fills import FillGate
from reactor.engine.bill_reads import EXCHANGE_ERRORS, STORAGE_ERRORS, BillReader
from reactor.engine.calls import OK, Outcome, OutcomeKind, outcome_of
from reactor.engine.commands import (
    CancelTimer,
    CheckReduce,
    Command,
    FetchInstrument,
    Log,
    ReadBills,
    ReadPositions,
    RecoverFills,
    ResolveOutcome,
    SendMarginCall,
    SetTimer,
    SyncClock,
    WriteIntent,
    WriteMaintenance,
    WriteResult,
)
from reactor.engine.core import EngineCore
from reactor.engine.fill_recovery import LedgerCounts, recover_for
from reactor.engine.reconcile import parse_rest_positions
from reactor.engine.state import (
    AccountState,
    EngineObserver,
    EngineSettings,
    MarginClient,
    PauseKey,
)
from reactor.engine.view import EngineView
from reactor.log import error_text, get_logger
from reactor.okx.bills import Bill
from reactor.okx.errors import AmbiguousOutcome, OkxError, RequestNotSent
from reactor.okx.models import (
    PayloadError,
    Position,
    PositionKey,
    finite_decimal,
    parse_instrument,
)
from reactor.okx.orders import OrderUpdate
from reactor.store import Ledger, LedgerError

log = get_logger("reactor.engine")

HOUR_S = 3600.0


class Engine:
    """Event-driven margin controller: the core plus the I/O it asks for."""

    def __init__(
        self,
        settings: EngineSettings,
        accounts: Mapping[str, AccountState],
        ct_vals: Mapping[str, Decimal],
        ledger: Ledger,
        *,
        book: PositionBook | None = None,
        observer: EngineObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        fills: FillGate | None = None,
        recovery_sources: tuple[str, ...] = ("bills",),
    ) -> None:
        self.ledger = ledger
        self.core = EngineCore(
            settings,
            accounts,
            ct_vals,
            LedgerCounts(ledger),
            book=book,
            observer=observer,
            fills=fills,
            bills_since_ms=int(time.time() * 1000),  # OKX's bills are in wall-clock ms
        )
        self._fills = fills
        self._recovery_sources = recovery_sources
        self._clock = clock
        self._timers: dict[PositionKey, asyncio.TimerHandle | asyncio.Handle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False  # drain() began: no new exchange call starts
        self._bills = BillReader(ledger, self.core.bill_window, settings, self.core.accounts)
        self._handlers = self._command_handlers()

    # -- the core's state, for the app, tests and the benchmark ---------------------------

    @property
    def settings(self) -> EngineSettings:
        return self.core.settings

    @property
    def accounts(self) -> dict[str, AccountState]:
        return self.core.accounts

    @property
    def book(self) -> PositionBook:
        return self.core.book

    @property
    def ct_vals(self) -> dict[str, Decimal]:
        return self.core.ct_vals

    @property
    def calls_sent(self) -> int:
        return self.core.calls_sent

    def view(self) -> EngineView:
        """Read-only state for the status page (:mod:`reactor.status.snapshot`)."""
        return self.core.view(self._clock())

    # -- start-up / shutdown --------------------------------------------------------------

    def recover_journal(self) -> int:
        """Intents without a result are calls a crash left unanswered: mark them unknown (their
        positions are re-read before anything is sent) and refill the runaway guard."""
        pending = self.ledger.pending_intents()
        for entry in pending:
            self.ledger.journal_result(entry.id, "unknown", None, "no result before restart")
        wall_now = time.time()
        recent = self.ledger.journal_since(int((wall_now - HOUR_S) * 1000))
        self._run(self.core.recover(pending, recent, now=self._clock(), wall_now=wall_now))
        return len(pending)

    async def drain(self, timeout_s: float) -> None:
        """Let in-flight calls finish; calls cancelled at the deadline are journaled unknown."""
        self._stopping = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        tasks = list(self._tasks)
        if not tasks:
            return
        _, still = await asyncio.wait(tasks, timeout=timeout_s)
        for task in still:
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)

    # -- SessionHandler -------------------------------------------------------------------

    def on_connected(self, account: str) -> None:
        self._run(self.core.on_connected(account, now=self._clock()))

    def on_snapshot(
        self,
        account: str,
        positions: list[Position],
        *,
        last_page: bool,
        cur_page: int | None = None,
    ) -> None:
        self._run(
            self.core.on_snapshot(
                account, positions, last_page=last_page, cur_page=cur_page, now=self._clock()
            )
        )

    def on_update(self, account: str, positions: list[Position]) -> None:
        self._run(self.core.on_update(account, positions, now=self._clock()))

    def on_disconnected(self, account: str, reason: str) -> None:
        self._run(self.core.on_disconnected(account, reason, now=self._clock()))

    def on_stopped(self, account: str, reason: str) -> None:
        self._run(self.core.on_stopped(account, reason, now=self._clock()))

    def on_orders(self, account: str, orders: list[OrderUpdate]) -> None:
        self._run(self.core.on_orders(account, orders, now=self._clock()))

    # -- other inputs ---------------------------------------------------------------------

    def on_counts_changed(self, keys: Iterable[tuple[str, str, str]]) -> None:
        """The ledger gained maintenance records: the target may have moved."""
        try:
            self._run(self.core.on_counts_changed(keys, now=self._clock()))
        except Exception as exc:  # a bug must not end the caller's loop silently
            log.exception("engine.task.failed", what="on_counts_changed", error=error_text(exc))

    def on_account_enabled(self, state: AccountState) -> None:
        """A config reload added or enabled an account (its session is started by the app)."""
        self._run(self.core.on_account_enabled(state, now=self._clock()))

    def on_account_disabled(self, account: str, *, removed: bool) -> None:
        """A config reload disabled or removed an account (its session is stopped by the app)."""
        self._run(self.core.on_account_disabled(account, removed=removed, now=self._clock()))

    def on_paused(self, paused: Mapping[PauseKey, str]) -> None:
        """The operator's pauses now (the whole set): see :meth:`EngineCore.on_paused`."""
        try:
            self._run(self.core.on_paused(paused, now=self._clock()))
        except Exception as exc:  # a bug must not end the caller's loop silently
            log.exception("engine.task.failed", what="on_paused", error=error_text(exc))

    async def reconcile_account(self, account: str, *, trigger: str = "interval") -> int:
        """Compare a REST read of ``account`` with the book and correct it; returns drifts.

        Never raises (the app's reconcile loop must not die): a bug is ``engine.task.failed``.
        """
        try:
            return await self._reconcile_account(account, trigger)
        except Exception as exc:
            error = error_text(exc)
            log.exception("engine.task.failed", what="reconcile", account=account, error=error)
            cmd = ReadPositions(account, trigger)
            self._run(self.core.on_task_failed(cmd, error, now=self._clock()))
            return 0

    async def _reconcile_account(self, account: str, trigger: str) -> int:
        state = self.accounts.get(account)
        if state is None or state.client is None or not self.book.is_fresh(account):
            return 0
        try:
            raw = await state.client.get_positions("SWAP")
        except EXCHANGE_ERRORS as exc:
            self._run(self.core.on_read_failed(account, trigger, str(exc), now=self._clock()))
            return 0
        positions = self._parse(account, raw)
        commands = self.core.on_positions_read(account, positions, trigger, now=self._clock())
        drifts = sum(1 for c in commands if isinstance(c, Log) and c.event == "book.drift")
        self._run(commands)
        if trigger == "interval":
            await self.read_bills(account, "interval")
        return drifts

    # -- carrying out commands ------------------------------------------------------------

    def _run(self, commands: Sequence[Command]) -> None:
        queue = deque(commands)
        while queue:
            more = self._execute(queue.popleft())
            if more:
                queue.extend(more)

    def _execute(self, cmd: Command) -> list[Command] | None:
        handler = self._handlers.get(type(cmd))
        if handler is None:
            raise TypeError(f"unknown engine command {cmd!r}")
        return handler(cmd)

    def _command_handlers(self) -> dict[type[Any], Callable[[Any], list[Command] | None]]:
        """One handler per command type: synchronous ones answer at once, the exchange's run
        as tasks whose answers go back into the core."""

        def task(run: Callable[[Any], Coroutine[Any, Any, None]]) -> Callable[[Any], None]:
            return lambda cmd: self._spawn(run(cmd), cmd)

        return {
            Log: lambda cmd: getattr(log, cmd.level)(cmd.event, **cmd.fields),
            SetTimer: lambda cmd: self._set_timer(cmd.key, cmd.at),
            CancelTimer: self._cancel_timer,
            WriteIntent: self._write_intent,
            WriteResult: self._write_result,
            WriteMaintenance: self._write_maintenance,
            SendMarginCall: self._start_send,
            CheckReduce: self._start_check,
            ReadBills: task(lambda cmd: self.read_bills(cmd.account, cmd.trigger)),
            ResolveOutcome: task(self._resolve),
            ReadPositions: task(self._reconcile),
            FetchInstrument: task(self._fetch_instrument),
            SyncClock: task(self._sync_clock),
            RecoverFills: task(self._recover_fills),
        }

    def _cancel_timer(self, cmd: CancelTimer) -> None:
        handle = self._timers.pop(cmd.key, None)
        if handle is not None:
            handle.cancel()

    def _start_send(self, cmd: SendMarginCall) -> list[Command] | None:
        if self._stopping:  # a check answered while draining: the call is not started
            stopped = Outcome(OutcomeKind.NOT_SENT, "not_sent")
            return self.core.on_call_done(cmd.call, stopped, now=self._clock())
        self._spawn(self._send(cmd), cmd)
        return None

    def _start_check(self, cmd: CheckReduce) -> list[Command] | None:
        if self._stopping:
            return self.core.on_reduce_check_failed(cmd.call, "stopping", now=self._clock())
        self._spawn(self._check_reduce(cmd), cmd)
        return None

    def _set_timer(self, key: PositionKey, at: float) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        loop = self._running_loop()
        delay = at - self._clock()
        if delay <= 0:
            self._timers[key] = loop.call_soon(self._fire, key)
        else:
            self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: PositionKey) -> None:
        self._timers.pop(key, None)
        now = self._clock()
        try:
            commands = self.core.on_timer(key, now=now)
        except Exception as exc:  # a bug in the core: log it, never leave the position stuck
            log.exception("engine.task.failed", what="timer", **_key_fields(key))
            commands = self.core.on_task_failed(SetTimer(key, now), error_text(exc), now=now)
        self._run(commands)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _spawn(self, coro: Coroutine[Any, Any, None], cmd: Command) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(t, cmd))

    def _task_done(self, task: asyncio.Task[None], cmd: Command) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        fields = _key_fields(getattr(cmd, "key", None))
        if isinstance(cmd, (ReadPositions, FetchInstrument, SyncClock, ReadBills)):
            fields["account"] = cmd.account
        log.error(
            "engine.task.failed",
            what=type(cmd).__name__,
            **fields,
            error=error_text(exc),
            exc_info=exc,
        )
        self._run(self.core.on_task_failed(cmd, error_text(exc), now=self._clock()))

    # -- journal --------------------------------------------------------------------------

    def _write_intent(self, cmd: WriteIntent) -> list[Command]:
        account, inst_id, pos_side = cmd.key[0], cmd.key[1], cmd.key[2]
        try:
            journal_id = self.ledger.journal_intent(
                account, inst_id, pos_side, cmd.action, format(cmd.amount, "f"), cmd.request
            )
        except STORAGE_ERRORS as exc:
            return self.core.on_intent_failed(cmd.call, error_text(exc), now=self._clock())
        return self.core.on_intent_written(cmd.call, journal_id, now=self._clock())

    def _write_result(self, cmd: WriteResult) -> list[Command]:
        try:
            self.ledger.journal_result(cmd.journal_id, cmd.status, cmd.code, cmd.msg)
        except STORAGE_ERRORS as exc:
            return self.core.on_result_failed(cmd, error_text(exc), now=self._clock())
        return self.core.on_result_written(cmd.journal_id, now=self._clock())

    def _write_maintenance(self, cmd: WriteMaintenance) -> list[Command]:
        """Synchronous, like the journal: the count is durable before the next evaluation."""
        rec = cmd.record
        try:
            row = self.ledger.record(
                rec.account,
                rec.inst_id,
                rec.pos_side,
                rec.key,
                source="fill",
                c_time=rec.c_time,
                ord_id=rec.ord_id,
            )
        except ValueError as exc:  # a record the ledger can never take: dropped, said once
            return self.core.on_maintenance_failed(
                rec, error_text(exc), now=self._clock(), retry=False
            )
        except (*STORAGE_ERRORS, LedgerError) as exc:
            return self.core.on_maintenance_failed(rec, error_text(exc), now=self._clock())
        return self.core.on_maintenance_written(
            rec, None if row is None else row.id, now=self._clock()
        )

    # -- exchange tasks -------------------------------------------------------------------

    async def _recover_fills(self, cmd: RecoverFills) -> None:
        """Missed maintenances from OKX's trade bills (and order history when configured)."""
        rule = None if self._fills is None else self._fills.rule
        client = self._client(cmd.account)
        found = await recover_for(cmd, client, self.ledger, rule, self._recovery_sources)
        if isinstance(found, str):
            self._run(self.core.on_fills_recovery_failed(cmd.account, found, now=self._clock()))
        else:
            self._run(self.core.on_fills_recovered(cmd.account, found, now=self._clock()))

    def _client(self, account: str) -> MarginClient:
        state = self.accounts.get(account)
        if state is None or state.client is None:
            raise RuntimeError(f"no REST client for account {account!r}")
        return state.client

    async def _send(self, cmd: SendMarginCall) -> None:
        client = self._client(cmd.key[0])
        try:
            await client.margin_balance(cmd.key[1], cmd.key[2], cmd.action, cmd.amount)
            outcome = OK
        except (AmbiguousOutcome, RequestNotSent, OkxError, ValueError) as exc:
            outcome = outcome_of(exc)
        except asyncio.CancelledError:
            self._run([WriteResult(cmd.journal_id, "unknown", None, "cancelled at shutdown")])
            log.error(
                "margin.adjust.unknown",
                **_key_fields(cmd.key),
                action=cmd.action,
                amount=str(cmd.amount),
                journal_id=cmd.journal_id,
                error="cancelled",
            )
            raise
        self._run(self.core.on_call_done(cmd.call, outcome, now=self._clock()))

    async def _check_reduce(self, cmd: CheckReduce) -> None:
        """OKX's own reduce limit: ``estAvailTrans`` at the position's current leverage."""
        key = cmd.key
        outcome: Outcome | None = None
        if cmd.lever is None:
            error = "position has no lever"
        else:
            try:
                info = await self._client(key[0]).adjust_leverage_info(key[1], cmd.lever, key[2])
            except (*EXCHANGE_ERRORS, ValueError) as exc:
                error, outcome = str(exc), outcome_of(exc)
            else:
                cap = finite_decimal(info.get("estAvailTrans"))
                if cap is not None and cap >= 0:
                    self._run(self.core.on_reduce_checked(cmd.call, cap, now=self._clock()))
                    return
                error = f"estAvailTrans not a number: {str(info.get('estAvailTrans'))[:40]!r}"
        now = self._clock()
        empty = outcome is None and cmd.lever is not None  # answered, without a number
        self._run(
            self.core.on_reduce_check_failed(cmd.call, error, now=now, outcome=outcome, empty=empty)
        )

    async def _resolve(self, cmd: ResolveOutcome) -> None:
        """An ambiguous call: the bills decide when they can (:meth:`BillReader.resolve`);
        without a bill the margin comparison of a positions re-read (read after the bills)."""
        key = cmd.key
        client = self._client(key[0])
        bill, note = await self._bills.resolve(client, key, cmd.pending)
        try:
            raw = await client.get_positions("SWAP", key[1])
        except EXCHANGE_ERRORS as exc:
            self._run(self.core.on_resolve_failed(key, str(exc), now=self._clock()))
            return
        positions = self._parse(key[0], raw)
        self._run(
            self.core.on_resolved(
                key,
                positions,
                now=self._clock(),
                bill_applied=True if bill is not None else None,
                bill_id=None if bill is None else bill.bill_id,
                bills=note,
            )
        )

    async def read_bills(self, account: str, trigger: str) -> None:
        """Read the account's bills; the foreign transfers go to the core
        (:meth:`BillReader.read`)."""

        def answer(trigger: str, result: list[Bill] | str) -> None:
            now = self._clock()
            if isinstance(result, str):
                self._run(self.core.on_bills_failed(account, trigger, result, now=now))
            else:
                self._run(self.core.on_bills_read(account, result, trigger, now=now))

        await self._bills.read(account, trigger, answer)

    async def _reconcile(self, cmd: ReadPositions) -> None:
        await self.reconcile_account(cmd.account, trigger=cmd.trigger)

    async def _fetch_instrument(self, cmd: FetchInstrument) -> None:
        try:
            raw = await self._client(cmd.account).get_instruments("SWAP", cmd.inst_id)
            found = [parse_instrument(r) for r in raw]
            ct_val = next((i.ct_val for i in found if i.inst_id == cmd.inst_id), None)
            error = None if ct_val is not None else "not listed"
        except (*EXCHANGE_ERRORS, PayloadError) as exc:
            ct_val, error = None, str(exc)
        self._run(self.core.on_instrument(cmd.inst_id, ct_val, error, now=self._clock()))

    async def _sync_clock(self, cmd: SyncClock) -> None:
        try:
            offset = await self._client(cmd.account).sync_clock()
        except EXCHANGE_ERRORS as exc:
            log.warning("rest.clock.resync", account=cmd.account, error=str(exc))
            return
        log.info("rest.clock.resync", account=cmd.account, offset_s=round(offset, 3))

    def _parse(self, account: str, raw: list[dict[str, Any]]) -> list[Position]:
        positions, errors = parse_rest_positions(account, raw)
        for reason in errors:
            log.warning("rest.payload.invalid", account=account, what="position", reason=reason)
        return positions


def _key_fields(key: PositionKey | None) -> dict[str, str]:
    if key is None or not key[0]:
        return {}
    return {"account": key[0], "instId": key[1], "posSide": key[2]}
