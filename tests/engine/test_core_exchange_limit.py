"""The reduce is capped by OKX's own number (``estAvailTrans``), on a fake clock."""

from __future__ import annotations

from reactor.engine.commands import ResolveOutcome
from reactor.store import JournalEntry
from tests.domain.factories import D

from .core_driver import KEY, cro, driver

T = cro().u_time


def test_the_check_asks_at_the_positions_own_leverage() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())
    (check,) = d.checks
    assert (check.key, check.amount, check.lever) == (KEY, D("10.03"), D("10"))


def test_the_reduce_never_asks_for_more_than_okx_allows() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())
    (check,) = d.checks
    d.feed(d.core.on_reduce_checked(check.call, D("9.9787"), now=d.now))
    assert [c.amount for c in d.sent] == [D("9.97")]  # rounded down to amount_step
    assert d.intents[0].amount == D("9.97") and '"amt":"9.97"' in d.intents[0].request
    # The runaway guard counts what is sent, not what was decided.
    assert d.core.guard.moved("sub1", d.now) == (D("9.97"), 1)


def test_a_larger_allowance_leaves_the_floor_as_the_bound() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())
    (check,) = d.checks
    d.feed(d.core.on_reduce_checked(check.call, D("15"), now=d.now))
    assert [c.amount for c in d.sent] == [D("10.03")]
    assert not d.events("margin.adjust.capped")


def test_a_failed_check_sends_nothing_and_decides_again_after_the_back_off() -> None:
    d = driver(pre_reduce_check=True, cooldown_s=1.0, retry_max_s=8.0)
    d.snapshot(cro())
    (check,) = d.checks
    d.feed(d.core.on_reduce_check_failed(check.call, "timeout", now=d.now))
    assert d.intents == [] and d.all_sent == []
    control = d.control()
    assert control.status == "error" and "estAvailTrans" in control.reason
    assert not control.in_flight
    assert d.events("margin.reduce.check_failed")[0]["error"] == "timeout"
    first_retry = d.timers[KEY]
    assert first_retry > d.now
    d.advance(first_retry - d.now)
    assert len(d.checks) == 2  # a fresh check, from fresh data
    d.feed(d.core.on_reduce_check_failed(d.checks[1].call, "50011", now=d.now))
    assert d.timers[KEY] - d.now > first_retry  # the back-off grows
    d.advance(d.timers[KEY] - d.now)
    d.feed(d.core.on_reduce_checked(d.checks[2].call, D("20"), now=d.now))
    assert [c.amount for c in d.sent] == [D("10.03")]


def test_an_answer_that_comes_twice_sends_once() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())
    (check,) = d.checks
    d.feed(d.core.on_reduce_checked(check.call, D("9.9787"), now=d.now))
    d.feed(d.core.on_reduce_checked(check.call, D("9.9787"), now=d.now))
    d.feed(d.core.on_reduce_check_failed(check.call, "late", now=d.now))
    assert len(d.intents) == 1 and len(d.all_sent) == 1
    assert not d.events("margin.reduce.check_failed")


def test_exchange_limit_is_one_blocked_episode_until_a_check_lets_a_reduce_through() -> None:
    d = driver(pre_reduce_check=True, cooldown_s=1.0, retry_max_s=4.0)
    d.snapshot(cro())
    for _ in range(4):
        check = d.checks[-1]
        d.feed(d.core.on_reduce_checked(check.call, D("0.05"), now=d.now))
        assert d.control().status == "blocked"
        assert d.control().reason.startswith("exchange_limit")
        d.advance(d.timers[KEY] - d.now)
    assert d.all_sent == [] and len(d.checks) == 5
    blocked = d.events("margin.target.blocked")
    assert len(blocked) == 1 and blocked[0]["reason"].startswith("exchange_limit")
    assert not d.events("margin.target.unblocked")
    d.feed(d.core.on_reduce_checked(d.checks[-1].call, D("12"), now=d.now))
    assert [c.amount for c in d.sent] == [D("10.03")]
    d.answer()
    d.push(cro(margin=D("10.26"), u_time=T + 1))
    d.advance(6)
    assert d.events("margin.target.unblocked")


def test_no_call_when_the_account_stopped_during_the_check() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())
    (check,) = d.checks
    d.core.accounts["sub1"].stopped_reason = "auth error 50113"
    d.feed(d.core.on_reduce_checked(check.call, D("20"), now=d.now))
    assert d.intents == [] and d.all_sent == []
    assert d.core.guard.moved("sub1", d.now) == (D("0"), 0)


def test_a_call_a_crash_left_unanswered_is_resolved_with_its_journal_row() -> None:
    d = driver()
    entry = JournalEntry(
        7, "sub1", KEY[1], "long", "reduce", "9.97", "{}", "pending", None, None, 0, None
    )
    d.feed(d.core.recover([entry], [], now=d.now, wall_now=1.0))
    d.snapshot(cro())
    assert d.all_sent == []
    (resolve,) = d.resolves
    assert isinstance(resolve, ResolveOutcome) and resolve.pending is not None
    assert (resolve.pending.journal_id, resolve.pending.amount) == (7, D("9.97"))
    d.resolve(cro(margin=D("10.32"), u_time=T + 1), bill_applied=True, bill_id="b1")
    (resolved,) = d.events("margin.adjust.resolved")
    assert (resolved["outcome"], resolved["resolved_by"], resolved["bill_id"]) == (
        "applied",
        "bill",
        "b1",
    )


def test_without_a_bill_the_margin_decides_and_says_why() -> None:
    d = driver()
    d.snapshot(cro())
    from .core_driver import UNKNOWN

    d.answer(UNKNOWN)
    d.advance(1)
    d.feed(
        d.core.on_resolved(
            KEY,
            [cro(margin=D("10.26"), u_time=T + 1)],
            now=d.now,
            bill_applied=None,
            bills="no matching bill after the settle delay",
        )
    )
    (resolved,) = d.events("margin.adjust.resolved")
    assert (resolved["outcome"], resolved["resolved_by"]) == ("applied", "margin")
    assert resolved["bills"] == "no matching bill after the settle delay"


def test_no_call_when_the_position_was_paused_during_the_check() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())
    (check,) = d.checks
    d.feed(d.core.on_paused({("sub1", None, None): "operator"}, now=d.now))
    d.feed(d.core.on_reduce_checked(check.call, D("20"), now=d.now))
    d.run_due()
    assert d.intents == [] and d.all_sent == []
