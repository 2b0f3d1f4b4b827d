"""OKX's regular snapshots (every 2-5 s, every position) cost close to nothing when nothing
that decides a correction changed, and still re-evaluate everything that may need one."""

from __future__ import annotations

import dataclasses

from reactor.domain.book import PositionBook
from reactor.engine.commands import SetTimer
from reactor.okx.models import Position
from tests.domain.factories import D

from .core_driver import KEY, Driver, cro, driver

T0 = cro().u_time


def regular(d: Driver, *positions: Position) -> list[SetTimer]:
    """A regular snapshot (no reconnect before it); the timers it set."""
    start = len(d.history)
    d.feed(d.core.on_snapshot("sub1", list(positions), last_page=True, now=d.now))
    timers = [c for c in d.history[start:] if isinstance(c, SetTimer)]
    d.run_due()
    return timers


def in_band(**kw: object) -> Position:
    return cro(margin=D("10"), **kw)


def test_push_time_is_not_part_of_a_position() -> None:
    a = in_band(p_time=T0 + 1)
    assert a == dataclasses.replace(a, p_time=T0 + 5_000)
    assert a != dataclasses.replace(a, margin=D("10.01"))


def test_a_snapshot_that_repeats_a_position_is_no_change_to_the_book() -> None:
    book = PositionBook()
    book.apply_snapshot_page("sub1", [in_band(p_time=T0 + 1)], last_page=True)
    changes = book.apply_snapshot_page("sub1", [in_band(p_time=T0 + 2_001)], last_page=True)
    assert changes == []
    moved = in_band(p_time=T0 + 4_001, mark_px=D("0.0951"), upl=D("4.97"))
    (change,) = book.apply_snapshot_page("sub1", [moved], last_page=True)
    assert change.position == moved


def test_regular_snapshot_of_an_unchanged_in_band_position_sets_no_timer() -> None:
    d = driver()
    d.snapshot(in_band(p_time=T0 + 1))
    assert d.control(KEY).status == "ok" and d.control(KEY).reason == "in_band"
    d.now += 2.0
    assert regular(d, in_band(p_time=T0 + 2_001)) == []
    assert d.sent == []


def test_mark_moves_of_an_in_band_position_set_no_timer() -> None:
    d = driver()
    d.snapshot(in_band(p_time=T0 + 1))
    for i, mark in enumerate(("0.0951", "0.0949", "0.0800")):
        d.now += 2.0
        moved = in_band(p_time=T0 + 2_001 * (i + 1), mark_px=D(mark), upl=D("-1"))
        assert regular(d, moved) == []
    assert d.sent == []
    assert d.core.book.get(KEY) is not None
    assert d.core.book.get(KEY).mark_px == D("0.0800")  # type: ignore[union-attr]


def test_a_margin_change_in_a_regular_snapshot_is_acted_on() -> None:
    d = driver()
    d.snapshot(in_band(p_time=T0 + 1))
    d.now += 2.0
    regular(d, cro(margin=D("20.29"), u_time=T0 + 10, p_time=T0 + 2_001))
    assert [(c.action, c.amount) for c in d.sent] == [("reduce", D("10.03"))]


def test_a_blocked_position_is_re_evaluated_on_every_regular_snapshot() -> None:
    """The floor (initial margin + unrealised loss) moves with the mark, which OKX shows only
    in snapshots: a blocked position must be looked at again each time."""
    d = driver()
    deep = cro(mark_px=D("0.07"), upl=D("-22.14"))  # floor 29.70 > margin 20.29
    d.snapshot(deep)
    assert d.control(KEY).status == "blocked" and d.sent == []
    d.now += 2.0
    assert regular(d, dataclasses.replace(deep, p_time=T0 + 2_001)) != []  # still looked at
    assert d.sent == []
    d.now += 2.0
    recovered = cro(mark_px=D("0.0950"), upl=D("4.86"), p_time=T0 + 4_001)
    regular(d, recovered)
    assert [(c.action, c.amount) for c in d.sent] == [("reduce", D("10.03"))]


def test_after_a_reconnect_every_position_is_re_evaluated() -> None:
    d = driver()
    d.snapshot(in_band(p_time=T0 + 1))
    d.now += 2.0
    start = len(d.history)
    d.snapshot(in_band(p_time=T0 + 2_001))  # on_connected first: a (re)connect snapshot
    assert any(isinstance(c, SetTimer) for c in d.history[start:])
