"""Snapshot logging, snapshot pages, mgnMode keys, new instruments, task failures, the
pre-reduce check seam."""

from __future__ import annotations

from decimal import Decimal

from reactor.engine.commands import FetchInstrument, SendMarginCall
from tests.domain.factories import D

from .core_driver import CRO, KEY, cro, driver

T = cro().u_time


def test_one_info_line_per_connect_snapshot_regular_ones_at_debug() -> None:
    d = driver()
    d.snapshot(cro())
    for _ in range(3):
        d.feed(d.core.on_snapshot("sub1", [cro()], last_page=True, now=d.now))
    assert d.levels("book.snapshot") == ["info", "debug", "debug", "debug"]
    d.feed(d.core.on_disconnected("sub1", "drop", now=d.now))
    d.snapshot(cro())
    assert d.levels("book.snapshot")[-1] == "info"


def test_cur_page_one_discards_an_interrupted_snapshot() -> None:
    d = driver()
    d.feed(d.core.on_connected("sub1", now=d.now))
    old = cro(inst_id="OLD-USDT-SWAP")
    d.feed(d.core.on_snapshot("sub1", [old], last_page=False, cur_page=1, now=d.now))
    d.feed(d.core.on_snapshot("sub1", [cro()], last_page=True, cur_page=1, now=d.now))
    assert [p.inst_id for p in d.core.book.positions("sub1")] == [CRO]


def test_a_cross_position_never_touches_the_isolated_one() -> None:
    d = driver()
    d.snapshot(cro())
    d.answer()
    d.push(cro(mgn_mode="cross", margin=D("999"), u_time=T + 1))
    iso = d.core.book.get(KEY)
    assert iso is not None and iso.margin == D("20.29")
    assert d.control().expected_margin == D("10.26")  # still waiting for its confirmation
    assert d.events("book.cross.ignored")[0]["mgnMode"] == "cross"


def test_instrument_listed_after_start_is_fetched_and_then_managed() -> None:
    d = driver(ct_vals={})
    d.snapshot(cro())
    assert d.fetches == [FetchInstrument("sub1", CRO)]
    assert d.sent == []
    control = d.control()
    assert control.status == "unmanaged" and "contract value unknown" in control.reason
    d.push(cro(margin=D("21"), u_time=T + 1))
    assert len(d.fetches) == 1  # one fetch at a time
    d.feed(d.core.on_instrument(CRO, None, "50026 System error", now=d.now))
    assert "fetch failed" in d.control().reason
    assert any(CRO in p for p in d.core.view(d.now).problems)
    assert d.events("instrument.fetch.failed")[0]["failures"] == 1
    d.advance(d.timers[KEY] - d.now)
    assert len(d.fetches) == 2  # retried after the back-off
    d.feed(d.core.on_instrument(CRO, Decimal("10"), None, now=d.now))
    d.run_due()
    assert [c.amount for c in d.sent] == [D("10.74")]
    assert d.events("instrument.fetched") == [{"instId": CRO, "ctVal": "10"}]
    assert not d.core.view(d.now).problems


def test_a_failed_task_leaves_nothing_in_flight() -> None:
    d = driver(cooldown_s=1.0)
    d.snapshot(cro())
    call = d.sent.pop()
    assert d.control().in_flight
    d.feed(d.core.on_task_failed(call, "RuntimeError: boom", now=d.now))
    assert not d.control().in_flight
    assert d.control().pending is not None  # it may have been sent: re-read first
    view = d.core.view(d.now)
    assert view.internal_errors == 1 and any("internal error" in p for p in view.problems)
    d.advance(d.timers[KEY] - d.now)
    assert len(d.resolves) == 1 and d.all_sent == [call]
    d.advance(601.0)
    assert not any("internal error" in p for p in d.core.view(d.now).problems)


def test_a_stale_answer_is_ignored() -> None:
    d = driver()
    d.snapshot(cro())
    call = d.sent[0]
    d.answer()
    before = list(d.history)
    d.feed(
        d.core.on_call_done(
            call.call,
            d.core and __import__("reactor.engine.calls", fromlist=["OK"]).OK,
            now=d.now,
        )
    )
    assert d.history == before


def test_pre_reduce_check_caps_the_reduce() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())
    (check,) = d.checks
    assert check.amount == D("10.03") and d.intents == []  # nothing journaled before the check
    d.feed(d.core.on_reduce_checked(check.call, D("6.789"), now=d.now))
    assert [(c.amount, type(c)) for c in d.sent] == [(D("6.78"), SendMarginCall)]
    assert d.events("margin.adjust.capped")[0]["est_avail"] == "6.789"


def test_pre_reduce_check_below_the_minimum_blocks_without_a_call() -> None:
    d = driver(pre_reduce_check=True, cooldown_s=1.0)
    d.snapshot(cro())
    (check,) = d.checks
    d.feed(d.core.on_reduce_checked(check.call, D("0.05"), now=d.now))
    assert d.intents == [] and d.all_sent == []
    assert d.control().status == "blocked" and not d.control().in_flight
    assert KEY in d.timers


def test_no_call_from_data_that_changed_during_the_pre_reduce_check() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())
    (check,) = d.checks
    d.push(cro(margin=D("12"), u_time=T + 1))  # moved while the exchange was asked
    d.feed(d.core.on_reduce_checked(check.call, None, now=d.now))
    assert d.intents == [] and d.all_sent == []
    d.run_due()  # decided again, from the new margin
    assert [c.amount for c in d.checks[1:]] == [D("1.74")]


def test_no_call_when_the_stream_broke_during_the_pre_reduce_check() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())
    (check,) = d.checks
    d.feed(d.core.on_disconnected("sub1", "drop", now=d.now))
    d.feed(d.core.on_reduce_checked(check.call, None, now=d.now))
    d.run_due()
    assert d.intents == [] and d.all_sent == [] and not d.control().in_flight
