"""A failing journal never leaves a position in flight, never lets a call out without a durable
intent, shows in the health view, and corrections resume by themselves when storage recovers."""

from __future__ import annotations

from reactor.engine.commands import WriteResult
from reactor.engine.core import STORAGE_KEY
from tests.domain.factories import D

from .core_driver import KEY, cro, driver

T = cro().u_time


def test_failed_intent_write_sends_nothing_and_retries_with_backoff() -> None:
    d = driver(cooldown_s=1.0)
    d.journal_error = "database is locked"
    d.snapshot(cro())
    assert d.sent == [] and d.all_sent == []
    assert not d.control().in_flight  # before: stuck "in flight" forever
    (failed,) = d.events("journal.write.failed")
    assert failed["what"] == "intent" and d.levels("journal.write.failed") == ["error"]
    view = d.core.view(d.now)
    assert not view.storage_ok and any("journal" in p for p in view.problems)
    assert d.control().status == "error"
    delays = []
    for _ in range(3):
        delays.append(d.timers[KEY] - d.now)
        d.advance(delays[-1])
    assert delays == [1.0, 2.0, 4.0] and d.all_sent == []
    d.journal_error = None  # storage recovered
    d.advance(d.timers[KEY] - d.now)
    assert [c.amount for c in d.sent] == [D("10.03")]
    assert d.events("journal.write.recovered")
    assert d.core.view(d.now).storage_ok and not d.core.view(d.now).problems


def test_failed_result_write_is_kept_and_written_later() -> None:
    d = driver()
    d.snapshot(cro())
    call = d.sent[0]
    d.journal_error = "disk I/O error"
    d.answer()
    assert call.journal_id not in d.results
    assert not d.core.view(d.now).storage_ok
    assert STORAGE_KEY in d.timers  # written again later, with back-off
    d.journal_error = None
    d.advance(d.timers[STORAGE_KEY] - d.now)
    assert d.results[call.journal_id] == WriteResult(call.journal_id, "ok", None, None)
    assert d.core.view(d.now).storage_ok


def test_ledger_read_failure_retries() -> None:
    d = driver(cooldown_s=1.0)
    d.counts.fail = "unable to open database file"
    d.snapshot(cro())
    assert d.sent == [] and not d.control().in_flight
    assert d.events("journal.write.failed")[0]["what"] == "count"
    d.counts.fail = None
    d.advance(d.timers[KEY] - d.now)
    assert len(d.sent) == 1


def test_a_call_is_never_sent_for_a_position_closed_while_journaling() -> None:
    d = driver(pre_reduce_check=True)
    d.snapshot(cro())
    (check,) = d.checks
    d.push(cro(pos=D("0"), u_time=T + 1))  # closed before the check came back
    d.feed(d.core.on_reduce_checked(check.call, None, now=d.now))
    assert d.intents == [] and d.all_sent == []
