"""Sans-I/O: one margin call's life from decision to answer, and what each answer does to the
position.

intent (durable, :class:`WriteIntent`) -> optional pre-reduce check (OKX's ``estAvailTrans``,
:func:`cap_to_estimate`) -> send (:func:`send_command`) -> outcome (:func:`settle_ok`,
:func:`settle_failure`) -> for an ambiguous one, the resolution a re-read makes
(:mod:`reactor.engine.reconcile`). A call is dropped before it is sent (:meth:`CallTable.abandon`)
whenever what it was decided from no longer holds; the runaway guard gets back what it reserved
whenever the call certainly moved nothing.

The functions change the call's :class:`PositionControl` and say what happened through the
:class:`Out` of the current input; when the position wakes next is returned to the coordinator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum

from reactor.domain.policy import Action, ActionKind, PolicyConfig, local_reduce_room, round_down
from reactor.engine.commands import (
    CheckReduce,
    Out,
    ReadPositions,
    SendMarginCall,
    SyncClock,
    WriteIntent,
    WriteResult,
    opt_str,
    pos_fields,
)
from reactor.engine.episodes import enter_blocked, hold_until_change
from reactor.engine.guard import Entry, RunawayGuard, guard_allows
from reactor.engine.health import EngineHealth
from reactor.engine.state import (
    AccountState,
    EngineSettings,
    EstAvail,
    PendingOutcome,
    PositionControl,
    Status,
)
from reactor.engine.timing import Ctx, set_timer
from reactor.okx.errors import AmbiguousOutcome, ErrorClass, OkxError, RequestNotSent
from reactor.okx.models import Position, PositionKey
from reactor.store import ResultStatus

# -- a call's outcome: the one place that decides what is ambiguous --------------------------
#
# OK: OKX booked it. REJECTED: OKX answered with an error code, nothing moved. NOT_SENT: it never
# left the process. UNKNOWN: it may have been applied - 50004, a timeout or reset after sending,
# or a bare HTTP 5xx from a gateway (no OKX envelope says it failed) - and is never resent
# blindly.


class OutcomeKind(StrEnum):
    OK = "ok"
    REJECTED = "rejected"
    NOT_SENT = "not_sent"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    code: str | None = None  # OKX code, HTTP status of a bare 5xx, or None
    error_class: ErrorClass | None = None  # REJECTED only
    msg: str = ""

    @property
    def moved_nothing(self) -> bool:
        """Certainly no margin moved: the runaway guard gives the amount back."""
        return self.kind in (OutcomeKind.REJECTED, OutcomeKind.NOT_SENT)

    @property
    def journal_status(self) -> ResultStatus:
        if self.kind is OutcomeKind.OK:
            return "ok"
        return "unknown" if self.kind is OutcomeKind.UNKNOWN else "error"

    @property
    def label(self) -> str:
        """Metric label and event code."""
        if self.kind is OutcomeKind.OK:
            return "ok"
        if self.kind is OutcomeKind.NOT_SENT:
            return "not_sent"
        if self.kind is OutcomeKind.UNKNOWN:
            return "unknown"
        return self.code or "error"


OK = Outcome(OutcomeKind.OK)


def outcome_of(exc: BaseException) -> Outcome:
    """Map an exception of the REST client to an outcome. An OKX code that may have been
    applied (50004, 51149, ...) arrives as :class:`AmbiguousOutcome` already
    (:func:`reactor.okx.errors.envelope_error`, the one ambiguity rule); only a bare HTTP 5xx
    (a gateway, no OKX envelope) is an :class:`OkxError` the margin call reads as unknown."""
    if isinstance(exc, AmbiguousOutcome):
        return Outcome(OutcomeKind.UNKNOWN, exc.code, None, str(exc)[:200])
    if isinstance(exc, RequestNotSent):
        return Outcome(OutcomeKind.NOT_SENT, "not_sent", None, str(exc)[:200])
    if isinstance(exc, OkxError):
        cls = exc.error_class
        if exc.code.isdigit() and len(exc.code) == 3 and exc.code.startswith("5"):
            return Outcome(OutcomeKind.UNKNOWN, exc.code, cls, exc.msg[:200])
        return Outcome(OutcomeKind.REJECTED, exc.code, cls, exc.msg[:200])
    if isinstance(exc, ValueError):  # the client refused the arguments before sending
        return Outcome(OutcomeKind.NOT_SENT, "not_sent", None, str(exc)[:200])
    raise TypeError(f"not an exchange-call failure: {type(exc).__name__}") from exc


# -- what the engine does after an outcome (docs/spec/domain.md, docs/spec/okx-v5.md codes) -----


@dataclass(frozen=True, slots=True)
class Reaction:
    """The next step for the position. ``backoff``: wait the jittered back-off for its failures;
    otherwise wait ``delay_s``."""

    failed: bool  # counts towards the back-off
    backoff: bool = False
    delay_s: float = 0.0
    step_cap: Decimal | None = None  # 59301: the halved step
    hold_code: str | None = None  # hold until the position changes
    hold_size_only: bool = False
    blocked_reason: str | None = None  # 59301 at the minimum step: a blocked episode
    stop_account: str | None = None
    reconcile: bool = False  # 59300: re-read the account
    balance_wait: bool = False  # 59200: wait for the account's balance to grow
    resolve: bool = False  # ambiguous: re-read before anything else
    resync_clock: bool = False


def react(outcome: Outcome, amount: Decimal, settings: EngineSettings) -> Reaction:
    kind = outcome.kind
    if kind is OutcomeKind.OK:
        return Reaction(failed=False, delay_s=settings.cooldown_s)
    if kind is OutcomeKind.NOT_SENT:
        return Reaction(failed=True, backoff=True)
    if kind is OutcomeKind.UNKNOWN:
        # Re-read soon; the next call waits for the back-off like any other failure.
        return Reaction(failed=True, delay_s=settings.reread_delay_s, resolve=True)
    cls = outcome.error_class
    code = outcome.code or "error"
    cooldown = settings.cooldown_s
    if cls is ErrorClass.REDUCE_TOO_LARGE:
        step = settings.policy.amount_step
        min_action = settings.policy.min_action
        cap = max(min_action, (amount / 2).quantize(step, rounding=ROUND_DOWN))
        if amount <= min_action:
            # Even the smallest step is refused: the exchange's limit is stricter than our
            # model. Blocked until the position changes (never the same call in a loop).
            return Reaction(
                failed=True,
                backoff=True,
                step_cap=cap,
                hold_code=code,
                blocked_reason=f"exchange_limit: 59301 at the minimum step {min_action}",
            )
        return Reaction(failed=True, backoff=True, step_cap=cap)
    if cls is not None and cls.stops_account:
        # A bad key (50111, 50113) or one without the right (50110 IP, 50120): retrying cannot
        # help until a human acts, as for 60032 on the WebSocket.
        what = "auth" if cls is ErrorClass.AUTH else "permission"
        return Reaction(failed=True, delay_s=cooldown, stop_account=f"{what} error {code}")
    if cls is ErrorClass.CLOCK_SKEW:
        # The REST client re-synchronised with OKX's clock when it saw the code; a repeat
        # backs off instead of hammering.
        return Reaction(failed=True, backoff=True, resync_clock=True)
    if cls is ErrorClass.POSITION_GONE:
        return Reaction(failed=True, delay_s=cooldown, reconcile=True)
    if cls is ErrorClass.PARAMETER:
        # Our bug: the same request would fail the same way. Wait for size or margin to change.
        return Reaction(failed=True, delay_s=cooldown, hold_code=code, hold_size_only=True)
    if cls in (ErrorClass.POSITION_FROZEN, ErrorClass.UNKNOWN, None):
        return Reaction(failed=True, delay_s=cooldown, hold_code=code)
    if cls is ErrorClass.INSUFFICIENT_BALANCE:
        return Reaction(failed=True, backoff=True, balance_wait=True)
    return Reaction(failed=True, backoff=True)  # rate limit, transient


# -- one call from decision to answer ----------------------------------------------------


@dataclass(slots=True)
class Call:
    """One margin call from decision to answer."""

    key: PositionKey
    control: PositionControl
    position: Position  # the data it was decided from
    action: Action
    amount: Decimal  # the amount sent (``action.amount``, or less after a pre-reduce check)
    guard_entry: Entry | None
    journal_id: int = 0
    sent_at: float = 0.0
    checked: bool = False  # the pre-reduce check answered (a second answer is ignored)
    # The reactor's own reduce bound (:func:`local_reduce_room`) when the call was decided:
    # a reduce inside it is sent without a read; the bound when OKX gives no number.
    local_room: Decimal | None = None

    def pending(self, code: str | None = None) -> PendingOutcome:
        """What a re-read must resolve when the answer is unknown (or never came)."""
        return PendingOutcome(
            self.journal_id,
            self.action.kind.value,
            self.amount,
            self.position.margin,
            self.sent_at,
            code,
        )


class CallTable:
    """The calls between decision and answer, by the id their commands carry."""

    def __init__(self, guard: RunawayGuard, health: EngineHealth) -> None:
        self.guard = guard
        self.health = health
        self._calls: dict[int, Call] = {}
        self._next = 0
        self.sent = 0  # calls sent since start

    def open(
        self,
        ctx: Ctx,
        pos: Position,
        action: Action,
        guard_entry: Entry | None,
        ct_val: Decimal | None = None,
    ) -> tuple[int, Call | None]:
        """Start a call for ``pos``: its id, and the call whose intent is to be written now
        (None: OKX's reduce limit is asked first, :class:`CheckReduce`, or was answered from
        the cache already).

        A reduce inside the local bound (:func:`local_reduce_room`, ``ct_val`` known) is sent
        at once; above it OKX's ``estAvailTrans`` decides, read once per position record
        (:func:`cached_estimate`), never once per call of a burst (issue 18)."""
        self._next += 1
        call = self._next
        control = ctx.control(pos.key)
        c = Call(pos.key, control, pos, action, action.amount, guard_entry)
        self._calls[call] = c
        control.in_flight = True
        control.status, control.reason = Status.ADJUSTING, action.reason
        control.last_acted = ctx.now
        if not ctx.settings.pre_reduce_check or action.kind is not ActionKind.REDUCE:
            return call, c
        policy = ctx.settings.policy
        if ct_val is not None:
            c.local_room = local_reduce_room(pos, ct_val, policy)
        if c.local_room is not None and action.amount <= c.local_room:
            return call, c  # no read: the local bound proves the reduce safe
        if c.local_room is not None and distrusted(control.distrust_mark, pos.mark_px):
            # OKX refused a reduce its own number allowed: while the size and the mark stay,
            # the local bound caps every reduce, so an optimistic figure costs one 59301. (A
            # mark that moved explains the refusal as well: OKX is asked again then.)
            self.reduce_checked(
                ctx, call, c.local_room, read=False, label="local bound after 59301"
            )
            return call, None
        cached = cached_estimate(control.est_avail, pos, ct_val, policy)
        if cached is not None:
            self.reduce_checked(ctx, call, cached, read=False)
            return call, None
        control.est_avail = None
        ctx.out.add(CheckReduce(call, pos.key, action.amount, pos.lever))
        return call, None

    def start(
        self, ctx: Ctx, pos: Position, action: Action, count: int, ct_val: Decimal | None = None
    ) -> None:
        """A correction the policy decided: through the runaway guard, only said in a dry
        run, else opened (its intent written, or OKX's reduce limit asked first)."""
        control = ctx.control(pos.key)
        check = self.guard.check(pos.key, action.amount, ctx.now)
        if not guard_allows(ctx, check, pos, control, action):
            return
        if ctx.settings.dry_run:
            dry_run(ctx, pos, control, action, count)
            return
        call, c = self.open(ctx, pos, action, check.entry, ct_val)
        if c is not None:
            self.write_intent(ctx, call, c)

    def write_intent(self, ctx: Ctx, call: int, c: Call) -> None:
        self.health.retry_results(ctx.out)  # results a failed write left behind go first
        ctx.out.add(intent_command(call, c))

    def get(self, call: int) -> Call | None:
        return self._calls.get(call)

    def pop(self, call: int) -> Call | None:
        return self._calls.pop(call, None)

    def refund(self, c: Call) -> None:
        """The call certainly moved nothing: the guard gets its reservation back."""
        if c.guard_entry is not None:
            self.guard.refund(c.guard_entry)

    def resize(self, c: Call, amount: Decimal) -> None:
        """Send ``amount`` instead (a pre-reduce check capped it): the guard reserves what will
        be sent, not what was decided."""
        if c.guard_entry is not None:
            self.guard.refund(c.guard_entry)
            c.guard_entry = self.guard.reserve(c.key, amount, c.guard_entry[0])
        c.amount = amount

    def abandon(self, call: int, c: Call, why: str, out: Out) -> None:
        """Drop a call before it was sent (its position closed, or the check forbade it)."""
        self._calls.pop(call, None)
        self.refund(c)
        c.control.in_flight = False
        if c.journal_id:
            out.add(WriteResult(c.journal_id, "error", "not_sent", why))

    # -- the answers of the call's commands (the core routes them here) --------------------

    def reduce_checked(
        self,
        ctx: Ctx,
        call: int,
        cap: Decimal | None,
        *,
        read: bool = True,
        label: str = "estAvailTrans",
    ) -> None:
        """The exchange's own reduce limit (``estAvailTrans``): never ask for more; the intent
        is written unless the call was dropped. (A reduce inside the local bound never gets
        here: it is sent without a read.)

        ``cap`` None: the venue set no limit (tests of other rules). The policy's floor has
        already bounded the amount; the cap is the second bound, rounded down to the step.
        Less than ``min_action`` left: no call, blocked ``exchange_limit`` until a later check
        (with back-off: OKX's figure moves with the mark price, which pushes do not show).
        ``read``: ``cap`` is a fresh answer of OKX (cached for the position's record), not the
        cache itself; ``label`` names the bound in the blocked reason.
        """
        out, policy = ctx.out, ctx.settings.policy
        c = self.get(call)
        if c is None or c.checked:
            return  # a second answer, or one for a call already dropped
        c.checked = True
        if read and cap is not None:
            c.control.est_avail = estimate_of(c.position, cap)
        if ctx.controls.get(c.key) is not c.control:
            self.abandon(call, c, "position closed before send", out)
            return
        account = ctx.accounts.get(c.key[0])
        if (
            not ctx.book.is_fresh(c.key[0])
            or ctx.book.get(c.key) != c.position
            or account is None
            or not account.managed
            or not account.enabled
            or ctx.paused_reason(c.key) is not None
        ):
            # The stream broke, the position moved, or the account was stopped, disabled or
            # paused while the exchange was asked: the call was decided from what no longer
            # holds. Decide again, never send it.
            self.abandon(call, c, "", out)
            set_timer(c.key, c.control, ctx.now, out)
            return
        control = c.control
        amount = capped_amount(c.amount, cap, policy.amount_step)
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
            if amount < policy.min_action:
                # Not cached: OKX's figure moves with a mark the pushes may not show yet, so
                # the retry after the back-off asks again.
                control.est_avail = None
                self.abandon(call, c, "", out)
                reason = f"exchange_limit: {label} {cap} < min_action"
                control.status, control.reason = Status.BLOCKED, reason
                control.exchange_limited = True
                enter_blocked(c.position, control, c.action, reason, out)
                control.failures += 1
                ctx.retry_later(c.key, control, "estAvailTrans")
                return
            self.resize(c, amount)
        control.exchange_limited = False
        self.write_intent(ctx, call, c)

    def reduce_check_failed(
        self,
        ctx: Ctx,
        call: int,
        error: str,
        outcome: Outcome | None = None,
        *,
        empty: bool = False,
    ) -> None:
        """``estAvailTrans`` could not be read (error, timeout, no number): no reduce is sent
        beyond the local bound.

        Never a blind reduce: an over-margined position is safe, a reduce OKX would refuse or
        one sized from a guess is not needed now. The position decides again after the
        back-off, from fresh data and a fresh check. ``outcome``: OKX's error, when it answered
        one; a bad key or a missing right (50113, 50120) stops the account as on a call.
        ``empty``: OKX answered without a number (``estAvailTrans`` ""): the reduce goes on up to
        the local bound, or the position is blocked ``exchange_limit`` with that reason - a
        venue that never gives the number must not leave a position over its band silently."""
        c = self.get(call)
        if c is None or c.checked:
            return  # answered already: the call goes on, or was dropped
        if empty and c.local_room is not None:
            ctx.out.warning(
                "margin.reduce.check_failed",
                **pos_fields(c.key),
                amount=str(c.amount),
                error=error[:200],
            )
            self.reduce_checked(
                ctx, call, c.local_room, read=False, label="estAvailTrans empty, local bound"
            )
            return
        c.checked = True
        control = c.control
        self.abandon(call, c, "", ctx.out)
        ctx.out.warning(
            "margin.reduce.check_failed",
            **pos_fields(c.key),
            amount=str(c.amount),
            error=error[:200],
        )
        reaction = None if outcome is None else react(outcome, c.amount, ctx.settings)
        if reaction is not None and reaction.stop_account is not None:
            stop_account(ctx, c.key[0], reaction.stop_account, outcome or OK)
        if ctx.controls.get(c.key) is not control:
            return
        control.failures += 1
        control.status, control.reason = Status.ERROR, f"estAvailTrans unreadable: {error[:120]}"
        ctx.retry_later(c.key, control, "estAvailTrans")

    def intent_written(self, ctx: Ctx, call: int, journal_id: int) -> None:
        """The intent is durable (the storage works again, if it had failed): the call is
        sent (unless it was dropped meanwhile)."""
        self.health.say_recovered(ctx.out)
        c = self.get(call)
        if c is None:
            ctx.out.add(WriteResult(journal_id, "error", "not_sent", "abandoned before send"))
            return
        if ctx.controls.get(c.key) is not c.control:
            c.journal_id = journal_id
            self.abandon(call, c, "position closed before send", ctx.out)
            return
        self.sent += 1
        # A call after a failed one waited out its back-off: apart from reaction latency.
        ctx.observer.observe_latency(
            ctx.now - c.control.changed_at, retry=c.control.failures > 0, account=c.key[0]
        )
        send_command(call, c, journal_id, ctx.now, ctx.out)

    def intent_failed(self, ctx: Ctx, call: int, error: str) -> Call | None:
        """No durable intent, so no call: the position retries with back-off."""
        self.health.say_failed(error, "intent", ctx.out)
        c = self.pop(call)
        if c is None:
            return None
        self.refund(c)
        control = c.control
        control.in_flight = False
        control.failures += 1
        control.status, control.reason = Status.ERROR, f"journal write failed: {error}"
        if ctx.controls.get(c.key) is control:
            ctx.retry_later(c.key, control, "journal")
        ctx.observer.inc_adjustment("journal_failed", account=c.key[0])
        return c

    def done(self, ctx: Ctx, call: int, outcome: Outcome) -> Call | None:
        """The answer of a :class:`SendMarginCall`: journal it, settle the position."""
        c = self.pop(call)
        if c is None:
            return None
        ctx.out.add(
            WriteResult(c.journal_id, outcome.journal_status, outcome.code, outcome.msg or None)
        )
        if outcome.moved_nothing:
            self.refund(c)
        control, key = c.control, c.key
        control.in_flight = False
        fields = {**pos_fields(key), "action": c.action.kind.value, "amount": str(c.amount)}
        if outcome.kind is OutcomeKind.OK:
            delay = settle_ok(ctx, c, fields)
            if c.action.kind is ActionKind.REDUCE:
                wake_balance_waiters(ctx, ctx.accounts.get(key[0]))
        else:
            after = settle_failure(ctx, c, outcome, fields)
            if after is None:
                after = ctx.backoff_delay(key, control, outcome.code or outcome.label)
            delay = after
        control.cooldown_until = ctx.now + delay
        if ctx.controls.get(key) is control:
            set_timer(key, control, ctx.now + delay, ctx.out)
        ctx.observer.inc_adjustment(outcome.label, account=key[0])
        return c

    def task_failed(
        self, ctx: Ctx, cmd: SendMarginCall | CheckReduce | WriteIntent, error: str
    ) -> None:
        """A task of the call raised (a bug): before the send it moved nothing (the guard gets
        it back); a send may have moved margin, so it is resolved before anything else."""
        c = self.pop(cmd.call)
        if c is not None and isinstance(cmd, SendMarginCall):
            c.control.pending = c.pending()
            c.control.in_flight = False
        elif c is not None:
            self.refund(c)
        internal_failure(ctx, cmd.key, error)


def internal_failure(ctx: Ctx, key: PositionKey, error: str) -> None:
    """A task for the position raised (a bug): nothing stays in flight, it retries later."""
    control = ctx.controls.get(key)
    if control is not None:
        control.in_flight = False
        control.failures += 1
        control.status, control.reason = Status.ERROR, f"internal error: {error[:120]}"
        ctx.retry_later(key, control, "internal")


def intent_command(call: int, c: Call) -> WriteIntent:
    """The durable intent of ``c``, with the body the REST client sends (format "f": never
    "1E+1")."""
    kind = c.action.kind.value
    request = (
        f'{{"instId":"{c.key[1]}","posSide":"{c.key[2]}",'
        f'"type":"{kind}","amt":"{format(c.amount, "f")}"}}'
    )
    return WriteIntent(call, c.key, kind, c.amount, request)


def dry_run(ctx: Ctx, pos: Position, control: PositionControl, action: Action, count: int) -> None:
    """``dry_run``: say the call that would be sent, send nothing, wait the cooldown."""
    control.status, control.reason = Status.OK, "dry run"
    ctx.out.info(
        "margin.adjust.dry_run",
        **pos_fields(pos.key),
        action=action.kind.value,
        amount=str(action.amount),
        margin=str(pos.margin),
        target=str(action.target),
        floor=opt_str(action.floor),
        count=count,
    )
    control.cooldown_until = ctx.now + ctx.settings.cooldown_s


# A cached ``estAvailTrans`` is reused while the mark stays within this fraction of the mark it
# was read at. Within it the cached number is derated by the most a mark move can take from it
# (:func:`cached_estimate`); beyond it the derating eats most of the room of a typical
# position (20x: 1% of mark is 1.05 x its notional x 1%, a fifth of its initial margin), so a
# fresh read is worth its place in OKX's 5-per-2-s budget.
MARK_TOLERANCE = Decimal("0.01")


def distrusted(mark: Decimal | None, now: Decimal | None) -> bool:
    """A 59301 at ``mark`` still stands against OKX's number: the mark moved at most
    :data:`MARK_TOLERANCE` since."""
    if mark is None or now is None or mark <= 0:
        return False
    return abs(now - mark) <= mark * MARK_TOLERANCE


def estimate_of(pos: Position, cap: Decimal) -> EstAvail:
    """The cache entry of OKX's answer ``cap`` for the record ``pos``."""
    return EstAvail(cap, pos.margin, pos.pos, pos.c_time, pos.lever, pos.mark_px)


def cached_estimate(
    est: EstAvail | None, pos: Position, ct_val: Decimal | None, policy: PolicyConfig
) -> Decimal | None:
    """OKX's cached ``estAvailTrans`` as it stands for ``pos`` now, or None (read again).

    Valid while margin, size, ``cTime`` and leverage are those it was read for, and the mark
    moved at most :data:`MARK_TOLERANCE`. A mark move of d changes what a position must keep
    by at most ``qty x d x (1 + 1/lever + fee + mmr rate)`` - the loss (1 per unit), the
    initial margin at mark (1/lever), the closing fee, the maintenance margin (rate from the
    record, else the fallback) - so the cache is lowered by that much: never above OKX's
    number at the new mark."""
    if est is None or est.margin is None or pos.margin != est.margin or ct_val is None:
        return None
    if (pos.pos, pos.c_time, pos.lever) != (est.pos, est.c_time, est.lever):
        return None
    if est.mark_px is None or pos.mark_px is None or est.mark_px <= 0:
        return None
    if pos.lever is None or pos.lever <= 0:
        return None
    move = abs(pos.mark_px - est.mark_px)
    if move > est.mark_px * MARK_TOLERANCE:
        return None
    if move == 0:
        return est.cap
    qty = abs(pos.pos) * ct_val
    rate = policy.mmr_rate_fallback
    if pos.mmr is not None and qty > 0:
        rate = max(rate, pos.mmr / (qty * est.mark_px))
    derate = qty * move * (1 + 1 / pos.lever + policy.close_fee_rate + rate)
    return max(est.cap - derate, Decimal(0))


def capped_amount(amount: Decimal, cap: Decimal | None, step: Decimal) -> Decimal | None:
    """The amount OKX's reduce limit (``estAvailTrans``) allows, rounded down to the step;
    None when the limit does not bind."""
    if cap is None or cap >= amount:
        return None
    return round_down(max(cap, Decimal(0)), step)


def send_command(call: int, c: Call, journal_id: int, now: float, out: Out) -> None:
    """The intent is durable: say so and send."""
    c.journal_id = journal_id
    c.sent_at = now
    action = c.action
    out.info(
        "margin.adjust.sent",
        **pos_fields(c.key),
        action=action.kind.value,
        amount=str(c.amount),
        margin=str(c.position.margin),
        target=str(action.target),
        floor=opt_str(action.floor),
        journal_id=journal_id,
    )
    out.add(SendMarginCall(call, c.key, action.kind.value, c.amount, journal_id))


def settle_ok(ctx: Ctx, c: Call, fields: dict[str, str]) -> float:
    """OKX booked the call: expect its margin; the cooldown (returned), unless the confirming
    push (the book's position now) beat the HTTP answer."""
    settings, now, out = ctx.settings, ctx.now, ctx.out
    current = ctx.book.get(c.key)
    control, pos = c.control, c.position
    control.failures = 0
    if control.step_cap is not None:
        # After 59301 the step grows back with each success (reset when the position
        # changes, or once the position is in band).
        control.step_cap = control.step_cap * 2
    assert pos.margin is not None
    sign = 1 if c.action.kind is ActionKind.ADD else -1
    control.expected_margin = pos.margin + sign * c.amount
    delay = settings.cooldown_s
    if (
        current is not None
        and current.u_time > pos.u_time
        and current.margin is not None
        and abs(current.margin - control.expected_margin) < settings.policy.amount_step
    ):
        # The confirming push beat the HTTP answer: the cooldown is already over.
        control.expected_margin = None
        delay = 0.0
    control.status, control.reason = Status.OK, c.action.reason
    out.info(
        "margin.adjust.ok",
        **fields,
        margin_before=str(pos.margin),
        margin_expected=opt_str(control.expected_margin),
        elapsed_ms=round((now - c.sent_at) * 1000, 2),
    )
    return delay


def settle_failure(ctx: Ctx, c: Call, outcome: Outcome, fields: dict[str, str]) -> float | None:
    """Any answer but OK (:func:`reactor.engine.reactions.react` says what it means): the
    delay before the position is evaluated again, or None for the back-off of its failures."""
    settings, out = ctx.settings, ctx.out
    control, key, pos = c.control, c.key, c.position
    account = ctx.accounts.get(key[0])
    reaction = react(outcome, c.amount, settings)
    code = outcome.code or outcome.label
    if outcome.kind is OutcomeKind.UNKNOWN:
        out.error(
            "margin.adjust.unknown",
            **fields,
            journal_id=c.journal_id,
            code=outcome.code,
            error=outcome.msg,
        )
        control.pending = c.pending(outcome.code)
        control.status, control.reason = Status.ADJUSTING, "outcome unknown: re-reading"
    elif outcome.kind is OutcomeKind.NOT_SENT:
        out.warning("margin.adjust.failed", **fields, code="not_sent", msg=outcome.msg)
        control.status, control.reason = Status.ERROR, f"not sent: {outcome.msg}"
    else:
        out.error("margin.adjust.failed", **fields, code=code, msg=outcome.msg)
        control.status, control.reason = Status.ERROR, f"{code} {outcome.msg}"
    if reaction.failed:
        control.failures += 1
    if reaction.step_cap is not None:
        control.step_cap = reaction.step_cap
        if ctx.settings.pre_reduce_check:
            control.distrust_mark = pos.mark_px
        if control.est_avail is not None:
            # OKX refused this much: its cached number was too high (optimistic, or the mark
            # moved); never try it again from the cache.
            cap = min(control.est_avail.cap, c.amount - settings.policy.amount_step)
            control.est_avail = replace(control.est_avail, cap=max(cap, Decimal(0)))
        out.warning(
            "margin.step.halved",
            **pos_fields(key),
            amount=str(c.amount),
            step_cap=str(reaction.step_cap),
        )
    if reaction.hold_code is not None:
        hold_until_change(key, control, reaction.hold_code, reaction.hold_size_only, out)
    if reaction.blocked_reason is not None:
        control.status, control.reason = Status.BLOCKED, reaction.blocked_reason
        enter_blocked(pos, control, c.action, reaction.blocked_reason, out)
    if reaction.stop_account is not None:
        stop_account(ctx, key[0], reaction.stop_account, outcome)
    if reaction.reconcile:
        out.add(ReadPositions(key[0], code))
    if reaction.balance_wait and account is not None:
        control.balance_wait = True
        account.balance_waiters.add(key)
    if reaction.resync_clock:
        out.add(SyncClock(key[0]))
        if control.failures <= 1:
            return min(0.5, settings.cooldown_s)
    if reaction.backoff:
        return None
    return reaction.delay_s


def stop_account(ctx: Ctx, account: str, reason: str, outcome: Outcome) -> None:
    """No more calls for ``account`` until restart (its key is bad or lacks the right)."""
    state = ctx.accounts.get(account)
    if state is not None and state.stopped_reason is None:  # said once
        state.stopped_reason = reason
        ctx.out.error("account.stopped", account=account, code=outcome.code, reason=outcome.msg)


def wake_balance_waiters(ctx: Ctx, state: AccountState | None) -> None:
    """A reduction freed balance: positions that got 59200 may try again now."""
    if state is None:
        return
    for key in list(state.balance_waiters):
        control = ctx.controls.get(key)
        if control is None:
            state.balance_waiters.discard(key)
        elif control.balance_wait and not control.in_flight:
            state.balance_waiters.discard(key)
            control.balance_wait = False
            control.cooldown_until = 0.0
            set_timer(key, control, ctx.now, ctx.out)
