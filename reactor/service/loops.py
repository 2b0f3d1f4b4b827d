"""The runtime's periodic loops: the REST reconcile pass and the ledger poll (maintenance
records, voids and pauses written by another process; a ledger file lost under us).

Each loop survives its own failures (an event per failure) and ends only when cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from reactor.log import error_text, get_logger
from reactor.service.runtime import Runtime
from reactor.store import LedgerError, Pause

log = get_logger("reactor.service.loops")


def pause_map(pauses: list[Pause]) -> dict[tuple[str, str | None, str | None], str]:
    """The ledger's pauses as the engine's input (key -> reason)."""
    return {p.key: p.reason for p in pauses}


def sync_pauses(rt: Runtime) -> None:
    """Hand the ledger's pauses to the engine (the whole set; the engine diffs), and log each
    pause this process applies or lifts, however it was made (CLI, API): the reactor's own
    log then tells why a position stopped being corrected."""
    current = rt.ledger.pauses()
    keys = {p.key for p in current}
    for p in current:
        if p.key not in rt.pauses_applied:
            log.info(
                "control.pause.applied",
                account=p.account,
                instId=p.inst_id,
                posSide=p.pos_side,
                reason=p.reason,
                source=p.source,
            )
    for account, inst_id, pos_side in sorted(rt.pauses_applied - keys, key=str):
        log.info("control.pause.lifted", account=account, instId=inst_id, posSide=pos_side)
    rt.pauses_applied = frozenset(keys)
    rt.engine.on_paused(pause_map(current))
    rt.status_changed.set()


async def hold(on_cancel: Callable[[], Awaitable[None]]) -> None:
    """A task that runs ``on_cancel`` when the runtime stops."""
    try:
        await asyncio.Event().wait()
    finally:
        await on_cancel()


async def reconcile_loop(rt: Runtime) -> None:
    """Every ``reconcile_interval_s``: read each running account's positions over REST."""
    while True:
        await asyncio.sleep(rt.cfg.timing.reconcile_interval_s)
        for name in list(rt.clients):
            try:
                await rt.engine.reconcile_account(name)
            except Exception as exc:  # one bad pass must not end reconciling for good
                log.exception(
                    "reactor.task.error", task="reconcile", account=name, error=error_text(exc)
                )


async def ledger_loop(rt: Runtime) -> None:
    """Notice maintenance records written by other processes (the CLI) within a poll tick,
    and a ledger file deleted or replaced under us (``ledger.unavailable``)."""
    ledger = rt.ledger
    version: int | None = None
    last_id = last_audit = 0
    problem: str | None = None
    while True:
        try:
            ledger.check()
            if version is None:
                version = ledger.data_version()
                records = ledger.list_maintenance()
                last_id = records[-1].id if records else 0
                audits = ledger.audit_after(0)
                last_audit = audits[-1].id if audits else 0
                sync_pauses(rt)  # one written between start-up and this first tick
            else:
                now = ledger.data_version()
                if now != version:
                    version = now
                    last_id = _new_records(rt, last_id)
                    last_audit = _new_voids(rt, last_audit)
                    sync_pauses(rt)  # `reactor pause`/`resume` from another process
        except LedgerError as exc:
            if problem != str(exc):
                problem = str(exc)
                reason = getattr(exc, "reason", "error")
                log.error("ledger.unavailable", reason=reason, error=problem[:300])
        except Exception as exc:
            log.exception("reactor.task.error", task="ledger", error=error_text(exc))
        else:
            if problem is not None:
                problem = None
                log.info("ledger.recovered")
        await asyncio.sleep(rt.cfg.timing.ledger_poll_ms / 1000)


def _new_records(rt: Runtime, last_id: int) -> int:
    fresh = rt.ledger.records_after(last_id)
    if not fresh:
        return last_id
    keys = {(r.account, r.inst_id, r.pos_side) for r in fresh}
    for r in fresh:
        log.info(
            "maintenance.seen",
            account=r.account,
            instId=r.inst_id,
            posSide=r.pos_side,
            key=r.key,
        )
    rt.engine.on_counts_changed(keys)
    return fresh[-1].id


def _new_voids(rt: Runtime, last_audit: int) -> int:
    """``reactor maintenance void`` in another process: the count (and target) may drop."""
    fresh = rt.ledger.audit_after(last_audit)
    if not fresh:
        return last_audit
    keys = set()
    for entry in fresh:
        for rec in rt.ledger.find(entry.key, entry.account):
            if rec.id == entry.record_id:
                keys.add((rec.account, rec.inst_id, rec.pos_side))
                log.info(
                    "maintenance.void.seen",
                    account=rec.account,
                    instId=rec.inst_id,
                    posSide=rec.pos_side,
                    key=rec.key,
                )
    if keys:
        rt.engine.on_counts_changed(keys)
    return fresh[-1].id
