"""Every journal row ends final: the open ones (``pending`` or ``unknown``, whatever run left
them: a crash, a SIGTERM with the request in flight, a result write that failed) are resolved
from OKX's margin-transfer bills, at start and with every interval reconcile.

A row whose bill is found becomes ``ok`` (the bill credited to it); a row sent more than
``BOOKED_WITHIN_MS`` ago with no bill was not applied (``error``, its earlier message kept); a
row older than OKX keeps bills (``GET bills``: 7 days, docs/spec/okx-fidelity.md §5) can no longer
be decided and becomes ``expired``. Rows of an account the reactor has no client for wait until
then. The core's own resolution of an ambiguous call (:class:`ResolveOutcome`) is not replaced:
this only closes the rows nothing else will.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reactor.engine.bill_reads import EXCHANGE_ERRORS, HOUR_MS, STORAGE_ERRORS, BillReader
from reactor.engine.foreign import bill_of_call, journal_floor_ms, okx_sent_ms
from reactor.engine.state import AccountState, MarginClient, Role
from reactor.log import error_text, get_logger
from reactor.okx.bills import TRANSFER_SUBTYPE, parse_transfers
from reactor.okx.models import PayloadError
from reactor.okx.rest import pages
from reactor.store import JournalEntry, Ledger, ResultStatus

log = get_logger("reactor.engine")

# OKX books a transfer it applied within seconds; a row this old without a bill was not applied
# (and no call of this run is still in flight: requests time out long before).
BOOKED_WITHIN_MS = 120_000
# ``GET /api/v5/account/bills`` covers the last 7 days; an hour's margin so a read never starts
# before OKX's own cut-off.
BILLS_KEPT_MS = 7 * 24 * HOUR_MS - HOUR_MS
SETTLE_PAGES_MAX = 20


@dataclass(slots=True)
class Settled:
    """What one pass did: rows made ok by their bill, not applied, expired, still open."""

    ok: int = 0
    not_applied: int = 0
    expired: int = 0
    left: int = 0


def _offset_ms(accounts: Mapping[str, AccountState], account: str) -> int:
    """The account's offset to OKX's clock in force now (0: no client)."""
    state = accounts.get(account)
    client = None if state is None else state.client
    return 0 if client is None else round(client.clock.offset_s * 1000)


def _age_ms(entry: JournalEntry, accounts: Mapping[str, AccountState], wall_ms: int) -> int:
    """How long ago ``entry`` was sent, on OKX's clock (the one its bills and their 7 days
    are on): a step of the local clock since the send never ages it."""
    offset = _offset_ms(accounts, entry.account)
    return wall_ms + offset - okx_sent_ms(entry, offset)


def _note(entry: JournalEntry, what: str) -> str:
    was = f"{entry.status}" + (f": {entry.msg}" if entry.msg else "")
    return f"{what} (was {was})"[:300]


async def settle_open(
    ledger: Ledger,
    accounts: Mapping[str, AccountState],
    bills: BillReader,
    skew_ms: int,
    wall_ms: int,
    *,
    only: str | None = None,
) -> Settled:
    """One pass over the open rows (of account ``only`` when given). Never raises for an
    exchange or storage failure: what could not be read stays open for the next pass."""
    done = Settled()
    try:
        rows = [e for e in ledger.open_entries() if only is None or e.account == only]
    except STORAGE_ERRORS as exc:
        log.warning("journal.settle.failed", error=error_text(exc))
        return done
    groups: dict[tuple[str, str, str], list[JournalEntry]] = {}
    for entry in rows:
        try:
            if _age_ms(entry, accounts, wall_ms) > BILLS_KEPT_MS:
                _close(ledger, entry, "expired", _note(entry, "bills no longer kept by OKX"), done)
            elif entry.bill_id is not None:
                _credit(ledger, entry, entry.bill_id, done)
            else:
                groups.setdefault((entry.account, entry.inst_id, entry.action), []).append(entry)
        except STORAGE_ERRORS as exc:
            done.left += 1
            log.warning("journal.settle.failed", journal_id=entry.id, error=error_text(exc))
    for (account, inst_id, action), entries in groups.items():
        state = accounts.get(account)
        if state is None or state.client is None or state.role is not Role.SUB:
            done.left += len(entries)
            continue
        try:
            await _settle_group(
                ledger, state.client, bills, skew_ms, wall_ms, inst_id, action, entries, done
            )
        except (*EXCHANGE_ERRORS, PayloadError, *STORAGE_ERRORS) as exc:
            done.left += len(entries)
            log.warning(
                "journal.settle.failed", account=account, instId=inst_id, error=error_text(exc)
            )
    if done.ok or done.not_applied or done.expired:
        log.info(
            "journal.settled",
            ok=done.ok,
            not_applied=done.not_applied,
            expired=done.expired,
            left=done.left,
        )
    return done


async def _settle_group(
    ledger: Ledger,
    client: MarginClient,
    bills: BillReader,
    skew_ms: int,
    wall_ms: int,
    inst_id: str,
    action: str,
    entries: list[JournalEntry],
    done: Settled,
) -> None:
    """A found bill decides at once (booked: applied); no bill decides "not applied" only
    ``BOOKED_WITHIN_MS`` after the send."""
    offset_ms = await bills.server_offset_ms(entries[0].account, client)
    begin_ms = min(okx_sent_ms(e, offset_ms) for e in entries) - skew_ms

    async def fetch(after: str | None) -> list[dict[str, Any]]:
        return await client.get_bills(
            inst_id, sub_type=TRANSFER_SUBTYPE[action], begin_ms=begin_ms, after=after
        )

    raw = [row async for page in pages(fetch, "billId", max_pages=SETTLE_PAGES_MAX) for row in page]
    found, _ = parse_transfers(raw)
    okx_now = wall_ms + offset_ms
    for entry in entries:
        sent = okx_sent_ms(entry, offset_ms)
        recent = ledger.journal_since(journal_floor_ms(sent, offset_ms), entry.account)
        bill = bill_of_call(found, entry, recent, offset_ms, None, skew_ms)
        if bill is not None:
            _credit(ledger, entry, bill.bill_id, done)
        elif okx_now - sent >= BOOKED_WITHIN_MS:
            _close(ledger, entry, "error", _note(entry, "not applied: no bill"), done)
        else:
            done.left += 1


def _credit(ledger: Ledger, entry: JournalEntry, bill_id: str, done: Settled) -> None:
    try:
        ledger.journal_bill(entry.id, bill_id, status="ok")
    except ValueError:  # credited to another row meanwhile: this one was not applied
        _close(ledger, entry, "error", _note(entry, f"bill {bill_id} is another call's"), done)
        return
    done.ok += 1
    log.info("journal.settled.row", journal_id=entry.id, status="ok", bill_id=bill_id)


def _close(
    ledger: Ledger, entry: JournalEntry, status: ResultStatus, msg: str, done: Settled
) -> None:
    ledger.journal_result(entry.id, status, entry.code, msg)
    if status == "expired":
        done.expired += 1
    else:
        done.not_applied += 1
    log.info("journal.settled.row", journal_id=entry.id, status=status)
