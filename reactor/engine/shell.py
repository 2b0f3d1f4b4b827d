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
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from reactor.domain.book import PositionBook
from reactor.domain.fills import FillGate
from reactor.engine import call_sends, instrument_reads, journal_writes, position_reads
from reactor.engine.bill_reads import BillReader, route_answer
from reactor.engine.call_sends import key_fields
from reactor.engine.calls import Outcome, OutcomeKind
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
from reactor.engine.journal_settle import settle_open
from reactor.engine.state import (
    AccountState,
    EngineObserver,
    EngineSettings,
    MarginClient,
    PauseKey,
)
from reactor.engine.timers import PositionTimers, WakeNow
from reactor.engine.view import EngineView
from reactor.log import error_text, get_logger
from reactor.okx.bills import Bill
from reactor.okx.models import Position, PositionKey
from reactor.okx.orders import OrderUpdate
from reactor.store import Ledger

log = get_logger("reactor.engine")

Clock = Callable[[], float]


Handler = Callable[[Any], Sequence[Command | WakeNow] | None]
# Intents in one commit at most (a bound on the statement's size; a push rarely starts more).
INTENTS_PER_COMMIT = 64


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
        self._timers = PositionTimers(self._fire, clock)
        self._tasks: set[asyncio.Task[None]] = set()
        # The core's lines of the batch being carried out (see _run), and whether it started
        # a margin call.
        self._logs: list[Log] = []
        self._sent_in_batch = False
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
        """Mark the calls a crash left unanswered unknown (:func:`journal_writes.recover`)."""
        commands, pending = journal_writes.recover(self.ledger, self.core, self._clock)
        self._run(commands)
        return pending

    async def drain(self, timeout_s: float) -> None:
        """Let in-flight calls finish; calls cancelled at the deadline are journaled unknown."""
        self._stopping = True
        self._timers.cancel_all()
        tasks = list(self._tasks)
        if tasks:
            _, still = await asyncio.wait(tasks, timeout=timeout_s)
            for task in still:
                task.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
        self._write_logs()  # lines of a batch whose sends were the last thing done

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
        commands, drifts = await position_reads.read_positions(
            account, trigger, state.client, self.core, self._clock
        )
        self._run(commands)
        if drifts is None:
            return 0
        if trigger == "interval":
            await self.read_bills(account, "interval")
        if trigger in ("interval", "connect"):  # open journal rows settled from the bills
            skew, wall_ms = self.core.bill_window.skew_ms, int(time.time() * 1000)
            await settle_open(self.ledger, self.accounts, self._bills, skew, wall_ms, only=account)
        return drifts

    # -- carrying out commands ------------------------------------------------------------

    def _run(self, commands: Sequence[Command]) -> None:
        """Carry out the core's commands, and those their answers bring, in order.

        The batch's log lines are written at its end - after the first steps of the margin
        calls it started, when it started any: a line costs ~0.1 ms, and a push with three
        corrections would otherwise hold its calls back by the lines of all three (issue 18).
        The journal, not the log, is the record that must precede a call."""
        queue: deque[Command | WakeNow] = deque(commands)
        try:
            while queue:
                cmd = queue.popleft()
                more: Sequence[Command | WakeNow] | None
                if type(cmd) is WriteIntent:
                    more = self._write_intents(cmd, queue)
                else:
                    more = self._execute(cmd)
                if more:
                    queue.extend(more)
        finally:
            if self._sent_in_batch:
                self._sent_in_batch = False
                asyncio.get_running_loop().call_soon(self._write_logs)  # after the sends
            elif self._logs:
                self._write_logs()

    def _write_intents(self, first: WriteIntent, queue: deque[Command | WakeNow]) -> list[Command]:
        """``first`` and the intents queued right behind it (log lines aside) in one commit:
        the corrections a push started on several positions (issue 18). Their answers join
        the queue's end, where each would have gone alone."""
        batch = [first]
        while queue and type(queue[0]) in (WriteIntent, Log) and len(batch) < INTENTS_PER_COMMIT:
            cmd = queue.popleft()
            if isinstance(cmd, WriteIntent):
                batch.append(cmd)
            else:
                self._execute(cmd)
        return journal_writes.write_intents(batch, self.ledger, self.core, self._clock)

    def _execute(self, cmd: Command | WakeNow) -> Sequence[Command | WakeNow] | None:
        handler = self._handlers.get(type(cmd))
        if handler is None:
            raise TypeError(f"unknown engine command {cmd!r}")
        return handler(cmd)

    def _command_handlers(self) -> dict[type[Any], Handler]:
        """One handler per command type: synchronous ones answer at once, the exchange's run
        as tasks whose answers go back into the core."""

        def task(run: Callable[[Any], Awaitable[Sequence[Command] | None]]) -> Handler:
            async def answer(cmd: Any) -> None:
                commands = await run(cmd)  # inside the task: a missing client fails it
                if commands:
                    self._run(commands)

            return lambda cmd: self._spawn(answer(cmd), cmd)

        def write(run: Callable[[Any, Ledger, EngineCore, Clock], list[Command]]) -> Handler:
            return lambda cmd: run(cmd, self.ledger, self.core, self._clock)

        return {
            Log: self._logs.append,
            SetTimer: lambda cmd: self._timers.set(cmd.key, cmd.at),
            WakeNow: lambda wake: self._wake(wake.key) if self._timers.take(wake) else None,
            CancelTimer: lambda cmd: self._timers.discard(cmd.key),
            WriteResult: write(journal_writes.write_result),
            WriteMaintenance: write(journal_writes.write_maintenance),
            SendMarginCall: self._start_send,
            CheckReduce: self._start_check,
            ReadBills: self._start_bills_read,
            ResolveOutcome: task(self._resolve),
            ReadPositions: task(self._reconcile),
            FetchInstrument: task(
                lambda cmd: instrument_reads.fetch_instrument(cmd, *self._client_for(cmd.account))
            ),
            SyncClock: task(lambda cmd: call_sends.sync_clock(cmd, self._client(cmd.account))),
            RecoverFills: task(self._recover_fills),
        }

    def _write_logs(self) -> None:
        logs = self._logs.copy()
        self._logs.clear()  # the same list: the Log handler holds its append
        for cmd in logs:
            getattr(log, cmd.level)(cmd.event, **cmd.fields)

    def _start_send(self, cmd: SendMarginCall) -> list[Command] | None:
        if self._stopping:  # a check answered while draining: the call is not started
            stopped = Outcome(OutcomeKind.NOT_SENT, "not_sent")
            return self.core.on_call_done(cmd.call, stopped, now=self._clock())
        self._spawn(self._send(cmd), cmd)
        self._sent_in_batch = True
        return None

    def _start_check(self, cmd: CheckReduce) -> list[Command] | None:
        if self._stopping:
            return self.core.on_reduce_check_failed(cmd.call, "stopping", now=self._clock())
        self._spawn(self._check_reduce(cmd), cmd)
        return None

    def _fire(self, key: PositionKey) -> None:
        self._run(self._wake(key))

    def _wake(self, key: PositionKey) -> list[Command]:
        self._timers.discard(key)
        now = self._clock()
        try:
            return self.core.on_timer(key, now=now)
        except Exception as exc:  # a bug in the core: log it, never leave the position stuck
            log.exception("engine.task.failed", what="timer", **key_fields(key))
            return self.core.on_task_failed(SetTimer(key, now), error_text(exc), now=now)

    def _spawn(self, coro: Coroutine[Any, Any, None], cmd: Command) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(t, cmd))

    def _task_done(self, task: asyncio.Task[None], cmd: Command) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            if isinstance(cmd, ReadBills):  # perhaps before its first step: free the account
                self._bills.end(cmd.account)
            return
        exc = task.exception()
        if exc is None:
            return
        fields = key_fields(getattr(cmd, "key", None))
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

    # -- exchange tasks -------------------------------------------------------------------

    async def _recover_fills(self, cmd: RecoverFills) -> list[Command]:
        """Missed maintenances from OKX's trade bills (and order history when configured)."""
        rule = None if self._fills is None else self._fills.rule
        client, core, clock = self._client_for(cmd.account)
        found = await recover_for(cmd, client, self.ledger, rule, self._recovery_sources)
        if isinstance(found, str):
            return core.on_fills_recovery_failed(cmd.account, found, now=clock())
        return core.on_fills_recovered(cmd.account, found, now=clock())

    def _client(self, account: str) -> MarginClient:
        state = self.accounts.get(account)
        if state is None or state.client is None:
            raise RuntimeError(f"no REST client for account {account!r}")
        return state.client

    def _client_for(self, account: str) -> tuple[MarginClient, EngineCore, Clock]:
        """What an I/O function takes: the account's client, the core it answers, the clock."""
        return self._client(account), self.core, self._clock

    async def _send(self, cmd: SendMarginCall) -> None:
        try:
            commands = await call_sends.send(cmd, *self._client_for(cmd.key[0]))
        except asyncio.CancelledError:
            call_sends.cancelled(cmd, self._run)
            raise
        self._run(commands)

    async def _check_reduce(self, cmd: CheckReduce) -> None:
        self._run(await call_sends.check_reduce(cmd, *self._client_for(cmd.key[0])))

    async def _resolve(self, cmd: ResolveOutcome) -> list[Command]:
        client, core, clock = self._client_for(cmd.key[0])
        return await position_reads.resolve(cmd, client, self._bills, core, clock)

    def _start_bills_read(self, cmd: ReadBills) -> None:
        if self._bills.begin(cmd.account, cmd.trigger):  # else the running read reads again
            self._spawn(self.read_bills(cmd.account, cmd.trigger, begun=True), cmd)

    async def read_bills(self, account: str, trigger: str, *, begun: bool = False) -> None:
        """Read the account's bills; the foreign transfers go to the core
        (:meth:`BillReader.read`)."""

        def answer(trigger: str, result: list[Bill] | str | BaseException) -> None:
            self._run(route_answer(self.core, account, trigger, result, self._clock()))

        await self._bills.read(account, trigger, answer, begun=begun)

    async def _reconcile(self, cmd: ReadPositions) -> None:
        await self.reconcile_account(cmd.account, trigger=cmd.trigger)
