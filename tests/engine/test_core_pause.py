"""Operator pauses (``on_paused``) and reload inputs (``on_account_enabled/disabled``) on a fake
clock: a paused account or position gets no margin call, a resumed one is corrected at once."""

from __future__ import annotations

from reactor.engine.state import AccountState
from tests.domain.factories import D

from .core_driver import CRO, DOGE, KEY, cro, doge, driver

T = cro().u_time
DOGE_KEY = ("sub1", DOGE, "short", "isolated")


def test_paused_position_gets_no_call_and_says_why_then_resume_corrects_it() -> None:
    d = driver()
    d.feed(d.core.on_paused({("sub1", CRO, "long"): "manual hedge"}, now=d.now))
    d.snapshot(cro(), doge(margin=D("25")))
    d.advance(1)
    assert [c.key for c in d.all_sent] == [DOGE_KEY]  # the other position is still managed
    assert d.control().status == "paused"
    assert d.control().reason == "paused: manual hedge"
    view = d.core.view(d.now)
    row = next(p for a in view.accounts for p in a.positions if p.inst_id == CRO)
    assert (row.status, row.reason) == ("paused", "paused: manual hedge")
    d.push(cro(margin=D("25"), u_time=T + 1))
    d.advance(10)
    assert [c.key for c in d.all_sent] == [DOGE_KEY]
    d.feed(d.core.on_paused({}, now=d.now))
    d.run_due()
    assert [c.key for c in d.all_sent] == [DOGE_KEY, KEY]
    assert d.all_sent[-1].action == "reduce"


def test_paused_account_pauses_every_position_and_the_view_names_it() -> None:
    d = driver()
    d.feed(d.core.on_paused({("sub1", None, None): ""}, now=d.now))
    d.snapshot(cro(), doge(margin=D("25")))
    d.advance(10)
    assert d.all_sent == []
    assert {d.control(k).status for k in (KEY, DOGE_KEY)} == {"paused"}
    assert d.control().reason == "paused"
    (acc,) = d.core.view(d.now).accounts
    assert acc.paused == ""
    d.feed(d.core.on_paused({("sub1", CRO, "long"): "x"}, now=d.now))  # account -> one position
    d.run_due()
    assert [c.key for c in d.all_sent] == [DOGE_KEY]
    assert d.core.view(d.now).accounts[0].paused is None


def test_pause_while_a_call_is_in_flight_lets_it_finish_and_sends_nothing_more() -> None:
    d = driver()
    d.snapshot(cro())
    assert len(d.sent) == 1
    d.feed(d.core.on_paused({("sub1", CRO, "long"): ""}, now=d.now))
    d.answer()  # the call in flight completes and is journaled as always
    assert len(d.answered) == 1 and d.events("margin.adjust.ok")
    d.push(cro(margin=D("30"), u_time=T + 1))
    d.advance(20)
    assert len(d.all_sent) == 1
    assert d.control().status == "paused"


def test_disabled_account_is_left_alone_and_reenabled_one_is_managed_again() -> None:
    d = driver()
    d.snapshot(cro())
    d.answer()
    d.feed(d.core.on_account_disabled("sub1", removed=False, now=d.now))
    assert not d.core.book.is_fresh("sub1")
    assert d.core.accounts["sub1"].enabled is False
    d.feed(d.core.on_account_enabled(AccountState("sub1", "sub"), now=d.now))
    d.snapshot(cro(margin=D("25"), u_time=T + 5))
    d.run_due()
    assert len(d.all_sent) == 2


def test_removed_account_leaves_the_book_and_the_view() -> None:
    d = driver()
    d.snapshot(cro())
    d.answer()
    d.feed(d.core.on_account_disabled("sub1", removed=True, now=d.now))
    assert d.core.book.positions("sub1") == []
    assert [a.name for a in d.core.view(d.now).accounts] == []
    d.advance(30)
    assert len(d.all_sent) == 1


def test_pause_during_the_reduce_check_sends_nothing() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())
    assert len(d.checks) == 1 and d.all_sent == []
    d.feed(d.core.on_paused({("sub1", None, None): "desk"}, now=d.now))
    d.feed(d.core.on_reduce_checked(d.checks[0].call, D("50"), now=d.now))
    d.advance(10)
    assert d.all_sent == [] and d.intents == []
    assert d.control().status == "paused"


def test_account_disabled_by_a_reload_during_the_reduce_check_sends_nothing() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())
    assert len(d.checks) == 1
    d.feed(d.core.on_account_disabled("sub1", removed=False, now=d.now))
    d.feed(d.core.on_reduce_checked(d.checks[0].call, D("50"), now=d.now))
    d.advance(10)
    assert d.all_sent == [] and d.intents == []
