"""Time never confuses whose transfer it was (issue 21 item 5): a journal row carries its send
time on OKX's clock, taken with the offset in force when it was written, and bills are matched,
settled and aged on it, so a step of the local clock (and the new offset measured after it)
never turns the reactor's own earlier transfers into someone else's. Fake clocks throughout."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

from reactor.engine.bill_reads import HOUR_MS, BillReader
from reactor.engine.foreign import BillWindow, call_record, okx_sent_ms
from reactor.engine.journal_settle import BOOKED_WITHIN_MS, settle_open
from reactor.engine.state import AccountState, Role
from reactor.okx.bills import transfer_bill
from reactor.store import JournalEntry, SqliteLedger

from .core_driver import CRO, settings
from .test_journal_settle import NOW_MS, A, Bills

JUMP_MS = HOUR_MS  # the host clock steps +1 h; the offset measured after it is -1 h


def entry(
    jid: int, sent_ms: int, okx_ms: int | None, done_ms: int | None = None, amount: str = "9.7"
) -> JournalEntry:
    return JournalEntry(
        jid, A, CRO, "long", "add", amount, "", "ok", None, None, sent_ms,
        sent_ms + 100 if done_ms is None else done_ms, None, okx_ms,
    )  # fmt: skip


def test_our_transfer_before_a_clock_step_stays_ours_after_the_new_offset() -> None:
    """Sent and booked before the step (offset 0 then); read after it with offset -1 h:
    credited to its call, never foreign. A row written before the journal kept OKX's time
    falls back to today's rule (the new offset), which is what went wrong."""
    window = BillWindow(started_ms=NOW_MS - 60_000, skew_ms=5_000)
    bill = transfer_bill("b1", CRO, "add", Decimal("9.7"), None, NOW_MS + 300)
    judged = window.judge(A, [bill], [entry(7, NOW_MS, NOW_MS)], offset_ms=-JUMP_MS)
    assert judged.credits == [(7, "b1")] and judged.foreign == []

    legacy = BillWindow(started_ms=NOW_MS - 60_000, skew_ms=5_000)
    judged = legacy.judge(A, [bill], [entry(7, NOW_MS, None)], offset_ms=-JUMP_MS)
    assert judged.credits == [] and [b.bill_id for b in judged.foreign] == ["b1"]


def test_a_call_sent_after_the_step_is_matched_on_the_offset_it_was_sent_with() -> None:
    """After the step the local clock is an hour fast; the row's OKX time (local + the new
    offset) is what its signed request carried, so its bill is its own."""
    local = NOW_MS + JUMP_MS
    bill = transfer_bill("b2", CRO, "add", Decimal("9.7"), None, NOW_MS + 200)
    window = BillWindow(started_ms=NOW_MS - 60_000, skew_ms=5_000)
    judged = window.judge(A, [bill], [entry(8, local, NOW_MS)], offset_ms=-JUMP_MS)
    assert judged.credits == [(8, "b2")] and judged.foreign == []


def test_the_answer_time_is_the_send_time_plus_the_local_time_between() -> None:
    """done on OKX's clock = sent on OKX's clock + (done - sent) locally, never before the send
    (a clock stepped back between the two)."""
    rec = call_record(entry(1, 5_000, 1_000_000, done_ms=5_400), offset_ms=-JUMP_MS)
    assert (rec.sent_ms, rec.done_ms) == (1_000_000, 1_000_400)
    back = call_record(entry(1, 5_000, 1_000_000, done_ms=5_000 - JUMP_MS), offset_ms=0)
    assert back.done_ms == 1_000_000
    assert okx_sent_ms(entry(1, 5_000, None), offset_ms=-200) == 4_800  # today's rule


def test_the_journal_read_for_the_bills_covers_rows_written_before_the_step() -> None:
    """The cursor (OKX ms) converted to local time with the new offset lies an hour after the
    rows written before the step; the journal read starts early enough for both."""
    window = BillWindow(started_ms=NOW_MS, skew_ms=5_000)
    since = window.since(A, -JUMP_MS)
    assert window.journal_since(A, -JUMP_MS) <= NOW_MS - 60_000  # a row sent a minute before
    assert window.journal_since(A, -JUMP_MS) <= since + JUMP_MS - HOUR_MS
    assert window.journal_since(A, 0) == window.since(A, 0) - HOUR_MS  # no offset: unchanged


class SteppedBills(Bills):
    """The bills endpoint, seen by a client whose local clock stepped +1 h (offset -1 h)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock.offset_s = -JUMP_MS / 1000


def _settle(ledger: SqliteLedger, bills: Bills, wall_ms: int) -> object:
    accounts = {A: AccountState(A, Role.SUB, client=bills)}  # type: ignore[arg-type]
    reader = BillReader(ledger, BillWindow(NOW_MS, 5000), settings(), accounts)
    return asyncio.run(settle_open(ledger, accounts, reader, 30_000, wall_ms))


def test_settle_after_a_step_waits_for_a_young_row_and_credits_its_bill(tmp_path: Path) -> None:
    """A row sent a second before the step is a second old on OKX's clock, not an hour: not
    closed as "not applied" while OKX may still book it; its bill, once booked, makes it ok."""
    clock = {"ms": NOW_MS}
    ledger = SqliteLedger(tmp_path / "l.sqlite", clock=lambda: clock["ms"] / 1000)
    jid = ledger.journal_intent(A, CRO, "long", "add", "4.5", "{}", okx_ms=NOW_MS)
    ledger.journal_result(jid, "unknown", None, "timeout")
    assert ledger.journal_entry(jid) == ledger.journal(1)[0]
    assert ledger.journal(1)[0].sent_okx_ms == NOW_MS
    bills = SteppedBills()
    wall = NOW_MS + JUMP_MS + 1_000  # the host clock an hour fast, a second later
    done = _settle(ledger, bills, wall)
    assert (done.left, ledger.journal(1)[0].status) == (1, "unknown")  # type: ignore[attr-defined]
    bills.book("add", "4.5", NOW_MS + 300)
    done = _settle(ledger, bills, wall + 1_000)
    row = ledger.journal(1)[0]
    assert (row.status, row.bill_id) == ("ok", "900")
    # Not booked: "not applied" only BOOKED_WITHIN_MS after the send on OKX's clock.
    jid2 = ledger.journal_intent(A, CRO, "long", "add", "7", "{}", okx_ms=NOW_MS + 5_000)
    ledger.journal_result(jid2, "unknown", None, "timeout")
    _settle(ledger, bills, wall + 10_000)
    assert ledger.journal_entry(jid2).status == "unknown"  # type: ignore[union-attr]
    _settle(ledger, bills, NOW_MS + JUMP_MS + 5_000 + BOOKED_WITHIN_MS)
    assert ledger.journal_entry(jid2).status == "error"  # type: ignore[union-attr]
    ledger.close()
