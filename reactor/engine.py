"""The reactor's control loop: position pushes in, margin-balance calls out.

The engine owns the timing rules of domain.md - debounce, single flight per position, cooldown
that ends early when a push confirms the new margin, the 59301 step-halving rule, the runaway
guard - and the handling of every exchange answer. What to do is decided by the pure
:func:`reactor.policy.decide`; the book, ledger and clients are injected, so the same engine
runs against OKX, the simulator or a benchmark harness.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, Protocol

from reactor.book import BookChange, ChangeKind, PositionBook
from reactor.ledger import Ledger
from reactor.log import get_logger
from reactor.okx.errors import ErrorClass, OkxError
from reactor.okx.models import PayloadError, Position, PositionKey, parse_position
from reactor.okx.rest import AmbiguousOutcome, RequestNotSent
from reactor.policy import Action, ActionKind, PolicyConfig, decide, target_for
from reactor.status.metrics import Metrics
from reactor.status.model import AccountStatus, PositionStatus, StatusSnapshot

log = get_logger("reactor.engine")

HOUR_S = 3600.0


class MarginClient(Protocol):
    """The part of :class:`reactor.okx.rest.OkxRestClient` the engine uses."""

    async def get_positions(
        self, inst_type: str = "SWAP", inst_id: str | None = None
    ) -> list[dict[str, Any]]: ...

    async def margin_balance(
        self, inst_id: str, pos_side: str, action: str, amt: Decimal
    ) -> dict[str, Any]: ...

    async def sync_clock(self) -> float: ...


@dataclass(frozen=True, slots=True)
class EngineSettings:
    policy: PolicyConfig
    debounce_s: float = 0.5
    leading_edge: bool = True
    cooldown_s: float = 5.0
    max_moved_per_hour: Decimal = Decimal("1000")
    main_expected_positions: int = 22
    dry_run: bool = False
    retry_max_s: float = 60.0  # cap of the per-position backoff after repeated errors
    reread_delay_s: float = 0.5  # after an ambiguous call, before the position is re-read


@dataclass(slots=True)
class AccountState:
    name: str
    role: str
    client: MarginClient | None
    enabled: bool = True
    connected: bool = False
    stopped_reason: str | None = None
    guard_tripped: bool = False
    reconcile_due: bool = False  # a (re)connect happened: reconcile after its snapshot
    moved: deque[tuple[float, Decimal]] = field(default_factory=deque)
    balance_waiters: set[PositionKey] = field(default_factory=set)  # got 59200, wait for funds

    @property
    def managed(self) -> bool:
        return self.role == "sub" and self.stopped_reason is None and not self.guard_tripped


@dataclass(slots=True)
class PositionControl:
    """Per-position timing state. Lives as long as the position is in the book."""

    timer: asyncio.Handle | None = None
    last_acted: float = -1e9  # loop time the last margin call was started
    in_flight: bool = False
    pending: bool = False
    cooldown_until: float = 0.0
    expected_margin: Decimal | None = None
    step_cap: Decimal | None = None
    unknown: bool = False
    # (journal id, action, amount, margin before) of the call whose outcome is unknown
    unknown_basis: tuple[int, str, Decimal, Decimal | None] | None = None
    hold_until_change: str | None = None  # error code that needs a changed position first
    hold_size_only: bool = False  # a mark-price move does not end the hold (51000)
    balance_wait: bool = False  # 59200: retry when the account's balance grows, or later
    failures: int = 0  # consecutive failed calls: the backoff exponent
    blocked: bool = False
    status: str = "ok"
    reason: str = ""
    target: Decimal | None = None
    band: tuple[Decimal, Decimal] | None = None
    count: int = 0
    changed_at: float = 0.0  # loop time of the push that made it due, for latency


class Engine:
    """Event-driven margin controller over a :class:`PositionBook`.

    The WebSocket sessions call the ``on_*`` methods (it is their ``SessionHandler``); the
    engine schedules evaluations on the running loop and spawns one task per margin call.
    """

    def __init__(
        self,
        settings: EngineSettings,
        accounts: Mapping[str, AccountState],
        ct_vals: Mapping[str, Decimal],
        ledger: Ledger,
        *,
        book: PositionBook | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.accounts = dict(accounts)
        self.ct_vals = dict(ct_vals)
        self.ledger = ledger
        self.book = book or PositionBook()
        self.metrics = metrics or Metrics()
        self._clock = clock
        self._controls: dict[PositionKey, PositionControl] = {}
        self._counts: dict[tuple[PositionKey, int], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._cross_logged: set[PositionKey] = set()
        self._unknown_at_start: set[PositionKey] = set()
        self._main_below = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.calls_sent = 0

    # ------------------------------------------------------------------ start-up / shutdown

    def recover_journal(self) -> int:
        """Intents without a result are calls a crash left unanswered: mark them unknown.

        Their positions are re-read over REST before anything else is sent for them.
        """
        pending = self.ledger.pending_intents()
        for entry in pending:
            self.ledger.journal_result(entry.id, "unknown", None, "no result before restart")
            key = (entry.account, entry.inst_id, entry.pos_side)
            self._unknown_at_start.add(key)
            log.warning(
                "margin.adjust.unknown",
                account=entry.account,
                instId=entry.inst_id,
                posSide=entry.pos_side,
                action=entry.action,
                amount=entry.amount,
                journal_id=entry.id,
                recovered=True,
            )
        self._seed_guard()
        return len(pending)

    def _seed_guard(self) -> None:
        """Refill the runaway guard from the journal: a crash loop must not reset the ceiling.

        Calls that were answered ok or whose outcome is unknown count; rejected ones moved
        nothing.
        """
        wall_now = time.time()
        now = self._clock()
        since_ms = int((wall_now - HOUR_S) * 1000)
        for entry in self.ledger.journal_since(since_ms):
            state = self.accounts.get(entry.account)
            if state is None or entry.status not in ("ok", "unknown"):
                continue
            age = max(0.0, wall_now - entry.sent_ms / 1000)
            state.moved.append((now - age, Decimal(entry.amount)))
        for state in self.accounts.values():
            if state.moved:
                log.info(
                    "margin.guard.seeded",
                    account=state.name,
                    moved_last_hour=str(sum((a for _, a in state.moved), Decimal(0))),
                    calls=len(state.moved),
                    limit=str(self.settings.max_moved_per_hour),
                )

    async def drain(self, timeout_s: float) -> None:
        """Let in-flight margin calls finish; journal the rest as unknown."""
        for control in self._controls.values():
            if control.timer is not None:
                control.timer.cancel()
                control.timer = None
        tasks = list(self._tasks)
        if not tasks:
            return
        _, still = await asyncio.wait(tasks, timeout=timeout_s)
        for task in still:
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)

    # ------------------------------------------------------------------ SessionHandler

    def on_connected(self, account: str) -> None:
        state = self.accounts.get(account)
        if state is not None:
            state.connected = True
            state.reconcile_due = True

    def on_snapshot(self, account: str, positions: list[Position], *, last_page: bool) -> None:
        changes = self.book.apply_snapshot_page(account, positions, last_page=last_page)
        if last_page:
            log.info(
                "book.snapshot",
                account=account,
                positions=len(self.book.positions(account)),
            )
            if account in {k[0] for k in self._unknown_at_start}:
                self._reread_unknown_after_restart(account)
            self._check_main_positions(account)
            state = self.accounts.get(account)
            if state is not None and state.reconcile_due:
                # Once per (re)connect, not on OKX's periodic snapshots: a REST read catches
                # what the stream may have lost while the account was away.
                state.reconcile_due = False
                self._spawn(self.reconcile_account(account, trigger="connect"))
            # Every position is re-evaluated from the fresh snapshot, changed or not.
            now = self._clock()
            for pos in self.book.positions(account):
                self._schedule(pos.key, now)
        self._handle_changes(changes)

    def on_update(self, account: str, positions: list[Position]) -> None:
        self._handle_changes(self.book.apply_update(account, positions))

    def on_disconnected(self, account: str, reason: str) -> None:
        self.book.mark_stale(account)
        state = self.accounts.get(account)
        if state is not None:
            state.connected = False
            self.metrics.inc_reconnect(account)

    def on_stopped(self, account: str, reason: str) -> None:
        self.book.mark_stale(account)
        state = self.accounts.get(account)
        if state is not None:
            state.connected = False
            state.stopped_reason = reason

    # ------------------------------------------------------------------ other inputs

    def on_counts_changed(self, keys: set[tuple[str, str, str]]) -> None:
        """The ledger gained maintenance records: the target may have moved."""
        self._counts = {k: v for k, v in self._counts.items() if k[0] not in keys}
        now = self._clock()
        for key in keys:
            if self.book.get(key) is not None:
                self._schedule(key, now, immediate=True)

    def apply_rest_positions(self, account: str, raw: list[dict[str, Any]]) -> int:
        """Reconcile the book of ``account`` with a REST read; returns the number of drifts."""
        drifts, changes = self._reconcile_book(account, raw)
        self._handle_changes(changes)
        return drifts

    def _reconcile_book(
        self, account: str, raw: list[dict[str, Any]], inst_id: str | None = None
    ) -> tuple[int, list[BookChange]]:
        """Correct the book from a REST read, logging each ``book.drift``."""
        positions = self._parse_rest(account, raw)
        drifts, changes = self.book.reconcile(account, positions, inst_id=inst_id)
        for d in drifts:
            log.warning(
                "book.drift",
                account=account,
                instId=d.key[1],
                posSide=d.key[2],
                field=d.field,
                book=d.book,
                exchange=d.exchange,
            )
        return len(drifts), changes

    async def reconcile_account(self, account: str, *, trigger: str = "interval") -> int:
        """Compare a REST read of ``account`` with the book and correct it; returns drifts."""
        state = self.accounts.get(account)
        if state is None or state.client is None or not self.book.is_fresh(account):
            return 0
        try:
            raw = await state.client.get_positions("SWAP")
        except (OkxError, RequestNotSent, AmbiguousOutcome) as exc:
            log.warning("reconcile.failed", account=account, trigger=trigger, error=str(exc))
            return 0
        if not self.book.is_fresh(account):
            return 0  # the stream broke while we read: the next snapshot decides
        drifts = self.apply_rest_positions(account, raw)
        level = log.debug if trigger == "interval" and not drifts else log.info
        level(
            "book.reconciled",
            account=account,
            trigger=trigger,
            positions=len(self.book.positions(account)),
            drifts=drifts,
        )
        return drifts

    # ------------------------------------------------------------------ scheduling

    def _handle_changes(self, changes: list[BookChange]) -> None:
        if not changes:
            return
        now = self._clock()
        for change in changes:
            key = change.key
            if change.kind is not ChangeKind.UPDATED:
                self._check_main_positions(key[0])
            if change.kind is ChangeKind.CLOSED:
                control = self._controls.pop(key, None)
                if control is not None and control.timer is not None:
                    control.timer.cancel()
                continue
            if change.kind is ChangeKind.REOPENED:
                old = self._controls.pop(key, None)
                if old is not None and old.timer is not None:
                    old.timer.cancel()
            control = self._controls.get(key)
            if control is not None:
                self._note_push(control, change)
            self._schedule(key, now)

    def _check_main_positions(self, account: str) -> None:
        """Warn once when the main account holds fewer positions than expected."""
        state = self.accounts.get(account)
        if state is None or state.role != "main" or not self.book.is_fresh(account):
            return
        positions = self.book.positions(account)
        expected = self.settings.main_expected_positions
        below = len(positions) < expected
        if below and not self._main_below:
            long_ = sum(
                1 for p in positions if p.pos_side == "long" or (p.pos_side == "net" and p.pos > 0)
            )
            log.warning(
                "main.positions.below_expected",
                account=account,
                positions=len(positions),
                long=long_,
                short=len(positions) - long_,
                expected=expected,
            )
        elif self._main_below and not below:
            log.info("main.positions.restored", account=account, positions=len(positions))
        self._main_below = below

    def _note_push(self, control: PositionControl, change: BookChange) -> None:
        """End the cooldown early once a push shows the margin the call should have left."""
        pos, prev = change.position, change.previous
        step = self.settings.policy.amount_step
        expected = control.expected_margin
        if expected is not None and pos.margin is not None and abs(pos.margin - expected) < step:
            control.cooldown_until = 0.0
            control.expected_margin = None
            if control.timer is not None:
                # The evaluation parked at the cooldown's end is no longer due: without this,
                # the next change would fold into it and wait out the whole cooldown.
                control.timer.cancel()
                control.timer = None
        if control.hold_until_change is not None and prev is not None:
            size = (pos.margin, pos.pos, pos.c_time) != (prev.margin, prev.pos, prev.c_time)
            if size or (not control.hold_size_only and pos.mark_px != prev.mark_px):
                control.hold_until_change = None
                control.hold_size_only = False

    def _control(self, key: PositionKey) -> PositionControl:
        control = self._controls.get(key)
        if control is None:
            control = self._controls[key] = PositionControl()
        return control

    def _schedule(self, key: PositionKey, now: float, *, immediate: bool = False) -> None:
        control = self._control(key)
        # Leading edge: a change to a position with no margin call started within the debounce
        # window is evaluated at once (the policy is cheap and pure); changes while a window
        # is open fold into one trailing evaluation. Measured on the last call, not the last
        # push, so routine mark-price pushes never delay a fix; single flight and the
        # cooldown still rule out a second call for one burst.
        quiet = now - control.last_acted >= self.settings.debounce_s
        if control.timer is not None:
            if not immediate:
                return  # the trailing evaluation already pending folds this change in
            control.timer.cancel()
            control.timer = None
        control.changed_at = now
        loop = self._running_loop()
        if immediate or self.settings.debounce_s == 0 or (self.settings.leading_edge and quiet):
            control.timer = loop.call_soon(self._fire, key)
        else:
            control.timer = loop.call_later(self.settings.debounce_s, self._fire, key)

    def _schedule_at(self, key: PositionKey, delay_s: float) -> None:
        control = self._control(key)
        if control.timer is not None:
            control.timer.cancel()
        control.timer = self._running_loop().call_later(max(0.0, delay_s), self._fire, key)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _fire(self, key: PositionKey) -> None:
        control = self._controls.get(key)
        if control is None:
            return
        control.timer = None
        self.evaluate(key)

    # ------------------------------------------------------------------ evaluation

    def count_for(self, pos: Position) -> int:
        ck = (pos.key, pos.c_time)
        count = self._counts.get(ck)
        if count is None:
            count = self._counts[ck] = self.ledger.count(
                pos.account, pos.inst_id, pos.pos_side, pos.c_time
            )
        return count

    def evaluate(self, key: PositionKey) -> Action | None:
        """Decide for one position now and start the margin call if one is due."""
        pos = self.book.get(key)
        control = self._controls.get(key)
        if pos is None or control is None:
            return None
        account = self.accounts.get(pos.account)
        if account is None or not account.enabled or account.role != "sub":
            control.status, control.reason = "unmanaged", "read-only account"
            return None
        if not pos.is_managed_kind:
            control.status, control.reason = "unmanaged", f"{pos.mgn_mode} {pos.inst_id}"
            if key not in self._cross_logged:
                self._cross_logged.add(key)
                log.info(
                    "book.cross.ignored",
                    account=pos.account,
                    instId=pos.inst_id,
                    posSide=pos.pos_side,
                    mgnMode=pos.mgn_mode,
                )
            return None
        if not account.managed:
            control.status = "error"
            control.reason = account.stopped_reason or "runaway guard tripped"
            return None
        if not self.book.is_fresh(pos.account):
            control.status, control.reason = "stale", "waiting for a fresh snapshot"
            return None
        if control.in_flight:
            control.pending = True
            return None
        now = self._clock()
        if control.cooldown_until > now:
            self._schedule_at(key, control.cooldown_until - now)
            return None
        if control.unknown or control.expected_margin is not None or key in self._unknown_at_start:
            # Unknown outcome, or an ok call whose effect no push has shown within the
            # cooldown: the book may lack a transfer the exchange made. Re-read, never guess.
            self._spawn(self._reread(key))
            return None
        if control.hold_until_change is not None:
            return None
        ct_val = self.ct_vals.get(pos.inst_id)
        if ct_val is None:
            control.status, control.reason = "error", f"unknown instrument {pos.inst_id}"
            return None
        count = self.count_for(pos)
        rule = target_for(count, self.settings.policy.targets)
        control.count, control.target = count, rule.target
        control.band = (rule.band_lo, rule.band_hi)
        action = decide(pos, ct_val, count, self.settings.policy, step_cap=control.step_cap)
        self._track_blocked(pos, control, action)
        if action.kind is ActionKind.NONE:
            control.status, control.reason = "ok", action.reason
            control.step_cap = None
            return action
        if action.kind is ActionKind.BLOCKED:
            control.status, control.reason = "blocked", action.reason
            return action
        guard_entry = self._guard_allows(account, pos, action.amount, now)
        if guard_entry is None:
            control.status, control.reason = "error", "runaway guard tripped"
            return action
        if self.settings.dry_run:
            control.status, control.reason = "ok", "dry run"
            log.info(
                "margin.adjust.dry_run",
                account=pos.account,
                instId=pos.inst_id,
                posSide=pos.pos_side,
                action=action.kind.value,
                amount=str(action.amount),
                margin=str(pos.margin),
                target=str(action.target),
                floor=_s(action.floor),
                count=count,
            )
            control.cooldown_until = now + self.settings.cooldown_s
            return action
        control.in_flight = True
        control.status, control.reason = "adjusting", action.reason
        control.last_acted = now
        self._spawn(self._adjust(pos, action, account, control, guard_entry))
        return action

    def _track_blocked(self, pos: Position, control: PositionControl, action: Action) -> None:
        """``margin.target.blocked`` once per episode, ``margin.target.unblocked`` when it ends."""
        blocked = action.kind is ActionKind.BLOCKED or action.limited_by_floor
        if blocked:
            self._enter_blocked(pos, control, action, action.reason)
        elif control.blocked:
            control.blocked = False
            log.info(
                "margin.target.unblocked",
                account=pos.account,
                instId=pos.inst_id,
                posSide=pos.pos_side,
                margin=str(pos.margin),
                target=str(action.target),
            )

    def _enter_blocked(
        self, pos: Position, control: PositionControl, action: Action, reason: str
    ) -> None:
        if control.blocked:
            return  # once per episode, not on every push
        control.blocked = True
        log.warning(
            "margin.target.blocked",
            account=pos.account,
            instId=pos.inst_id,
            posSide=pos.pos_side,
            margin=str(pos.margin),
            target=str(action.target),
            floor=_s(action.floor),
            upl=_s(pos.upl),
            reason=reason,
        )

    def _guard_allows(
        self, account: AccountState, pos: Position, amount: Decimal, now: float
    ) -> tuple[float, Decimal] | None:
        """Count ``amount`` against the hourly ceiling; None (and the account stops) if over."""
        moved = account.moved
        while moved and now - moved[0][0] > HOUR_S:
            moved.popleft()
        total = sum((a for _, a in moved), Decimal(0))
        if total + amount <= self.settings.max_moved_per_hour:
            entry = (now, amount)
            moved.append(entry)
            return entry
        account.guard_tripped = True
        log.error(
            "margin.guard.tripped",
            account=account.name,
            instId=pos.inst_id,
            posSide=pos.pos_side,
            moved_last_hour=str(total),
            amount=str(amount),
            limit=str(self.settings.max_moved_per_hour),
        )
        return None

    # ------------------------------------------------------------------ exchange calls

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _adjust(
        self,
        pos: Position,
        action: Action,
        account: AccountState,
        control: PositionControl,
        guard_entry: tuple[float, Decimal] | None = None,
    ) -> None:
        client = account.client
        assert client is not None
        kind = action.kind.value
        amount = action.amount
        fields = {
            "account": pos.account,
            "instId": pos.inst_id,
            "posSide": pos.pos_side,
            "action": kind,
            "amount": str(amount),
        }
        request = (
            f'{{"instId":"{pos.inst_id}","posSide":"{pos.pos_side}",'
            f'"type":"{kind}","amt":"{amount}"}}'
        )
        entry = self.ledger.journal_intent(
            pos.account, pos.inst_id, pos.pos_side, kind, str(amount), request
        )
        sent_at = self._clock()
        self.calls_sent += 1
        log.info(
            "margin.adjust.sent",
            **fields,
            margin=str(pos.margin),
            target=str(action.target),
            floor=_s(action.floor),
            journal_id=entry,
        )
        self.metrics.observe_latency(sent_at - control.changed_at)
        retry_in = self.settings.cooldown_s
        moved = True  # for the runaway guard: False only when the call certainly did nothing
        try:
            await client.margin_balance(pos.inst_id, pos.pos_side, kind, amount)
        except AmbiguousOutcome as exc:
            self.ledger.journal_result(entry, "unknown", exc.code, str(exc)[:200])
            control.unknown = True
            control.unknown_basis = (entry, kind, amount, pos.margin)
            self.metrics.inc_adjustment("unknown")
            log.error("margin.adjust.unknown", **fields, journal_id=entry, error=str(exc))
            retry_in = self.settings.reread_delay_s
        except RequestNotSent as exc:
            moved = False
            self.ledger.journal_result(entry, "error", "not_sent", str(exc)[:200])
            self.metrics.inc_adjustment("not_sent")
            log.warning("margin.adjust.failed", **fields, code="not_sent", msg=str(exc))
            control.failures += 1
            retry_in = self._backoff(pos, control, "not_sent")
        except OkxError as exc:
            moved = exc.error_class is ErrorClass.AMBIGUOUS
            self.ledger.journal_result(
                entry, "unknown" if moved else "error", exc.code, exc.msg[:200]
            )
            self.metrics.inc_adjustment(exc.code)
            log.error("margin.adjust.failed", **fields, code=exc.code, msg=exc.msg)
            retry_in = await self._on_error(pos, action, account, control, exc)
        except asyncio.CancelledError:
            self.ledger.journal_result(entry, "unknown", None, "cancelled at shutdown")
            log.error("margin.adjust.unknown", **fields, journal_id=entry, error="cancelled")
            raise
        else:
            self.ledger.journal_result(entry, "ok")
            self.metrics.inc_adjustment("ok")
            control.failures = 0
            assert pos.margin is not None
            sign = 1 if action.kind is ActionKind.ADD else -1
            control.expected_margin = pos.margin + sign * amount
            current = self.book.get(pos.key)
            if (
                current is not None
                and current.u_time > pos.u_time
                and current.margin is not None
                and abs(current.margin - control.expected_margin) < self.settings.policy.amount_step
            ):
                # The confirming push beat the HTTP answer: the cooldown is already over.
                control.expected_margin = None
                retry_in = 0.0
            log.info(
                "margin.adjust.ok",
                **fields,
                margin_before=str(pos.margin),
                margin_expected=str(control.expected_margin),
                elapsed_ms=round((self._clock() - sent_at) * 1000, 2),
            )
            if action.kind is ActionKind.REDUCE:
                self._wake_balance_waiters(pos.account)
        finally:
            control.in_flight = False
            if guard_entry is not None and not moved:
                with contextlib.suppress(ValueError):
                    account.moved.remove(guard_entry)
        control.cooldown_until = self._clock() + retry_in
        if self._controls.get(pos.key) is control:
            self._schedule_at(pos.key, retry_in)

    def _backoff(self, pos: Position, control: PositionControl, code: str) -> float:
        """Delay before the next try after ``control.failures`` failures in a row."""
        base = max(self.settings.cooldown_s, 0.1)
        exponent = min(max(control.failures - 1, 0), 16)
        delay = min(self.settings.retry_max_s, base * 2.0**exponent)
        delay *= 0.75 + random.random() / 4  # jitter: many positions do not retry in step
        log.info(
            "margin.adjust.retry",
            account=pos.account,
            instId=pos.inst_id,
            posSide=pos.pos_side,
            code=code,
            failures=control.failures,
            delay_s=round(delay, 3),
        )
        return delay

    def _wake_balance_waiters(self, account: str) -> None:
        """A reduction freed balance: positions that got 59200 may try again now."""
        state = self.accounts.get(account)
        if state is None:
            return
        for key in list(state.balance_waiters):
            control = self._controls.get(key)
            if control is None:
                state.balance_waiters.discard(key)
            elif control.balance_wait and not control.in_flight:
                state.balance_waiters.discard(key)
                control.balance_wait = False
                control.cooldown_until = 0.0
                self._schedule_at(key, 0.0)

    def _hold(self, pos: Position, control: PositionControl, code: str, *, size_only: bool) -> None:
        control.hold_until_change = code
        control.hold_size_only = size_only
        log.warning(
            "margin.adjust.held",
            account=pos.account,
            instId=pos.inst_id,
            posSide=pos.pos_side,
            code=code,
            until="size or margin change" if size_only else "position change",
        )

    async def _on_error(
        self,
        pos: Position,
        action: Action,
        account: AccountState,
        control: PositionControl,
        exc: OkxError,
    ) -> float:
        """React to an OKX error code; returns the delay before the next evaluation."""
        cls = exc.error_class
        control.failures += 1
        control.status, control.reason = "error", f"{exc.code} {exc.msg}"
        cooldown = self.settings.cooldown_s
        if cls is ErrorClass.REDUCE_TOO_LARGE:
            step = self.settings.policy.amount_step
            min_action = self.settings.policy.min_action
            half = (action.amount / 2).quantize(step, rounding=ROUND_DOWN)
            cap = max(min_action, half)
            control.step_cap = cap
            log.warning(
                "margin.step.halved",
                account=pos.account,
                instId=pos.inst_id,
                posSide=pos.pos_side,
                amount=str(action.amount),
                step_cap=str(cap),
            )
            if action.amount <= min_action:
                # Even the smallest step is refused: the exchange's limit is stricter than
                # our model. Blocked until the position changes (never the same call in a loop).
                self._hold(pos, control, exc.code, size_only=False)
                control.status = "blocked"
                control.reason = f"exchange_limit: 59301 at the minimum step {min_action}"
                self._enter_blocked(pos, control, action, control.reason)
            return self._backoff(pos, control, exc.code)
        if cls is ErrorClass.AUTH:
            account.stopped_reason = f"auth error {exc.code}"
            log.error("account.stopped", account=pos.account, code=exc.code, reason=exc.msg)
            return cooldown
        if cls is ErrorClass.CLOCK_SKEW:
            assert account.client is not None
            try:
                offset = await account.client.sync_clock()
                log.info("rest.clock.resync", account=pos.account, offset_s=round(offset, 3))
            except (OkxError, RequestNotSent, AmbiguousOutcome) as sync_exc:
                log.warning("rest.clock.resync", account=pos.account, error=str(sync_exc))
                return self._backoff(pos, control, exc.code)
            return min(0.5, cooldown)
        if cls is ErrorClass.POSITION_GONE:
            await self.reconcile_account(pos.account, trigger=exc.code)
            return cooldown
        if cls is ErrorClass.PARAMETER:
            # Our bug: the same request would fail the same way. Alert (failed is an error
            # event) and wait for the position's size or margin to change.
            self._hold(pos, control, exc.code, size_only=True)
            return cooldown
        if cls in (ErrorClass.POSITION_FROZEN, ErrorClass.UNKNOWN):
            self._hold(pos, control, exc.code, size_only=False)
            return cooldown
        if cls is ErrorClass.AMBIGUOUS:
            control.unknown = True
            control.unknown_basis = (0, action.kind.value, action.amount, pos.margin)
            return self.settings.reread_delay_s
        if cls is ErrorClass.INSUFFICIENT_BALANCE:
            control.balance_wait = True
            account.balance_waiters.add(pos.key)
            return self._backoff(pos, control, exc.code)
        if cls is ErrorClass.TRANSIENT and exc.code.isdigit() and len(exc.code) == 3:
            # A bare HTTP 5xx (a gateway, no OKX envelope) does not say the call failed:
            # re-read the position before anything else is sent.
            control.unknown = True
            control.unknown_basis = (0, action.kind.value, action.amount, pos.margin)
        return self._backoff(pos, control, exc.code)

    async def _reread(self, key: PositionKey) -> None:
        """Resolve an ambiguous call: re-read the position before anything else is sent."""
        control = self._controls.get(key)
        account = self.accounts.get(key[0])
        if control is None or account is None or account.client is None or control.in_flight:
            return
        control.in_flight = True
        delay = 0.0
        try:
            raw = await account.client.get_positions("SWAP", key[1])
        except (OkxError, RequestNotSent, AmbiguousOutcome) as exc:
            log.warning("reconcile.failed", account=key[0], instId=key[1], error=str(exc))
            control.failures += 1
            delay = min(self.settings.retry_max_s, max(self.settings.cooldown_s, 0.1))
        else:
            _, changes = self._reconcile_book(key[0], raw, inst_id=key[1])
            self._log_resolution(key, control)
            control.unknown = False
            control.unknown_basis = None
            self._unknown_at_start.discard(key)
            control.expected_margin = None
            control.cooldown_until = 0.0
            self._handle_changes(changes)
        finally:
            control.in_flight = False
        if self._controls.get(key) is control:
            self._schedule_at(key, delay)

    def _log_resolution(self, key: PositionKey, control: PositionControl) -> None:
        """Say what the re-read showed about the call it was made for."""
        now = self.book.get(key)
        fields = {"account": key[0], "instId": key[1], "posSide": key[2]}
        margin_now = None if now is None else now.margin
        basis = control.unknown_basis
        if basis is None:
            if control.unknown or key in self._unknown_at_start:
                log.info(
                    "margin.adjust.resolved", **fields, outcome="reread", margin=_s(margin_now)
                )
            elif control.expected_margin is not None:
                log.info(
                    "margin.adjust.unconfirmed",
                    **fields,
                    expected=str(control.expected_margin),
                    margin=_s(margin_now),
                )
            return
        journal_id, kind, amount, before = basis
        if now is None:
            outcome = "position_gone"
        elif before is None or margin_now is None:
            outcome = "unclear"
        else:
            delta = margin_now - before
            expected = amount if kind == "add" else -amount
            outcome = "applied" if delta == expected else "not_applied" if delta == 0 else "unclear"
        log.warning(
            "margin.adjust.resolved",
            **fields,
            outcome=outcome,
            action=kind,
            amount=str(amount),
            margin_before=_s(before),
            margin=_s(margin_now),
            journal_id=journal_id or None,
        )

    def _reread_unknown_after_restart(self, account: str) -> None:
        for key in [k for k in self._unknown_at_start if k[0] == account]:
            if self.book.get(key) is None:
                self._unknown_at_start.discard(key)

    def _parse_rest(self, account: str, raw: list[dict[str, Any]]) -> list[Position]:
        positions = []
        for item in raw:
            try:
                positions.append(parse_position(account, item))
            except PayloadError as exc:
                log.warning("rest.payload.invalid", account=account, reason=str(exc))
        return [p for p in positions if p.is_open]

    # ------------------------------------------------------------------ status

    def status_snapshot(self) -> StatusSnapshot:
        accounts = []
        for state in self.accounts.values():
            rows = []
            for pos in self.book.positions(state.name):
                control = self._controls.get(pos.key) or PositionControl()
                if control.target is None and pos.is_managed_kind and state.role == "sub":
                    rule = target_for(self.count_for(pos), self.settings.policy.targets)
                    control.target, control.band = rule.target, (rule.band_lo, rule.band_hi)
                band = control.band or (None, None)
                rows.append(
                    PositionStatus(
                        account=state.name,
                        role=state.role,
                        inst_id=pos.inst_id,
                        pos_side=pos.pos_side,
                        pos=pos.pos,
                        margin=pos.margin,
                        target=control.target,
                        band_lo=band[0],
                        band_hi=band[1],
                        count=control.count,
                        upl=pos.upl,
                        profit_rate=pos.profit_rate,
                        status=control.status if state.role == "sub" else "unmanaged",
                        reason=control.reason,
                    )
                )
            accounts.append(
                AccountStatus(
                    name=state.name,
                    role=state.role,
                    enabled=state.enabled,
                    connected=state.connected,
                    fresh=self.book.is_fresh(state.name),
                    stopped_reason=state.stopped_reason
                    or ("runaway guard tripped" if state.guard_tripped else None),
                    positions=tuple(rows),
                )
            )
        return StatusSnapshot(
            accounts=tuple(accounts),
            main_expected_positions=self.settings.main_expected_positions,
            generated_ms=int(time.time() * 1000),
        )


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
