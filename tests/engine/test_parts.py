"""Direct tests of the regrouped parts' seams: the per-input Ctx, the bills window, the pager."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from reactor.domain.book import PositionBook
from reactor.engine.calls import OutcomeKind, outcome_of
from reactor.engine.foreign import BillWindow, bill_of_call
from reactor.engine.state import AccountState, PositionControl, Role, Status
from reactor.engine.timing import Ctx
from reactor.okx.bills import transfer_bill
from reactor.okx.errors import AmbiguousOutcome, ErrorClass, OkxError, envelope_error
from reactor.okx.rest import pages
from reactor.store import JournalEntry
from tests.engine.core_driver import settings

KEY = ("sub1", "CRO-USDT-SWAP", "long", "isolated")


def ctx(now: float = 10.0) -> Ctx:
    return Ctx(PositionBook(), {}, {}, settings(), {}, lambda failures: 2.0 * failures, now)


def test_ctx_schedules_once_and_retries_after_the_backoff() -> None:
    c = ctx()
    c.schedule(KEY)
    c.schedule(KEY)  # folds into the pending wake-up
    assert [type(x).__name__ for x in c.out.commands] == ["SetTimer"]
    control = c.control(KEY)
    control.failures = 2
    c.retry_later(KEY, control, "journal")
    assert control.cooldown_until == 14.0 and control.due_at == 14.0
    c.drop(KEY)
    assert KEY not in c.controls and type(c.out.commands[-1]).__name__ == "CancelTimer"


def test_ctx_pause_of_the_account_wins_over_the_position() -> None:
    c = ctx()
    c.paused[("sub1", "CRO-USDT-SWAP", "long")] = "pos"
    assert c.paused_reason(KEY) == "pos"
    c.paused[("sub1", None, None)] = ""
    assert c.paused_reason(KEY) == ""


def test_status_and_role_serialize_as_their_strings() -> None:
    assert PositionControl().status == "ok" and f"{Status.HELD}" == "held"
    assert AccountState("a", "sub").role is Role.SUB  # type: ignore[arg-type]


def entry(jid: int, status: str, sent_ms: int, bill_id: str | None = None) -> JournalEntry:
    return JournalEntry(
        id=jid,
        account="sub1",
        inst_id="CRO-USDT-SWAP",
        pos_side="long",
        action="add",
        amount="9.7",
        request="",
        status=status,
        code=None,
        msg=None,
        sent_ms=sent_ms,
        done_ms=sent_ms + 100,
        bill_id=bill_id,
    )


def test_bill_window_reports_a_foreign_bill_once_and_credits_our_own() -> None:
    window = BillWindow(started_ms=1_000, skew_ms=5_000)
    assert window.begin("sub1", "drift") and not window.begin("sub1", "interval")
    assert window.again("sub1") == "interval" and window.again("sub1") is None
    ours = transfer_bill("b1", "CRO-USDT-SWAP", "add", Decimal("9.7"), None, 2_000)
    other = transfer_bill("b2", "CRO-USDT-SWAP", "reduce", Decimal("3"), None, 2_500)
    judged = window.judge("sub1", [ours, other], [entry(7, "ok", 1_900)], offset_ms=0)
    assert judged.credits == [(7, "b1")] and [b.bill_id for b in judged.foreign] == ["b2"]
    again = window.judge("sub1", [other], [], offset_ms=0)
    assert again.foreign == []  # judged already
    assert window.since("sub1", 0) == 1_000  # never behind start-up: max(since, newest - skew)


def test_an_earlier_call_keeps_its_own_bill() -> None:
    bills = [
        transfer_bill("b1", "CRO-USDT-SWAP", "add", Decimal("9.7"), None, 2_000),
        transfer_bill("b2", "CRO-USDT-SWAP", "add", Decimal("9.7"), None, 3_000),
    ]
    me = entry(8, "unknown", 2_900)
    found = bill_of_call(bills, me, [entry(7, "ok", 1_900), me], 0, None, 5_000)
    assert found is not None and found.bill_id == "b2"


def test_pages_follow_the_after_cursor_and_say_when_truncated() -> None:
    asked: list[str | None] = []

    async def fetch(after: str | None) -> list[dict[str, Any]]:
        asked.append(after)
        start = 0 if after is None else int(after)
        return [{"billId": str(i)} for i in range(start + 1, start + 3)]

    async def read(max_pages: int) -> tuple[int, bool]:
        paged = pages(fetch, "billId", max_pages=max_pages, limit=2)
        rows = [r async for page in paged for r in page]
        return len(rows), paged.truncated

    assert asyncio.run(read(3)) == (6, True)
    assert asked == [None, "2", "4"]


# -- calls.outcome_of over what the REST client raises (okx.errors.envelope_error) -----------


def test_codes_that_may_have_been_applied_are_unknown_through_the_one_rule() -> None:
    for code, status in (("50004", 400), ("51149", 500), ("58999", 503)):
        exc = envelope_error("POST margin-balance", code, "m", status)
        assert isinstance(exc, AmbiguousOutcome)  # never an OkxError of class AMBIGUOUS
        assert outcome_of(exc).kind is OutcomeKind.UNKNOWN


def test_a_bare_gateway_5xx_is_unknown_and_an_okx_refusal_rejected() -> None:
    assert outcome_of(OkxError("502", "HTTP 502 Bad Gateway", 502)).kind is OutcomeKind.UNKNOWN
    refused = outcome_of(envelope_error("POST margin-balance", "50113", "Invalid sign", 401))
    assert (refused.kind, refused.error_class) == (OutcomeKind.REJECTED, ErrorClass.AUTH)
    assert refused.error_class.stops_account
