"""The asyncio shell of the engine: feeds the core and carries out its commands.

It is the WebSocket sessions' ``SessionHandler``. Timers become ``loop.call_at`` handles, journal
writes go to the ledger synchronously (the intent is committed before the call leaves), exchange
calls and reads run as tasks whose answers go back into the core. Every task's exception is
logged as ``engine.task.failed`` and handed to the core, so nothing stays in flight.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, cast

from reactor.domain.book import PositionBook
from reactor.domain.fills import FillGate
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
from reactor.engine.fill_recovery import HistoryClient, recover_account
from reactor.engine.foreign import BILL_PAGES_MAX, BillWindow, bill_of_call, credited_bill
from reactor.engine.reconcile import parse_rest_positions
from reactor.engine.state import (
    AccountState,
    EngineObserver,
    EngineSettings,
    MarginClient,
    PauseKey,
    Role,
    StorageError,
)
from reactor.engine.view import EngineView
from reactor.log import get_logger
from reactor.okx.bills import TRANSFER_SUBTYPE, Bill, parse_transfers
from reactor.okx.errors import AmbiguousOutcome, OkxError, RequestNotSent
from reactor.okx.models import (
    PayloadError,
    Position,
    PositionKey,
    finite_decimal,
    parse_instrument,
)
from reactor.okx.orders import OrderUpdate
from reactor.okx.rest import pages
from reactor.store import Ledger, LedgerError

log = get_logger("reactor.engine")

HOUR_S = 3600.0
# LedgerError (reactor.store): locked too long, disk full, I/O error, file deleted or
# replaced; KeyError: the entry vanished. sqlite3/OSError: a ledger that does not wrap its errors.
_STORAGE_ERRORS = (LedgerError, sqlite3.Error, OSError, KeyError)
_EXCHANGE_ERRORS = (OkxError, RequestNotSent, AmbiguousOutcome)


class _LedgerCounts:
    """The ledger as the core's :class:`CountSource`: storage errors become StorageError."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def count(self, account: str, inst_id: str, pos_side: str, c_time: int) -> int:
        try:
            return self._ledger.count(account, inst_id, pos_side, c_time)
        except (LedgerError, sqlite3.Error, OSError) as exc:
            raise StorageError(f"{type(exc).__name__}: {exc}") from None

    def sources(self, account: str, inst_id: str, pos_side: str, c_time: int) -> dict[str, int]:
        try:
            return self._ledger.sources(account, inst_id, pos_side, c_time)
        except (sqlite3.Error, OSError, LedgerError) as exc:
            raise StorageError(f"{type(exc).__name__}: {exc}") from None


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
            _LedgerCounts(ledger),
            book=book,
            observer=observer,
            fills=fills,
        )
        self._fills = fills
        self._recovery_sources = recovery_sources
        self._clock = clock
        self._timers: dict[PositionKey, asyncio.TimerHandle | asyncio.Handle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False  # drain() began: no new exchange call starts
        # The foreign-transfer reads' cursor and judged bills (sans-I/O, reactor.engine.foreign).
        self._bills = BillWindow(int(time.time() * 1000), settings.bill_skew_ms)
        self._clock_synced: set[str] = set()  # accounts whose offset to OKX's clock is measured
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
            log.exception("engine.task.failed", what="on_counts_changed", error=_text(exc))

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
            log.exception("engine.task.failed", what="on_paused", error=_text(exc))

    async def reconcile_account(self, account: str, *, trigger: str = "interval") -> int:
        """Compare a REST read of ``account`` with the book and correct it; returns drifts.

        Never raises (the app's reconcile loop must not die): a bug is ``engine.task.failed``.
        """
        try:
            return await self._reconcile_account(account, trigger)
        except Exception as exc:
            log.exception("engine.task.failed", what="reconcile", account=account, error=_text(exc))
            cmd = ReadPositions(account, trigger)
            self._run(self.core.on_task_failed(cmd, _text(exc), now=self._clock()))
            return 0

    async def _reconcile_account(self, account: str, trigger: str) -> int:
        state = self.accounts.get(account)
        if state is None or state.client is None or not self.book.is_fresh(account):
            return 0
        try:
            raw = await state.client.get_positions("SWAP")
        except _EXCHANGE_ERRORS as exc:
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
            commands = self.core.on_task_failed(SetTimer(key, now), _text(exc), now=now)
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
            error=_text(exc),
            exc_info=exc,
        )
        self._run(self.core.on_task_failed(cmd, _text(exc), now=self._clock()))

    # -- journal --------------------------------------------------------------------------

    def _write_intent(self, cmd: WriteIntent) -> list[Command]:
        account, inst_id, pos_side = cmd.key[0], cmd.key[1], cmd.key[2]
        try:
            journal_id = self.ledger.journal_intent(
                account, inst_id, pos_side, cmd.action, format(cmd.amount, "f"), cmd.request
            )
        except _STORAGE_ERRORS as exc:
            return self.core.on_intent_failed(cmd.call, _text(exc), now=self._clock())
        return self.core.on_intent_written(cmd.call, journal_id, now=self._clock())

    def _write_result(self, cmd: WriteResult) -> list[Command]:
        try:
            self.ledger.journal_result(cmd.journal_id, cmd.status, cmd.code, cmd.msg)
        except _STORAGE_ERRORS as exc:
            return self.core.on_result_failed(cmd, _text(exc), now=self._clock())
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
            return self.core.on_maintenance_failed(rec, _text(exc), now=self._clock(), retry=False)
        except (*_STORAGE_ERRORS, LedgerError) as exc:
            return self.core.on_maintenance_failed(rec, _text(exc), now=self._clock())
        return self.core.on_maintenance_written(
            rec, None if row is None else row.id, now=self._clock()
        )

    # -- exchange tasks -------------------------------------------------------------------

    async def _recover_fills(self, cmd: RecoverFills) -> None:
        """Missed maintenances from OKX's trade bills (and order history when configured)."""
        client = self._client(cmd.account)
        rule = None if self._fills is None else self._fills.rule
        if rule is None or not hasattr(client, "get_bills"):
            self._run(self.core.on_fills_recovered(cmd.account, (), now=self._clock()))
            return
        try:
            result = await recover_account(
                cast(HistoryClient, client),
                self.ledger,
                cmd.account,
                cmd.positions,
                rule,
                int(time.time() * 1000),  # OKX's history is in wall-clock ms
                sources=self._recovery_sources,
            )
        except (*_EXCHANGE_ERRORS, *_STORAGE_ERRORS, LedgerError) as exc:
            error = _text(exc)
            self._run(self.core.on_fills_recovery_failed(cmd.account, error, now=self._clock()))
            return
        keys = {r.position_key for r in result.recorded}
        self._run(self.core.on_fills_recovered(cmd.account, keys, now=self._clock()))

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
            except (*_EXCHANGE_ERRORS, ValueError) as exc:
                error, outcome = str(exc), outcome_of(exc)
            else:
                cap = finite_decimal(info.get("estAvailTrans"))
                if cap is not None and cap >= 0:
                    self._run(self.core.on_reduce_checked(cmd.call, cap, now=self._clock()))
                    return
                error = f"estAvailTrans not a number: {str(info.get('estAvailTrans'))[:40]!r}"
        self._run(
            self.core.on_reduce_check_failed(cmd.call, error, now=self._clock(), outcome=outcome)
        )

    async def _resolve(self, cmd: ResolveOutcome) -> None:
        """What OKX booked decides an ambiguous call: a matching bill (docs/spec/okx-fidelity.md
        §5.4), read at once and once more after ``bill_settle_s``; without one the margin comparison
        of a positions re-read (read after the bills) decides."""
        key = cmd.key
        client = self._client(key[0])
        bill: Bill | None = None
        note: str | None = None
        pending = cmd.pending
        if pending is not None and pending.journal_id:
            try:
                bill = await self._find_bill(client, key, pending.journal_id, pending.margin_before)
                if bill is None:
                    await asyncio.sleep(self.settings.bill_settle_s)
                    bill = await self._find_bill(
                        client, key, pending.journal_id, pending.margin_before
                    )
                if bill is None:
                    note = "no matching bill after the settle delay"
                else:
                    self.ledger.journal_bill(pending.journal_id, bill.bill_id, status="ok")
            except (*_EXCHANGE_ERRORS, PayloadError) as exc:
                note = f"bills unreadable: {_text(exc)[:160]}"
            except _STORAGE_ERRORS as exc:
                # The bill decides even if it cannot be journalled now; the next bills read
                # credits it again.
                note = f"bill not journalled: {_text(exc)[:160]}"
            except ValueError as exc:  # credited to another call meanwhile: not ours
                bill, note = None, f"bill refused: {exc}"
        try:
            raw = await client.get_positions("SWAP", key[1])
        except _EXCHANGE_ERRORS as exc:
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

    async def _find_bill(
        self,
        client: MarginClient,
        key: PositionKey,
        journal_id: int,
        margin_before: Decimal | None,
    ) -> Bill | None:
        entry = self.ledger.journal_entry(journal_id)
        if entry is None:
            return None
        if entry.bill_id is not None:
            return credited_bill(entry)
        offset_ms = await self._server_offset_ms(key[0], client)
        skew = self.settings.bill_skew_ms
        sent = entry.sent_ms + offset_ms
        raw = await client.get_bills(
            key[1], sub_type=TRANSFER_SUBTYPE[entry.action], begin_ms=sent - skew
        )
        bills, _ = parse_transfers(raw)
        recent = self.ledger.journal_since(entry.sent_ms - int(HOUR_S * 1000))
        return bill_of_call(bills, entry, recent, offset_ms, margin_before, skew)

    async def _server_offset_ms(self, account: str, client: MarginClient) -> int:
        """The offset to OKX's clock, measured once per account before bills are matched to
        journal times (the REST client otherwise measures it only after a 50102)."""
        if account not in self._clock_synced:
            self._clock_synced.add(account)
            try:
                await client.sync_clock()
            except _EXCHANGE_ERRORS as exc:
                log.warning("rest.clock.sync_failed", account=account, error=str(exc)[:200])
        return round(client.clock_offset_s * 1000)

    async def read_bills(self, account: str, trigger: str) -> None:
        """Read the account's margin-transfer bills since the last read and report those no
        journalled call accounts for (foreign transfers). One read per account at a time."""
        if not self._bills.begin(account, trigger):
            return
        again: str | None = trigger
        try:
            while again is not None:
                await self._read_bills_once(account, again)
                again = self._bills.again(account)
        except BaseException:
            self._bills.end(account)
            raise

    async def _read_bills_once(self, account: str, trigger: str) -> None:
        state = self.accounts.get(account)
        if state is None or state.client is None or state.role is not Role.SUB:
            return
        if self.settings.dry_run:
            # A dry run moves nothing, so every transfer is someone else's (typically the
            # controller it is being compared with): no fence to keep, no alert to raise.
            return
        client = state.client
        offset_ms = await self._server_offset_ms(account, client)
        begin_ms = self._bills.since(account, offset_ms) - self._bills.skew_ms

        async def fetch(after: str | None) -> list[dict[str, Any]]:
            return await client.get_bills("", begin_ms=begin_ms, after=after)

        try:
            raw = [
                row
                async for page in pages(fetch, "billId", max_pages=BILL_PAGES_MAX)
                for row in page
            ]
            entries = self.ledger.journal_since(self._bills.journal_since(account, offset_ms))
        except _EXCHANGE_ERRORS as exc:
            self._run(self.core.on_bills_failed(account, trigger, str(exc), now=self._clock()))
            return
        except _STORAGE_ERRORS as exc:
            self._run(self.core.on_bills_failed(account, trigger, _text(exc), now=self._clock()))
            return
        bills, errors = parse_transfers(raw)
        for reason in errors:
            log.warning("rest.payload.invalid", account=account, what="bill", reason=reason)
        judged = self._bills.judge(account, bills, entries, offset_ms)
        for journal_id, bill_id in judged.credits:
            try:
                self.ledger.journal_bill(journal_id, bill_id)
            except (*_STORAGE_ERRORS, ValueError) as exc:
                log.warning(
                    "bills.credit.failed", account=account, billId=bill_id, error=_text(exc)
                )
        # Always answered, foreign or not: positions that wait for this read go on.
        self._run(self.core.on_bills_read(account, judged.foreign, trigger, now=self._clock()))

    async def _reconcile(self, cmd: ReadPositions) -> None:
        await self.reconcile_account(cmd.account, trigger=cmd.trigger)

    async def _fetch_instrument(self, cmd: FetchInstrument) -> None:
        try:
            raw = await self._client(cmd.account).get_instruments("SWAP", cmd.inst_id)
            found = [parse_instrument(r) for r in raw]
            ct_val = next((i.ct_val for i in found if i.inst_id == cmd.inst_id), None)
            error = None if ct_val is not None else "not listed"
        except (*_EXCHANGE_ERRORS, PayloadError) as exc:
            ct_val, error = None, str(exc)
        self._run(self.core.on_instrument(cmd.inst_id, ct_val, error, now=self._clock()))

    async def _sync_clock(self, cmd: SyncClock) -> None:
        try:
            offset = await self._client(cmd.account).sync_clock()
        except _EXCHANGE_ERRORS as exc:
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


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
