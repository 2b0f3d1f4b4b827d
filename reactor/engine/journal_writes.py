"""The engine shell's synchronous ledger writes: the calls a crash left unanswered, the intents
of a batch's calls before they leave (:class:`WriteIntent`, one commit), a call's result
(:class:`WriteResult`) and a detected maintenance (:class:`WriteMaintenance`). Each is durable
before the core hears the answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from reactor.engine.bill_reads import STORAGE_ERRORS
from reactor.engine.commands import Command, WriteIntent, WriteMaintenance, WriteResult
from reactor.engine.core import EngineCore
from reactor.log import error_text
from reactor.store import Intent, Ledger, LedgerError

Clock = Callable[[], float]
HOUR_S = 3600.0


def recover(ledger: Ledger, core: EngineCore, clock: Clock) -> tuple[list[Command], int]:
    """Intents without a result are calls a crash left unanswered: mark them unknown (their
    positions are re-read before anything is sent) and refill the runaway guard. The core's
    commands and how many there were."""
    pending = ledger.pending_intents()
    for entry in pending:
        ledger.journal_result(entry.id, "unknown", None, "no result before restart")
    wall_now = time.time()
    recent = ledger.journal_since(int((wall_now - HOUR_S) * 1000))
    return core.recover(pending, recent, now=clock(), wall_now=wall_now), len(pending)


def write_intents(
    cmds: Sequence[WriteIntent], ledger: Ledger, core: EngineCore, clock: Clock
) -> list[Command]:
    """The intents of one batch in one commit (all or none; issue 18). Each carries its send
    time on OKX's clock, with the offset in force now (the one the signed request will carry):
    its bill is matched on it, whatever the local clock does later."""
    intents = []
    for cmd in cmds:
        account, inst_id, pos_side = cmd.key[0], cmd.key[1], cmd.key[2]
        state = core.accounts.get(account)
        okx_ms = None if state is None or state.client is None else state.client.clock.now_ms()
        amount = format(cmd.amount, "f")
        intents.append(Intent(account, inst_id, pos_side, cmd.action, amount, cmd.request, okx_ms))
    out: list[Command] = []
    try:
        journal_ids = ledger.journal_intents(intents)
    except STORAGE_ERRORS as exc:
        error = error_text(exc)
        for cmd in cmds:
            out += core.on_intent_failed(cmd.call, error, now=clock())
        return out
    for cmd, journal_id in zip(cmds, journal_ids, strict=True):
        out += core.on_intent_written(cmd.call, journal_id, now=clock())
    return out


def write_result(cmd: WriteResult, ledger: Ledger, core: EngineCore, clock: Clock) -> list[Command]:
    try:
        ledger.journal_result(cmd.journal_id, cmd.status, cmd.code, cmd.msg)
    except STORAGE_ERRORS as exc:
        return core.on_result_failed(cmd, error_text(exc), now=clock())
    return core.on_result_written(cmd.journal_id, now=clock())


def write_maintenance(
    cmd: WriteMaintenance, ledger: Ledger, core: EngineCore, clock: Clock
) -> list[Command]:
    """Synchronous, like the journal: the count is durable before the next evaluation."""
    rec = cmd.record
    try:
        row = ledger.record(
            rec.account,
            rec.inst_id,
            rec.pos_side,
            rec.key,
            source="fill",
            c_time=rec.c_time,
            ord_id=rec.ord_id,
        )
    except ValueError as exc:  # a record the ledger can never take: dropped, said once
        return core.on_maintenance_failed(rec, error_text(exc), now=clock(), retry=False)
    except (*STORAGE_ERRORS, LedgerError) as exc:
        return core.on_maintenance_failed(rec, error_text(exc), now=clock())
    return core.on_maintenance_written(rec, None if row is None else row.id, now=clock())
