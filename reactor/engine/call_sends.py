"""The I/O of the margin calls for the engine shell: the send (:class:`SendMarginCall`), OKX's
reduce limit read before a reduce (:class:`CheckReduce`) and the clock resync a timestamp
refusal asks for (:class:`SyncClock`).

What a call's outcome means is decided sans-I/O in :mod:`reactor.engine.calls`; here are only
the requests, each answered back into the core as its commands.
"""

from __future__ import annotations

from collections.abc import Callable

from reactor.engine.bill_reads import EXCHANGE_ERRORS
from reactor.engine.calls import OK, Outcome, outcome_of
from reactor.engine.commands import CheckReduce, Command, SendMarginCall, SyncClock, WriteResult
from reactor.engine.core import EngineCore
from reactor.engine.state import MarginClient
from reactor.log import get_logger
from reactor.okx.errors import AmbiguousOutcome, OkxError, RequestNotSent
from reactor.okx.models import PositionKey, finite_decimal

log = get_logger("reactor.engine")

Clock = Callable[[], float]


async def send(
    cmd: SendMarginCall, client: MarginClient, core: EngineCore, clock: Clock
) -> list[Command]:
    """Send the call; its outcome (OK or what the error means) goes to the core."""
    try:
        await client.margin_balance(cmd.key[1], cmd.key[2], cmd.action, cmd.amount)
        outcome = OK
    except (AmbiguousOutcome, RequestNotSent, OkxError, ValueError) as exc:
        outcome = outcome_of(exc)
    return core.on_call_done(cmd.call, outcome, now=clock())


def cancelled(cmd: SendMarginCall, run: Callable[[list[Command]], None]) -> None:
    """A send cancelled at shutdown: its journal entry is closed as unknown, and said."""
    run([WriteResult(cmd.journal_id, "unknown", None, "cancelled at shutdown")])
    log.error(
        "margin.adjust.unknown",
        **key_fields(cmd.key),
        action=cmd.action,
        amount=str(cmd.amount),
        journal_id=cmd.journal_id,
        error="cancelled",
    )


async def check_reduce(
    cmd: CheckReduce, client: MarginClient, core: EngineCore, clock: Clock
) -> list[Command]:
    """OKX's own reduce limit: ``estAvailTrans`` at the position's current leverage."""
    key = cmd.key
    outcome: Outcome | None = None
    if cmd.lever is None:
        error = "position has no lever"
    else:
        try:
            info = await client.adjust_leverage_info(key[1], cmd.lever, key[2])
        except (*EXCHANGE_ERRORS, ValueError) as exc:
            error, outcome = str(exc), outcome_of(exc)
        else:
            cap = finite_decimal(info.get("estAvailTrans"))
            if cap is not None and cap >= 0:
                return core.on_reduce_checked(cmd.call, cap, now=clock())
            error = f"estAvailTrans not a number: {str(info.get('estAvailTrans'))[:40]!r}"
            return core.on_reduce_check_empty(cmd.call, error, now=clock())  # OKX answered
    refused = (
        []
        if outcome is None
        else core.on_read_refused(key[0], "estAvailTrans", outcome, now=clock())
    )
    return refused + core.on_reduce_check_failed(cmd.call, error, now=clock(), outcome=outcome)


async def sync_clock(cmd: SyncClock, client: MarginClient) -> list[Command]:
    """Measure the offset to OKX's clock again (the core asks after a timestamp refusal)."""
    try:
        offset = await client.sync_clock()
    except EXCHANGE_ERRORS as exc:
        log.warning("rest.clock.resync", account=cmd.account, error=str(exc))
        return []
    log.info("rest.clock.resync", account=cmd.account, offset_s=round(offset, 3))
    return []


def key_fields(key: PositionKey | None) -> dict[str, str]:
    """A position's log fields (none for an account-wide command)."""
    if key is None or not key[0]:
        return {}
    return {"account": key[0], "instId": key[1], "posSide": key[2]}
