"""Runaway guard per position and per account."""

from __future__ import annotations

from reactor.engine.guard import RunawayGuard, Verdict
from reactor.store import JournalEntry
from tests.domain.factories import D

from .core_driver import DOGE, KEY, cro, doge, driver

T = cro().u_time
DOGE_KEY = ("sub1", DOGE, "short", "isolated")


def test_one_correction_over_the_limit_holds_only_that_position() -> None:
    """Before: the account's guard tripped and every other position stopped too."""
    d = driver(max_moved_per_hour=D("100"))
    d.snapshot(cro(margin=D("500")), doge())  # a bad value: 489.74 to reduce
    assert [c.key for c in d.sent] == [DOGE_KEY]  # the other position is still corrected
    assert not d.core.accounts["sub1"].guard_tripped
    (held,) = d.events("margin.guard.position_held")
    assert held["amount"] == "489.74" and held["moved_last_hour"] == "0"
    assert d.control().status == "error" and "runaway guard" in d.control().reason
    view = d.core.view(d.now)
    assert any("runaway guard" in p for p in view.problems)
    # Once per episode, not on every push.
    d.push(cro(margin=D("501"), u_time=T + 1))
    assert len(d.events("margin.guard.position_held")) == 1


def test_margin_already_moved_by_a_bad_push_is_in_the_event() -> None:
    d = driver(max_moved_per_hour=D("1000"), max_moved_per_position_hour=D("10"))
    d.snapshot(cro(margin=D("5")))  # add 5
    d.answer()
    d.push(cro(margin=D("10"), u_time=T + 1))
    d.now = 10.0
    d.push(cro(margin=D("4"), u_time=T + 2))  # a bad value: add 6 would pass 10
    (held,) = d.events("margin.guard.position_held")
    assert held["moved_last_hour"] == "5" and held["calls_last_hour"] == 1
    assert held["amount"] == "6"


def test_account_limit_still_stops_the_account() -> None:
    d = driver(max_moved_per_hour=D("20"), max_moved_per_position_hour=D("15"))
    d.snapshot(cro(margin=D("20.29")), doge(margin=D("20")))
    assert [c.amount for c in d.sent] == [D("10.03")]
    assert d.core.accounts["sub1"].guard_tripped
    assert d.events("margin.guard.tripped")[0]["moved_last_hour"] == "10.03"


def test_position_window_frees_after_an_hour() -> None:
    g = RunawayGuard(D("100"), D("10"))
    assert g.check(KEY, D("8"), 0.0).verdict is Verdict.ALLOW
    assert g.check(KEY, D("8"), 10.0).verdict is Verdict.POSITION_LIMIT
    assert g.check(DOGE_KEY, D("8"), 10.0).verdict is Verdict.ALLOW
    assert g.check(KEY, D("8"), 3601.0).verdict is Verdict.ALLOW


def test_guard_is_seeded_from_the_journal() -> None:
    d = driver(max_moved_per_hour=D("15"))
    wall = 1_700_000_000.0
    sent_ms = int((wall - 60) * 1000)
    rows = [
        JournalEntry(1, "sub1", DOGE, "short", "reduce", "9", "{}", "ok", None, None, sent_ms, 0),
        JournalEntry(
            2, "sub1", DOGE, "short", "reduce", "50", "{}", "error", "59301", "", sent_ms, 0
        ),
    ]
    d.feed(d.core.recover([], rows, now=d.now, wall_now=wall))
    assert d.events("margin.guard.seeded")[0]["moved_last_hour"] == "9"
    d.snapshot(cro())  # 10.03 more would pass 15
    assert d.sent == [] and d.core.accounts["sub1"].guard_tripped
