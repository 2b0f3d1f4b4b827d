"""The I/O of OKX's margin-transfer bills for the engine shell: the foreign-transfer reads
(:class:`ReadBills`) and the bill that decides an ambiguous call (:class:`ResolveOutcome`).

What the bills mean is decided sans-I/O in :mod:`reactor.engine.foreign` (:class:`BillWindow`,
owned by the core, and :func:`bill_of_call`); here are only the paged reads, the journal
writes that credit a bill to its call, and the offset to OKX's clock the matching needs.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from reactor.engine.calls import outcome_of
from reactor.engine.commands import Command
from reactor.engine.foreign import (
    BILL_PAGES_MAX,
    BillWindow,
    bill_of_call,
    credited_bill,
    journal_floor_ms,
    okx_sent_ms,
)
from reactor.engine.state import AccountState, EngineSettings, MarginClient, PendingOutcome, Role
from reactor.log import error_text, get_logger
from reactor.okx.bills import TRANSFER_SUBTYPE, Bill, parse_transfers
from reactor.okx.errors import AmbiguousOutcome, OkxError, RequestNotSent
from reactor.okx.models import PayloadError, PositionKey
from reactor.okx.rest import pages
from reactor.store import Ledger, LedgerError

if TYPE_CHECKING:
    from reactor.engine.core import EngineCore

log = get_logger("reactor.engine")

HOUR_MS = 3_600_000
# LedgerError (reactor.store): locked too long, disk full, I/O error, file deleted or
# replaced; KeyError: the entry vanished. sqlite3/OSError: a ledger that does not wrap its errors.
STORAGE_ERRORS = (LedgerError, sqlite3.Error, OSError, KeyError)
# A drift's bills read starts this long after the push: the corrections the push started
# leave first (the read's request building and, on its answer, the journal query would
# otherwise run ahead of them on the loop), and the drifts of one burst fold into one read.
# It stays off the hot path; a position that waits for the bills (the fence) waits this much
# longer, against a ``bills_wait_s`` of seconds.
DRIFT_READ_DELAY_S = 0.02
EXCHANGE_ERRORS = (OkxError, RequestNotSent, AmbiguousOutcome)

# A read's answer: the foreign transfers, or why the bills could not be read.
# An exchange refusal is answered as the exception (the core reads its class).
Answer = Callable[[str, "list[Bill] | str | BaseException"], None]


def route_answer(
    core: EngineCore,
    account: str,
    trigger: str,
    result: list[Bill] | str | BaseException,
    now: float,
) -> list[Command]:
    """A bills read's answer as the core's input: a refusal by its code's class (credentials
    stop the account, a clock refusal resyncs: :meth:`EngineCore.on_read_refused`), then a
    failure or the bills read."""
    out: list[Command] = []
    if isinstance(result, BaseException):
        out += core.on_read_refused(account, "bills", outcome_of(result), now=now)
        result = str(result)
    if isinstance(result, str):
        return out + core.on_bills_failed(account, trigger, result, now=now)
    return out + core.on_bills_read(account, result, trigger, now=now)


class BillReader:
    """Reads bills for the core's commands; the core's :class:`BillWindow` keeps the cursor."""

    def __init__(
        self,
        ledger: Ledger,
        window: BillWindow,
        settings: EngineSettings,
        accounts: Mapping[str, AccountState],
    ) -> None:
        self._ledger = ledger
        self._window = window
        self._settings = settings
        self._accounts = accounts

    async def server_offset_ms(self, account: str, client: MarginClient) -> int:
        """The offset to OKX's clock, measured before bills are matched to journal times if
        nothing measured it yet (the REST client otherwise measures it only after a 50102)."""
        if not client.clock.measurements:
            try:
                await client.sync_clock()
            except EXCHANGE_ERRORS as exc:
                log.warning("rest.clock.sync_failed", account=account, error=str(exc)[:200])
        return round(client.clock.offset_s * 1000)

    async def resolve(
        self, client: MarginClient, key: PositionKey, pending: PendingOutcome | None
    ) -> tuple[Bill | None, str | None]:
        """What OKX booked decides an ambiguous call: a matching bill (docs/spec/okx-fidelity.md
        §5.4), read at once and once more after ``bill_settle_s``. The bill, or why none."""
        if pending is None or not pending.journal_id:
            return None, None
        journal_id, margin_before = pending.journal_id, pending.margin_before
        bill: Bill | None = None
        try:
            bill = await self._find(client, key, journal_id, margin_before)
            if bill is None:
                await asyncio.sleep(self._settings.bill_settle_s)
                bill = await self._find(client, key, journal_id, margin_before)
            if bill is None:
                return None, "no matching bill after the settle delay"
            self._ledger.journal_bill(journal_id, bill.bill_id, status="ok")
            return bill, None
        except (*EXCHANGE_ERRORS, PayloadError) as exc:
            return None, f"bills unreadable: {error_text(exc)[:160]}"
        except STORAGE_ERRORS as exc:
            # The bill decides even if it cannot be journalled now; the next bills read
            # credits it again.
            return bill, f"bill not journalled: {error_text(exc)[:160]}"
        except ValueError as exc:  # credited to another call meanwhile: not ours
            return None, f"bill refused: {exc}"

    async def _find(
        self,
        client: MarginClient,
        key: PositionKey,
        journal_id: int,
        margin_before: Decimal | None,
    ) -> Bill | None:
        entry = self._ledger.journal_entry(journal_id)
        if entry is None:
            return None
        if entry.bill_id is not None:
            return credited_bill(entry)
        offset_ms = await self.server_offset_ms(key[0], client)
        skew = self._settings.bill_skew_ms
        sent = okx_sent_ms(entry, offset_ms)
        raw = await client.get_bills(
            key[1], sub_type=TRANSFER_SUBTYPE[entry.action], begin_ms=sent - skew
        )
        bills, _ = parse_transfers(raw)
        recent = self._ledger.journal_since(journal_floor_ms(sent, offset_ms), key[0])
        return bill_of_call(bills, entry, recent, offset_ms, margin_before, skew)

    def begin(self, account: str, trigger: str) -> bool:
        """True when a read of ``account`` starts now (the caller runs :meth:`read` with
        ``begun``); False: one runs, and it reads once more after. Asked before a task is
        made: a push with three drifts on one account starts one task, not three."""
        return self._window.begin(account, trigger)

    def end(self, account: str) -> None:
        """A read begun was cancelled (perhaps before it ran): the next request starts one."""
        self._window.end(account)

    async def read(
        self, account: str, trigger: str, answer: Answer, *, begun: bool = False
    ) -> None:
        """Read the account's margin-transfer bills since the last read and ``answer`` those
        no journalled call accounts for (foreign transfers). One read per account at a time:
        a request during a read runs once more after it."""
        if not begun and not self._window.begin(account, trigger):
            return
        again: str | None = trigger
        try:
            if trigger == "drift":
                await asyncio.sleep(DRIFT_READ_DELAY_S)
                self._window.fold(account)  # asked for meanwhile: this read covers it
            while again is not None:
                await self._read_once(account, again, answer)
                again = self._window.again(account)
        except BaseException:
            self._window.end(account)
            raise

    async def _read_once(self, account: str, trigger: str, answer: Answer) -> None:
        state = self._accounts.get(account)
        if state is None or state.client is None or state.role is not Role.SUB:
            return
        if self._settings.dry_run:
            # A dry run moves nothing, so every transfer is someone else's (typically the
            # controller it is being compared with): no fence to keep, no alert to raise.
            return
        client, window = state.client, self._window
        offset_ms = await self.server_offset_ms(account, client)
        begin_ms = window.since(account, offset_ms) - window.skew_ms

        async def fetch(after: str | None) -> list[dict[str, Any]]:
            return await client.get_bills("", begin_ms=begin_ms, after=after)

        try:
            raw = [
                row
                async for page in pages(fetch, "billId", max_pages=BILL_PAGES_MAX)
                for row in page
            ]
            entries = self._ledger.journal_since(window.journal_since(account, offset_ms), account)
        except EXCHANGE_ERRORS as exc:
            answer(trigger, exc)
            return
        except STORAGE_ERRORS as exc:
            answer(trigger, error_text(exc))
            return
        bills, errors = parse_transfers(raw)
        for reason in errors:
            log.warning("rest.payload.invalid", account=account, what="bill", reason=reason)
        judged = window.judge(account, bills, entries, offset_ms)
        for journal_id, bill_id in judged.credits:
            try:
                self._ledger.journal_bill(journal_id, bill_id)
            except (*STORAGE_ERRORS, ValueError) as exc:
                log.warning(
                    "bills.credit.failed", account=account, billId=bill_id, error=error_text(exc)
                )
        # Always answered, foreign or not: positions that wait for this read go on.
        answer(trigger, list(judged.foreign))
