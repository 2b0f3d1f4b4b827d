"""Issue 18: a reduce inside the reactor's own bound is sent without reading OKX's
``estAvailTrans``; above it OKX's number is read once per position record (fake clock)."""

from __future__ import annotations

from reactor.domain.policy import PolicyConfig
from reactor.engine.calls import MARK_TOLERANCE
from tests.domain.factories import CFG, DEFAULT_TARGETS, D

from .core_driver import KEY, cro, driver, rejected

T = cro().u_time


def test_a_reduce_inside_the_local_bound_is_sent_without_a_read() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro(lever=D("20")))  # initial margin 5.13: the local bound leaves 15.1
    assert d.checks == []
    assert [c.amount for c in d.sent] == [D("10.29")]


def test_above_the_local_bound_okx_is_asked_and_caps_the_reduce() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())  # 10.03 wanted, the local bound leaves 9.9787
    (check,) = d.checks
    assert check.amount == D("10.03")
    d.feed(d.core.on_reduce_checked(check.call, D("9.9787"), now=d.now))
    assert [c.amount for c in d.sent] == [D("9.97")]


def test_a_retry_of_the_same_record_reuses_okxs_number() -> None:
    d = driver(pre_reduce_check=True, cooldown_s=1.0, retry_max_s=4.0)
    d.snapshot(cro())
    d.journal_error = "disk full"
    d.feed(d.core.on_reduce_checked(d.checks[0].call, D("9.9787"), now=d.now))
    assert d.all_sent == []
    d.journal_error = None
    d.advance(d.timers[KEY] - d.now)
    assert len(d.checks) == 1  # no second read for the same record
    assert [c.amount for c in d.sent] == [D("9.97")]


def test_a_mark_move_derates_the_cache_and_a_large_one_ends_it() -> None:
    d = driver(pre_reduce_check=True, cooldown_s=1.0, retry_max_s=4.0)
    d.snapshot(cro())
    d.journal_error = "disk full"
    d.feed(d.core.on_reduce_checked(d.checks[0].call, D("9.9787"), now=d.now))
    d.journal_error = None
    small = cro().mark_px * (1 + MARK_TOLERANCE / 10)  # +0.1 %
    d.push(cro(mark_px=small, u_time=T + 1))
    d.advance(d.timers[KEY] - d.now)
    assert len(d.checks) == 1
    (sent,) = d.sent
    # qty 1080 x move 0.000095 x (1 + 1/10 + fee 0.0005 + mmr rate 0.004): 0.1133 less
    assert sent.amount == D("9.86")

    d2 = driver(pre_reduce_check=True, cooldown_s=1.0, retry_max_s=4.0)
    d2.snapshot(cro())
    d2.journal_error = "disk full"
    d2.feed(d2.core.on_reduce_checked(d2.checks[0].call, D("9.9787"), now=d2.now))
    d2.journal_error = None
    large = cro().mark_px * (1 + 2 * MARK_TOLERANCE)
    d2.push(cro(mark_px=large, u_time=T + 1))
    d2.advance(d2.timers[KEY] - d2.now)
    assert len(d2.checks) == 2 and d2.all_sent == []  # read again


def test_a_new_margin_reads_again() -> None:
    d = driver(pre_reduce_check=True, cooldown_s=1.0, retry_max_s=4.0)
    d.snapshot(cro())
    d.journal_error = "disk full"
    d.feed(d.core.on_reduce_checked(d.checks[0].call, D("9.9787"), now=d.now))
    d.journal_error = None
    d.push(cro(margin=D("20.5"), u_time=T + 1))
    d.advance(d.timers[KEY] - d.now)
    assert len(d.checks) == 2


def test_59301_after_a_capped_reduce_halves_and_never_reads_in_a_loop() -> None:
    d = driver(pre_reduce_check=True, cooldown_s=1.0, retry_max_s=4.0)
    d.snapshot(cro())
    d.feed(d.core.on_reduce_checked(d.checks[0].call, D("10.4787"), now=d.now))  # optimistic
    assert [c.amount for c in d.sent] == [D("10.03")]
    d.answer(rejected("59301"))
    assert d.control().est_avail.cap < D("10.03")  # OKX refused this much: never from cache
    d.advance(d.timers[KEY] - d.now)
    # The halved step (5.01) is inside the local bound: sent without a read.
    assert len(d.checks) == 1
    assert [c.amount for c in d.sent] == [D("5.01")]
    d.answer()
    assert len(d.events("margin.step.halved")) == 1


def test_no_number_reduces_up_to_the_local_bound() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())
    (check,) = d.checks
    d.feed(d.core.on_reduce_check_empty(check.call, "not a number: ''", now=d.now))
    assert [c.amount for c in d.sent] == [D("9.97")]  # the local bound 9.9787, rounded down
    assert d.events("margin.reduce.check_failed")
    assert d.events("margin.adjust.capped")[0]["capped"] == "9.97"


def test_no_number_and_no_local_room_is_a_blocked_episode_with_its_reason() -> None:
    policy = PolicyConfig(targets=DEFAULT_TARGETS, min_action=D("0.2"))
    assert CFG.close_fee_rate == policy.close_fee_rate
    d = driver(pre_reduce_check=True, policy=policy, cooldown_s=1.0, retry_max_s=4.0)
    # a loss: the local bound keeps 10.5273, the policy's floor 10.368 -> a reduce of 0.33
    pos = cro(avg_px=D("0.0960"), upl=D("-0.108"), margin=D("10.7"))
    d.snapshot(pos)
    (check,) = d.checks
    assert check.amount == D("0.33")
    d.feed(d.core.on_reduce_check_empty(check.call, "not a number", now=d.now))
    assert d.all_sent == []
    control = d.control()
    assert control.status == "blocked"
    assert control.reason.startswith("exchange_limit: estAvailTrans empty, local bound")
    (blocked,) = d.events("margin.target.blocked")
    assert blocked["reason"] == control.reason
    d.advance(d.timers[KEY] - d.now)
    assert len(d.checks) == 2  # asked again after the back-off, never silently given up


def test_an_error_still_sends_nothing() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())
    d.feed(d.core.on_reduce_check_failed(d.checks[0].call, "timeout", now=d.now))
    assert d.all_sent == [] and d.control().status == "error"


def test_after_59301_the_local_bound_caps_until_the_size_changes() -> None:
    d = driver(pre_reduce_check=True, cooldown_s=1.0, retry_max_s=4.0)
    d.snapshot(cro())
    d.feed(d.core.on_reduce_checked(d.checks[0].call, D("10.4787"), now=d.now))  # optimistic
    d.answer(rejected("59301"))
    d.advance(d.timers[KEY] - d.now)
    d.answer()  # 5.01, inside the local bound
    # The next step (5.02 of 15.28) is above the local bound (4.9687): capped to it, no read.
    d.push(cro(margin=D("15.28"), u_time=T + 1))
    d.advance(2.0)
    assert len(d.checks) == 1
    assert [c.amount for c in d.sent] == [D("4.96")]
    # A new size is a new limit: OKX is asked again.
    d.answer()
    d.push(cro(margin=D("10.32"), u_time=T + 2))  # confirms the call
    d.push(cro(margin=D("20.29"), pos=D("109"), u_time=T + 3))
    d.advance(2.0)
    assert len(d.checks) == 2


def test_after_59301_a_mark_that_moved_asks_okx_again() -> None:
    """A refusal in a moving market says the mark moved, not that OKX's number is wrong."""
    d = driver(pre_reduce_check=True, cooldown_s=1.0, retry_max_s=4.0)
    d.snapshot(cro())
    d.feed(d.core.on_reduce_checked(d.checks[0].call, D("9.9787"), now=d.now))
    d.answer(rejected("59301"))  # the mark fell between the read and the call
    d.advance(d.timers[KEY] - d.now)
    d.answer()  # the halved step, 4.98: inside the local bound
    moved = cro().mark_px * (1 + 2 * MARK_TOLERANCE)
    d.push(cro(margin=D("15.31"), mark_px=moved, upl=D("7.0"), u_time=T + 1))
    d.advance(2.0)
    assert len(d.checks) == 2  # read again, not capped at the local bound
