"""What the core does with each outcome: 59301 step rule, holds, back-off, ambiguous answers."""

from __future__ import annotations

from reactor.engine.commands import ReadPositions
from tests.domain.factories import D

from .core_driver import KEY, NOT_SENT, UNKNOWN, cro, driver, rejected

T = cro().u_time


def test_59301_halves_the_step_then_grows_back_after_successes() -> None:
    d = driver(cooldown_s=1.0)
    d.snapshot(cro(margin=D("50")))
    first = d.answer(rejected("59301"))
    assert first.amount == D("39.74")
    assert d.control().step_cap == D("19.87")
    d.advance(1.0)
    assert d.sent[0].amount == D("19.87")
    d.answer()
    assert d.control().step_cap == D("39.74")  # doubled after the success
    d.push(cro(margin=D("30.13"), u_time=T + 1))  # confirms; still above the band
    d.advance(0.5)  # the debounce window of the last call
    assert d.sent[0].amount == D("19.87")  # 30.13 - floor 10.26
    d.answer()
    assert d.control().step_cap == D("79.48")


def test_59301_step_cap_resets_when_the_position_changes() -> None:
    d = driver(cooldown_s=1.0)
    d.snapshot(cro(margin=D("50")))
    d.answer(rejected("59301"))
    assert d.control().step_cap is not None
    d.push(cro(margin=D("50"), pos=D("120"), u_time=T + 1))  # a fill: a new size
    assert d.control().step_cap is None


def test_59301_at_the_minimum_step_holds_until_the_position_changes() -> None:
    d = driver(cooldown_s=1.0)
    d.snapshot(cro(margin=D("10.61")))  # reduce 0.35 (to the floor 10.26)
    amounts = []
    while d.sent:
        amounts.append(d.answer(rejected("59301")).amount)
        d.advance(60.0)
    assert amounts == [D("0.35"), D("0.17"), D("0.1")]
    assert d.control().hold_until_change == "59301"
    assert d.control().status == "blocked"
    assert d.events("margin.target.blocked")[0]["reason"].startswith("exchange_limit")
    d.advance(120.0)
    assert d.sent == []  # never the same call in a loop
    d.push(cro(margin=D("10.61"), mark_px=D("0.0951"), u_time=T + 1))
    assert d.control().hold_until_change is None


def test_51000_hold_ends_on_a_size_change_not_a_price_move() -> None:
    d = driver()
    d.snapshot(cro())
    d.answer(rejected("51000"))
    d.advance(10.0)
    d.push(cro(mark_px=D("0.0951"), u_time=T + 1))
    assert d.control().hold_until_change == "51000" and d.sent == []
    d.push(cro(margin=D("20.30"), mark_px=D("0.0951"), u_time=T + 2))
    assert d.control().hold_until_change is None
    assert len(d.sent) == 1


def test_transient_errors_back_off_exponentially_up_to_the_cap() -> None:
    d = driver(cooldown_s=1.0, retry_max_s=8.0)
    d.snapshot(cro())
    delays = []
    for _ in range(6):
        d.answer(rejected("50013"))
        delays.append(d.timers[KEY] - d.now)
        d.advance(delays[-1])
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert [e["failures"] for e in d.events("margin.adjust.retry")] == [1, 2, 3, 4, 5, 6]


def test_ambiguous_answers_back_off_like_other_errors() -> None:
    """Before: after the re-read the position was evaluated at once, so 50004 after 50004
    resent every ~0.5 s."""
    d = driver(cooldown_s=1.0, retry_max_s=60.0, reread_delay_s=0.5)
    d.snapshot(cro())
    gaps = []
    for _ in range(4):
        sent_at = d.now
        d.answer(UNKNOWN)
        assert d.control().pending is not None
        d.advance(0.5)
        assert d.resolves and d.resolves[0].pending is not None
        d.resolve(cro())  # nothing moved
        assert d.sent == []
        d.advance(d.timers[KEY] - d.now)
        assert len(d.sent) == 1
        gaps.append(d.now - sent_at)
    assert gaps == [1.5, 2.5, 4.5, 8.5]
    resolved = d.events("margin.adjust.resolved")
    assert {e["outcome"] for e in resolved} == {"not_applied"}
    assert {e["resolved_by"] for e in resolved} == {"margin"}
    assert [r.status for r in d.results.values()].count("unknown") == 4


def test_bare_5xx_is_ambiguous_and_resolved_before_any_resend() -> None:
    d = driver()
    d.snapshot(cro())
    d.answer(UNKNOWN.__class__(UNKNOWN.kind, "502", None, "HTTP 502"))
    d.advance(10.0)
    assert d.sent == [] and len(d.resolves) == 1


def test_bill_evidence_decides_the_resolution() -> None:
    d = driver()
    d.snapshot(cro())
    d.answer(UNKNOWN)
    d.advance(0.5)
    d.resolve(cro(margin=D("10.26"), u_time=T + 1), bill_applied=True, bill_id="623950854533513219")
    (event,) = d.events("margin.adjust.resolved")
    assert (event["outcome"], event["resolved_by"]) == ("applied", "bill")
    assert event["bill_id"] == "623950854533513219"


def test_not_sent_backs_off_and_refunds_the_guard() -> None:
    d = driver(max_moved_per_hour=D("15"))
    d.snapshot(cro())
    d.answer(NOT_SENT)
    assert d.core.guard.moved("sub1", d.now) == (D("0"), 0)
    d.advance(d.timers[KEY] - d.now)
    assert len(d.sent) == 1  # allowed again: nothing had moved


def test_59200_waits_for_a_reduce_elsewhere_in_the_account() -> None:
    from .core_driver import doge

    d = driver(cooldown_s=1.0, retry_max_s=600.0)
    low = cro(margin=D("5"))  # needs an add
    d.snapshot(low)
    d.answer(rejected("59200"))
    assert d.control().balance_wait
    d.push(doge(u_time=T + 1))  # a reduce elsewhere frees balance
    reduce_ = d.answer()
    assert reduce_.action == "reduce"
    d.run_due()
    assert [c.action for c in d.sent] == ["add"]


def test_auth_error_stops_the_account() -> None:
    d = driver()
    d.snapshot(cro())
    d.answer(rejected("50113"))
    assert d.core.accounts["sub1"].stopped_reason == "auth error 50113"
    d.advance(60.0)
    assert d.sent == [] and d.control().status == "error"


def test_a_permission_error_stops_the_account() -> None:
    """50120 (the key lacks the right) or 50110 (IP not allowed): retrying cannot help."""
    for code in ("50120", "50110", "50030"):
        d = driver()
        d.snapshot(cro())
        d.answer(rejected(code))
        assert d.core.accounts["sub1"].stopped_reason == f"permission error {code}"
        assert [e["code"] for e in d.events("account.stopped")] == [code]
        d.advance(60.0)
        assert d.sent == [] and d.control().status == "error"


def test_a_permission_error_on_the_check_stops_the_account() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())
    (check,) = d.checks
    d.feed(d.core.on_reduce_check_failed(check.call, "50120", now=d.now, outcome=rejected("50120")))
    assert d.core.accounts["sub1"].stopped_reason == "permission error 50120"
    d.advance(60.0)
    assert len(d.checks) == 1 and d.all_sent == []


def test_59300_reconciles_the_account() -> None:
    d = driver()
    d.snapshot(cro())
    d.answer(rejected("59300"))
    assert ReadPositions("sub1", "59300") in d.reads


def test_clock_skew_asks_for_a_resync_and_retries_soon_then_backs_off() -> None:
    d = driver(cooldown_s=4.0)
    d.snapshot(cro())
    d.answer(rejected("50102"))
    assert [c.account for c in d.clock_syncs] == ["sub1"]
    assert d.timers[KEY] - d.now == 0.5
    d.advance(0.5)
    d.answer(rejected("50102"))
    assert d.timers[KEY] - d.now == 8.0  # the second in a row backs off
