"""Foreign transfers (margin moved by someone else): detection triggers, the hold, its end."""

from __future__ import annotations

from decimal import Decimal

from reactor.engine.commands import ReadBills
from reactor.engine.foreign import ForeignWatch
from reactor.okx.bills import Bill, transfer_bill
from tests.domain.factories import D

from .core_driver import CRO, KEY, cro, driver

T = cro().u_time


def bill(n: int, action: str = "add", amount: str = "9.7", pos_bal: str = "20") -> Bill:
    return transfer_bill(str(n), CRO, action, Decimal(amount), D(pos_bal), 1000 + n)


def _reads(d) -> list[ReadBills]:  # type: ignore[no-untyped-def]
    return [c for c in d.history if isinstance(c, ReadBills)]


def test_a_margin_change_without_a_fill_or_our_call_reads_the_bills() -> None:
    d = driver(cooldown_s=0.5)
    d.snapshot(cro(margin=D("10.2")))  # in band: nothing to do
    assert _reads(d) == []
    d.push(cro(margin=D("19.9"), u_time=T + 1))  # someone added 9.7
    assert [(r.account, r.trigger) for r in _reads(d)] == [("sub1", "drift")]


def test_a_fill_or_our_own_confirmed_call_is_not_drift() -> None:
    d = driver(cooldown_s=0.5)
    d.snapshot(cro())
    d.answer()  # our reduce of 10.03, confirmed by the push below
    d.push(cro(margin=D("10.26"), u_time=T + 1))
    d.push(cro(margin=D("20.52"), pos=D("216"), u_time=T + 2))  # a fill: size changed
    assert _reads(d) == []


def test_one_foreign_transfer_is_reported_and_corrections_go_on() -> None:
    d = driver(cooldown_s=0.5, foreign_transfer_limit=2, foreign_transfer_window_s=60)
    d.snapshot(cro(margin=D("10.2")))
    d.feed(d.core.on_bills_read("sub1", [bill(1)], "drift", now=d.now))
    (event,) = d.events("margin.foreign_transfer")
    assert (event["billId"], event["amount"], event["action"], event["posSide"]) == (
        "1",
        "9.7",
        "add",
        "long",
    )
    assert not d.events("margin.position.held_foreign")
    d.auto_bills = False
    d.push(cro(margin=D("19.9"), u_time=T + 1))
    assert d.sent == []  # a margin drift: who moved it? the bills answer first
    d.feed(d.core.on_bills_read("sub1", [], "drift", now=d.now))
    d.run_due()
    assert len(d.sent) == 1  # still corrected


def test_a_bills_read_that_never_answers_delays_the_correction_only_briefly() -> None:
    d = driver(cooldown_s=0.5, bills_wait_s=3.0)
    d.auto_bills = False
    d.snapshot(cro(margin=D("10.2")))
    # One foreign transfer in the window already (limit 2): this drift could trip the hold,
    # so it is the kind that waits for the bills (issue 18: the others act at once).
    d.feed(d.core.on_bills_read("sub1", [bill(1)], "interval", now=d.now))
    d.push(cro(margin=D("19.9"), u_time=T + 1))
    assert [r.trigger for r in _reads(d)] == ["drift"] and d.sent == []
    d.advance(2.9)
    assert d.sent == []
    d.advance(0.2)
    assert len(d.sent) == 1


def test_a_failed_bills_read_lets_the_correction_go_on() -> None:
    d = driver(cooldown_s=0.5)
    d.auto_bills = False
    d.snapshot(cro(margin=D("10.2")))
    d.push(cro(margin=D("19.9"), u_time=T + 1))
    d.feed(d.core.on_bills_failed("sub1", "drift", "50011", now=d.now))
    d.run_due()
    assert len(d.sent) == 1
    assert d.events("bills.read.failed")[0]["error"] == "50011"


def test_repeated_foreign_transfers_hold_the_position_instead_of_fighting() -> None:
    d = driver(cooldown_s=0.5, foreign_transfer_limit=2, foreign_transfer_window_s=60)
    d.snapshot(cro(margin=D("10.2")))
    d.feed(d.core.on_bills_read("sub1", [bill(1), bill(2)], "interval", now=d.now))
    (held,) = d.events("margin.position.held_foreign")
    assert (held["instId"], held["posSides"], held["foreign_transfers"]) == (CRO, ["long"], 2)
    d.push(cro(margin=D("29.9"), u_time=T + 1))  # out of band, but held
    assert d.all_sent == [] and d.checks == []
    assert d.control().status == "held" and "foreign" in d.control().reason
    problems = d.core.view(d.now).problems
    assert any("held" in p and CRO in p for p in problems)
    assert d.timers[KEY] == 60  # wakes up when the quiet window would end


def test_the_hold_ends_after_a_quiet_window_and_a_repeat_holds_again_at_once() -> None:
    d = driver(cooldown_s=0.5, foreign_transfer_limit=2, foreign_transfer_window_s=60)
    d.snapshot(cro(margin=D("10.2")))
    d.feed(d.core.on_bills_read("sub1", [bill(1), bill(2)], "interval", now=d.now))
    d.push(cro(margin=D("20.2"), u_time=T + 1))
    d.advance(30)
    d.feed(d.core.on_bills_read("sub1", [bill(3)], "interval", now=d.now))  # not quiet
    d.advance(40)  # 70 s: 40 s since the last foreign transfer
    assert d.all_sent == [] and not d.events("margin.position.released_foreign")
    d.advance(25)  # 95 s: a quiet minute
    (released,) = d.events("margin.position.released_foreign")
    assert released["foreign_transfers"] == 3
    assert len(d.sent) == 1 and d.control().status != "held"
    assert not any("held" in p for p in d.core.view(d.now).problems)
    d.answer()
    # On probation: one more foreign transfer holds it again.
    d.feed(d.core.on_bills_read("sub1", [bill(4, "add", "10")], "drift", now=d.now))
    assert len(d.events("margin.position.held_foreign")) == 2


def test_foreign_watch_counts_within_the_window_only() -> None:
    w = ForeignWatch(limit=3, window_s=10)
    unit = ("a", CRO)
    assert not w.record(unit, 0) and not w.record(unit, 5)
    assert not w.record(unit, 12)  # the first fell out of the window
    assert w.record(unit, 14)
    assert w.held(unit) and w.release_due(unit) == 24
    assert not w.try_release(unit, 23) and w.try_release(unit, 24)
    assert not w.held(unit) and w.count(unit) == 4


def test_a_drift_that_cannot_trip_the_hold_is_answered_at_once() -> None:
    """Issue 18: no wait for the bills unless this drift, if foreign, would be the one that
    holds the unit; the bills are still read (off the hot path)."""
    d = driver(cooldown_s=0.5, bills_wait_s=3.0, foreign_transfer_limit=2)
    d.auto_bills = False
    d.snapshot(cro(margin=D("10.2")))
    d.push(cro(margin=D("19.9"), u_time=T + 1))
    assert [r.trigger for r in _reads(d)] == ["drift"]
    assert len(d.sent) == 1  # no wait


def test_a_second_drift_before_the_bills_answer_waits_for_them() -> None:
    """The first drift's bills are unread: it counts as foreign, so a second drift on the
    instrument (limit 2) waits - the reactor never answers a second foreign transfer."""
    d = driver(cooldown_s=0.5, bills_wait_s=3.0, foreign_transfer_limit=2)
    d.auto_bills = False
    d.snapshot(cro(margin=D("10.2")), cro(pos_side="short", margin=D("10.2")))
    d.push(cro(margin=D("19.9"), u_time=T + 1))
    assert len(d.sent) == 1
    d.push(cro(pos_side="short", margin=D("19.9"), u_time=T + 1))
    assert len(d.sent) == 1  # waits for the bills
    # They show both transfers as foreign: the instrument is held, the second never answered.
    d.feed(d.core.on_bills_read("sub1", [bill(1), bill(2)], "drift", now=d.now))
    d.run_due()
    assert d.events("margin.position.held_foreign")
    assert len(d.all_sent) == 1


def test_on_probation_every_drift_waits_for_the_bills() -> None:
    d = driver(
        cooldown_s=0.5, bills_wait_s=3.0, foreign_transfer_limit=3, foreign_transfer_window_s=60
    )
    d.snapshot(cro(margin=D("10.2")))
    d.feed(d.core.on_bills_read("sub1", [bill(1), bill(2), bill(3)], "interval", now=d.now))
    d.advance(61)  # a quiet window: released on the next evaluation, then on probation
    d.push(cro(margin=D("10.3"), u_time=T + 1))
    assert d.events("margin.position.released_foreign")
    d.auto_bills = False
    d.push(cro(margin=D("19.9"), u_time=T + 2))
    assert d.sent == []  # on probation: one foreign transfer holds again, so it waits
