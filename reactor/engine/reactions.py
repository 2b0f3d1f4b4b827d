"""Pure: what the engine does after a margin call's outcome (docs/spec/domain.md,
docs/spec/okx-v5.md error codes)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from reactor.engine.margin_call import Outcome, OutcomeKind
from reactor.engine.state import EngineSettings
from reactor.okx.errors import ErrorClass


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
    if cls is ErrorClass.AUTH:
        return Reaction(failed=True, delay_s=cooldown, stop_account=f"auth error {code}")
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
