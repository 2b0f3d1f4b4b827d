"""Recover maintenance fills missed while away (restart, reconnect) from OKX's own history.

Thin driver over the pure :func:`reactor.domain.fills.missing_from_bills` /
:func:`missing_from_orders`: read type-2 ``account/bills`` (one per fill, with ``tag`` and
``clOrdId``; partial fills of orders still live included) and, when configured,
``trade/orders-history`` (completed orders) plus ``trade/orders-pending`` (partially filled
ones), since the oldest open position's ``cTime`` (at most 7 days: what OKX keeps there), and
write every matching fill the ledger lacks as a ``backfill`` record, tied to its position.
The engine runs this after a fresh snapshot and before it corrects that account's positions,
so a maintenance filled during a disconnect moves the target before any margin call.

Idempotent by construction: the ledger refuses a second record of an ``ordId``, so a recovery
that overlaps the live ``orders`` channel, or runs twice, counts nothing twice.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from reactor.domain.fills import (
    DetectRule,
    GateKey,
    RecordMaintenance,
    missing_from_bills,
    missing_from_orders,
    recovery_since_ms,
)
from reactor.engine.bill_reads import EXCHANGE_ERRORS, STORAGE_ERRORS
from reactor.engine.commands import RecoverFills
from reactor.engine.state import StorageError
from reactor.log import error_text, get_logger
from reactor.okx.bills import BILL_TYPE_TRADE, Bill, parse_bill
from reactor.okx.models import PayloadError, Position, PositionKey
from reactor.okx.orders import OrderUpdate, parse_order
from reactor.okx.rest import PAGE_LIMIT, pages
from reactor.store import Ledger, LedgerError

__all__ = [
    "RECOVERY_SOURCES",
    "HistoryClient",
    "LedgerCounts",
    "RecoveryResult",
    "recover_account",
    "recover_for",
]

log = get_logger(__name__)

DAY_MS = 86_400_000
HISTORY_MAX_AGE_MS = 7 * DAY_MS  # orders-history and bills cover the last 7 days
# orders-history filters on the order's cTime: a limit order placed before the position opened
# can fill after it, so read a day further back than the oldest position.
ORDER_SLACK_MS = DAY_MS
RECOVERY_SOURCES = ("bills", "orders")


class HistoryClient(Protocol):
    """The three reads recovery needs (``OkxRestClient`` has them)."""

    async def get_orders_history(
        self,
        inst_type: str = ...,
        *,
        begin_ms: int | None = ...,
        after: str | None = ...,
        limit: int = ...,
    ) -> list[dict[str, Any]]: ...

    async def get_orders_pending(
        self, inst_type: str = ..., *, after: str | None = ..., limit: int = ...
    ) -> list[dict[str, Any]]: ...

    async def get_bills(
        self,
        inst_id: str,
        *,
        bill_type: str = ...,
        sub_type: str | None = ...,
        begin_ms: int | None = ...,
        end_ms: int | None = ...,
        after: str | None = ...,
        limit: int = ...,
    ) -> list[dict[str, Any]]: ...


@dataclass(slots=True)
class RecoveryResult:
    account: str
    since_ms: int
    orders: int = 0
    bills: int = 0
    invalid: int = 0
    complete: bool = True  # False: a page limit was hit, older fills may be missing
    recorded: list[RecordMaintenance] = field(default_factory=list)

    @property
    def affected(self) -> set[GateKey]:
        return {r.position_key for r in self.recorded}


async def _rows(
    fetch: Any, id_field: str, stop_before_ms: int, time_field: str, max_pages: int
) -> tuple[list[dict[str, Any]], bool]:
    """Newest-first pages until one reaches back to ``stop_before_ms``; (rows, complete)."""
    rows: list[dict[str, Any]] = []
    paged = pages(fetch, id_field, max_pages=max_pages, limit=PAGE_LIMIT)
    async for page in paged:
        rows.extend(page)
        if len(page) < PAGE_LIMIT:
            break
        try:
            oldest = int(page[-1].get(time_field) or 0)
        except (TypeError, ValueError):
            oldest = 0
        if oldest < stop_before_ms:
            break
    return rows, not paged.truncated


def _parse_all(
    account: str, rows: Iterable[dict[str, Any]], parse: Any, result: RecoveryResult
) -> list[Any]:
    out = []
    for raw in rows:
        try:
            out.append(parse(account, raw))
        except PayloadError as exc:
            result.invalid += 1
            log.warning("maintenance.recovery.invalid", account=account, error=str(exc))
    return out


async def recover_account(
    client: HistoryClient,
    ledger: Ledger,
    account: str,
    positions: Iterable[Position],
    rule: DetectRule,
    now_ms: int,
    *,
    sources: tuple[str, ...] = ("bills",),
    max_pages: int = 20,
) -> RecoveryResult:
    """Read the account's recent orders (and trade bills) and record the missing maintenances.

    Raises what the client raises (``OkxError``, ``RequestNotSent``, ``AmbiguousOutcome``): the
    caller logs ``maintenance.recovery.failed`` and tries again, nothing was written.
    """
    open_positions = [p for p in positions if p.pos != 0 and p.account == account]
    since = recovery_since_ms(open_positions, now_ms, HISTORY_MAX_AGE_MS)
    result = RecoveryResult(account, since)
    if not open_positions:
        log.info("maintenance.recovery.done", account=account, since_ms=since, recorded=0)
        return result
    begin = max(since - ORDER_SLACK_MS, now_ms - HISTORY_MAX_AGE_MS)

    async def history(after: str | None) -> list[dict[str, Any]]:
        return await client.get_orders_history(begin_ms=begin, after=after, limit=PAGE_LIMIT)

    async def pending(after: str | None) -> list[dict[str, Any]]:
        return await client.get_orders_pending(after=after, limit=PAGE_LIMIT)

    async def bills(after: str | None) -> list[dict[str, Any]]:
        # Every isolated SWAP instrument (instId left out): type 2, one bill per fill.
        return await client.get_bills(
            "", bill_type=BILL_TYPE_TRADE, begin_ms=since, after=after, limit=PAGE_LIMIT
        )

    unknown = set(sources) - set(RECOVERY_SOURCES)
    if unknown or not sources:
        raise ValueError(f"sources must be among {RECOVERY_SOURCES}, not {sorted(sources)}")
    orders: list[OrderUpdate] = []
    if "orders" in sources:
        hist_rows, hist_done = await _rows(history, "ordId", begin, "cTime", max_pages)
        pend_rows, pend_done = await _rows(pending, "ordId", 0, "cTime", max_pages)
        orders = _parse_all(account, [*hist_rows, *pend_rows], parse_order, result)
        result.orders = len(orders)
        result.complete = hist_done and pend_done
    bill_list: list[Bill] = []
    if "bills" in sources:
        bill_rows, bills_done = await _rows(bills, "billId", since, "ts", max_pages)
        bill_list = _parse_all(account, bill_rows, parse_bill, result)
        result.bills = len(bill_list)
        result.complete = result.complete and bills_done

    recorded = ledger.recorded_ord_ids(account)
    found = missing_from_orders(account, orders, open_positions, recorded, rule)
    seen = recorded | {r.ord_id for r in found}
    found += missing_from_bills(account, bill_list, open_positions, seen, rule)
    for rec in found:
        row = ledger.record(
            rec.account,
            rec.inst_id,
            rec.pos_side,
            rec.key,
            source="backfill",
            c_time=rec.c_time,
            ord_id=rec.ord_id,
        )
        fields = {"account": rec.account, "instId": rec.inst_id, "posSide": rec.pos_side}
        if row is None:  # recorded meanwhile (the live channel, another process)
            log.info("maintenance.duplicate", **fields, key=rec.key, source="backfill")
            continue
        result.recorded.append(rec)
        log.info(
            "maintenance.recorded",
            **fields,
            key=rec.key,
            source="backfill",
            record_id=row.id,
            cTime=rec.c_time,
        )
    log.info(
        "maintenance.recovery.done",
        account=account,
        since_ms=since,
        orders=result.orders,
        bills=result.bills,
        recorded=len(result.recorded),
        complete=result.complete,
    )
    return result


async def recover_for(
    cmd: RecoverFills,
    client: object,
    ledger: Ledger,
    rule: DetectRule | None,
    sources: tuple[str, ...],
) -> set[PositionKey] | str:
    """The shell's :class:`RecoverFills`: the positions with new records, or why the history
    could not be read (the core goes on with the counts there are)."""
    if rule is None or not hasattr(client, "get_bills"):
        return set()
    try:
        result = await recover_account(
            cast(HistoryClient, client),
            ledger,
            cmd.account,
            cmd.positions,
            rule,
            int(time.time() * 1000),  # OKX's history is in wall-clock ms
            sources=sources,
        )
    except (*EXCHANGE_ERRORS, *STORAGE_ERRORS) as exc:
        return error_text(exc)
    return {r.position_key for r in result.recorded}


class LedgerCounts:
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
