"""Core timing rules on a fake clock: leading edge, debounce, single flight, cooldown."""

from __future__ import annotations

from reactor.engine.commands import ResolveOutcome, SendMarginCall, WriteIntent
from tests.domain.factories import D

from .core_driver import CRO, KEY, cro, driver


def test_leading_edge_sends_the_seed_correction_at_once() -> None:
    d = driver()
    d.snapshot(cro())
    assert [(c.action, c.amount) for c in d.sent] == [("reduce", D("10.03"))]
    assert d.now == 0.0
    (intent,) = d.intents
    assert intent.request == (
        f'{{"instId":"{CRO}","posSide":"long","type":"reduce","amt":"10.03"}}'
    )


def test_intent_is_written_before_the_call() -> None:
    d = driver()
    d.snapshot(cro())
    kinds = [type(c) for c in d.history if isinstance(c, (WriteIntent, SendMarginCall))]
    assert kinds == [WriteIntent, SendMarginCall]
    assert d.sent[0].journal_id == d.intent_ids[d.sent[0].call]


def test_trailing_only_waits_for_the_debounce() -> None:
    d = driver(leading_edge=False)
    d.snapshot(cro())
    assert d.sent == []
    d.advance(0.49)
    assert d.sent == []
    d.advance(0.01)
    assert len(d.sent) == 1


def test_changes_inside_the_window_fold_into_one_evaluation() -> None:
    d = driver()
    d.snapshot(cro())
    d.answer()
    d.push(cro(margin=D("10.26"), u_time=cro().u_time + 1))  # confirms: the cooldown ends
    assert d.sent == []
    # A burst right after the call: one trailing evaluation at the end of the window.
    for i, m in enumerate(("25", "26", "27")):
        d.now += 0.1
        d.push(cro(margin=D(m), u_time=cro().u_time + 10 + i))
    assert d.sent == []
    assert d.timers[KEY] == 0.5  # measured from the last call at 0.0
    d.advance(0.2)
    assert [c.amount for c in d.sent] == [D("16.74")]  # from the newest margin, 27


def test_single_flight_no_second_call_while_one_is_open() -> None:
    d = driver(debounce_s=0.0)
    d.snapshot(cro())
    for i in range(5):
        d.advance(1.0)
        d.push(cro(margin=D("30") + i, u_time=cro().u_time + i + 1))
    assert len(d.all_sent) == 1


def test_cooldown_ends_early_on_the_confirming_push() -> None:
    d = driver()
    d.snapshot(cro())
    d.answer()
    assert d.control().expected_margin == D("10.26")
    assert d.timers[KEY] == 5.0  # parked at the cooldown's end
    d.now = 1.0
    d.push(cro(margin=D("10.26"), u_time=cro().u_time + 1))
    assert d.control().expected_margin is None
    assert d.control().cooldown_until == 0.0
    # A later change is evaluated at once, not at the old cooldown's end.
    d.now = 2.0
    d.push(cro(margin=D("30"), u_time=cro().u_time + 2))
    assert len(d.sent) == 1 and d.sent[0].amount == D("19.74")


def test_unconfirmed_ok_call_is_reread_not_acted_on() -> None:
    d = driver()
    d.snapshot(cro())
    d.answer()
    d.advance(5.0)  # no confirming push within the cooldown
    assert d.sent == []
    assert [type(c) for c in d.resolves] == [ResolveOutcome]
    assert d.resolves[0].pending is None
    d.resolve(cro(margin=D("10.26"), u_time=cro().u_time + 1))
    assert d.events("margin.adjust.unconfirmed")[0]["expected"] == "10.26"
    assert d.sent == []  # in band now
    assert d.control().status == "ok"


def test_no_timer_when_the_position_closes() -> None:
    d = driver()
    d.snapshot(cro())
    d.answer()
    assert KEY in d.timers
    d.push(cro(pos=D("0"), u_time=cro().u_time + 1))
    assert KEY not in d.timers and d.control() is None
