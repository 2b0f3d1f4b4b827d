"""Position book: snapshots, pushes out of order, closes and reopens, reconcile drift."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reactor.domain.book import BookChange, ChangeKind, Drift, PositionBook
from reactor.okx.models import Position

from .factories import D, position

A = "sub1"
T0 = 1_700_000_000_000


def pos(inst: str = "CRO-USDT-SWAP", side: str = "long", **kw: object) -> Position:
    return position(inst_id=inst, pos_side=side, **kw)


def kinds(changes: list[BookChange]) -> list[tuple[str, ChangeKind]]:
    return [(c.key[1], c.kind) for c in changes]


def test_snapshot_pages_accumulate_and_replace() -> None:
    book = PositionBook()
    assert not book.is_fresh(A)
    assert book.apply_snapshot_page(A, [pos("A-USDT-SWAP")], last_page=False, cur_page=1) == []
    assert book.get((A, "A-USDT-SWAP", "long", "isolated")) is None  # nothing until the last page
    changes = book.apply_snapshot_page(
        A, [pos("B-USDT-SWAP"), pos("Z-USDT-SWAP", pos=D("0"))], last_page=True, cur_page=2
    )
    assert sorted(kinds(changes)) == [
        ("A-USDT-SWAP", ChangeKind.OPENED),
        ("B-USDT-SWAP", ChangeKind.OPENED),
    ]
    assert book.is_fresh(A)
    assert (
        book.get((A, "Z-USDT-SWAP", "long", "isolated")) is None
    )  # pos "0" in a snapshot is skipped
    assert book.accounts() == [A]
    # A later snapshot without A: A closed during the disconnect and disappears.
    book.mark_stale(A)
    assert not book.is_fresh(A)
    changes = book.apply_snapshot_page(A, [pos("B-USDT-SWAP")], last_page=True)
    assert kinds(changes) == [("A-USDT-SWAP", ChangeKind.CLOSED)]
    assert changes[0].previous is not None
    assert [p.inst_id for p in book.positions(A)] == ["B-USDT-SWAP"]
    assert book.is_fresh(A)


def test_unchanged_snapshot_reports_nothing_and_empty_snapshot_clears() -> None:
    book = PositionBook()
    book.apply_snapshot_page(A, [pos()], last_page=True)
    assert book.apply_snapshot_page(A, [pos()], last_page=True) == []
    changes = book.apply_snapshot_page(A, [], last_page=True)
    assert kinds(changes) == [("CRO-USDT-SWAP", ChangeKind.CLOSED)]
    assert book.positions() == []


def test_interrupted_snapshot_is_discarded() -> None:
    book = PositionBook()
    book.apply_snapshot_page(A, [pos("OLD-USDT-SWAP")], last_page=False, cur_page=1)
    book.mark_stale(A)  # connection dropped mid-snapshot
    book.apply_snapshot_page(A, [pos("NEW-USDT-SWAP")], last_page=True, cur_page=1)
    assert [p.inst_id for p in book.positions(A)] == ["NEW-USDT-SWAP"]


def test_updates_respect_utime() -> None:
    book = PositionBook()
    book.apply_snapshot_page(A, [pos(u_time=T0 + 10)], last_page=True)
    assert book.apply_update(A, [pos(u_time=T0 + 5, margin=D("1"))]) == []  # older: ignored
    changes = book.apply_update(A, [pos(u_time=T0 + 10, margin=D("11"))])  # equal, other data
    assert kinds(changes) == [("CRO-USDT-SWAP", ChangeKind.UPDATED)]
    assert changes[0].previous is not None and changes[0].previous.margin == D("20.29")
    assert book.apply_update(A, [pos(u_time=T0 + 10, margin=D("11"))]) == []  # identical
    changes = book.apply_update(A, [pos(u_time=T0 + 20, margin=D("10.26"))])
    assert kinds(changes) == [("CRO-USDT-SWAP", ChangeKind.UPDATED)]
    held = book.get((A, "CRO-USDT-SWAP", "long", "isolated"))
    assert held is not None and held.margin == D("10.26")


def test_close_and_reopen_with_new_ctime() -> None:
    book = PositionBook()
    book.apply_snapshot_page(A, [pos(u_time=T0)], last_page=True)
    closed = book.apply_update(A, [pos(pos=D("0"), u_time=T0 + 50, margin=D("0"))])
    assert kinds(closed) == [("CRO-USDT-SWAP", ChangeKind.CLOSED)]
    assert closed[0].position.pos == 0
    assert book.get((A, "CRO-USDT-SWAP", "long", "isolated")) is None
    # A late push of the closed position must not bring it back.
    assert book.apply_update(A, [pos(u_time=T0 + 40)]) == []
    assert book.positions(A) == []
    # The position reopens: a new cTime, a new position.
    opened = book.apply_update(A, [pos(c_time=T0 + 100, u_time=T0 + 100)])
    assert kinds(opened) == [("CRO-USDT-SWAP", ChangeKind.OPENED)]
    # ... and closes and reopens between two pushes: the held one is replaced.
    reopened = book.apply_update(A, [pos(c_time=T0 + 200, u_time=T0 + 200, margin=D("5"))])
    assert kinds(reopened) == [("CRO-USDT-SWAP", ChangeKind.REOPENED)]
    assert reopened[0].previous is not None and reopened[0].previous.c_time == T0 + 100
    # A straggler of the previous position (older cTime) is ignored even if its uTime is later.
    assert book.apply_update(A, [pos(c_time=T0 + 100, u_time=T0 + 300)]) == []


def test_close_of_unknown_position_is_ignored() -> None:
    book = PositionBook()
    assert book.apply_update(A, [pos(pos=D("0"))]) == []
    assert book.positions() == []


def test_push_during_snapshot_is_folded_in() -> None:
    book = PositionBook()
    book.apply_snapshot_page(A, [pos("A-USDT-SWAP", u_time=T0)], last_page=False, cur_page=1)
    book.apply_update(A, [pos("A-USDT-SWAP", pos=D("0"), u_time=T0 + 5)])  # closes A
    book.apply_update(A, [pos("N-USDT-SWAP", u_time=T0 + 6)])  # opens N
    book.apply_snapshot_page(A, [pos("B-USDT-SWAP")], last_page=True, cur_page=2)
    assert sorted(p.inst_id for p in book.positions(A)) == ["B-USDT-SWAP", "N-USDT-SWAP"]


def test_snapshot_does_not_roll_back_a_newer_push() -> None:
    book = PositionBook()
    book.apply_snapshot_page(A, [pos(u_time=T0)], last_page=True)
    book.apply_update(A, [pos(u_time=T0 + 20, margin=D("10.26"))])
    assert book.apply_snapshot_page(A, [pos(u_time=T0 + 10)], last_page=True) == []
    held = book.get((A, "CRO-USDT-SWAP", "long", "isolated"))
    assert held is not None and held.margin == D("10.26")


def test_accounts_are_independent() -> None:
    book = PositionBook()
    book.apply_snapshot_page("a", [pos(account="a")], last_page=True)
    two = [pos(account="b"), pos("X-USDT-SWAP", account="b")]
    book.apply_snapshot_page("b", two, last_page=True)
    assert len(book.positions("a")) == 1
    assert len(book.positions("b")) == 2
    assert len(book.positions()) == 3
    assert len(book) == 3
    book.mark_stale("a")
    assert not book.is_fresh("a") and book.is_fresh("b")
    assert book.apply_snapshot_page("a", [], last_page=True)[0].kind is ChangeKind.CLOSED
    assert len(book.positions("b")) == 2
    assert sorted(book.accounts()) == ["a", "b"]


def test_reconcile_reports_drift_and_corrects() -> None:
    book = PositionBook()
    book.apply_snapshot_page(
        A,
        [pos("A-USDT-SWAP", u_time=T0), pos("B-USDT-SWAP", u_time=T0)],
        last_page=True,
    )
    rest = [
        pos("A-USDT-SWAP", u_time=T0 + 10, margin=D("10.26"), pos=D("100")),
        pos("C-USDT-SWAP", u_time=T0 + 10),
    ]
    drifts, changes = book.reconcile(A, rest, as_of_ms=T0 + 10)
    key_a, key_b, key_c = (
        (A, i, "long", "isolated") for i in ("A-USDT-SWAP", "B-USDT-SWAP", "C-USDT-SWAP")
    )
    assert set(drifts) == {
        Drift(key_a, "pos", "108", "100"),
        Drift(key_a, "margin", "20.29", "10.26"),
        Drift(key_c, "presence", "absent", "present"),
        Drift(key_b, "presence", "present", "absent"),
    }
    assert sorted(kinds(changes)) == [
        ("A-USDT-SWAP", ChangeKind.UPDATED),
        ("B-USDT-SWAP", ChangeKind.CLOSED),
        ("C-USDT-SWAP", ChangeKind.OPENED),
    ]
    held = book.get(key_a)
    assert held is not None and held.margin == D("10.26")
    assert book.reconcile(A, rest) == ([], [])  # corrected: no drift any more


def test_reconcile_detects_reopen() -> None:
    book = PositionBook()
    book.apply_snapshot_page(A, [pos(u_time=T0)], last_page=True)
    drifts, changes = book.reconcile(A, [pos(c_time=T0 + 5, u_time=T0 + 5)])
    assert {d.field for d in drifts} == {"cTime"}
    assert kinds(changes) == [("CRO-USDT-SWAP", ChangeKind.REOPENED)]


def test_isolated_and_cross_positions_coexist() -> None:
    """mgnMode is part of the key (OKX keeps both): a cross push never overwrites isolated."""
    book = PositionBook()
    book.apply_snapshot_page(A, [pos(u_time=T0)], last_page=True)
    changes = book.apply_update(A, [pos(u_time=T0 + 5, mgn_mode="cross", margin=D("99"))])
    assert [(c.key[3], c.kind) for c in changes] == [("cross", ChangeKind.OPENED)]
    isolated = book.get((A, "CRO-USDT-SWAP", "long", "isolated"))
    assert isolated is not None and isolated.margin == D("20.29")
    assert len(book.positions(A)) == 2
    # A REST read with only the cross one: the isolated position is gone, the cross one stays.
    drifts, changes = book.reconcile(A, [pos(u_time=T0 + 5, mgn_mode="cross", margin=D("99"))])
    assert [(d.key[3], d.field) for d in drifts] == [("isolated", "presence")]
    assert [(c.key[3], c.kind) for c in changes] == [("isolated", ChangeKind.CLOSED)]


def test_reconcile_leaves_newer_book_entries_alone() -> None:
    book = PositionBook()
    book.apply_snapshot_page(A, [pos(u_time=T0 + 50, margin=D("10.26"))], last_page=True)
    book.apply_update(A, [pos("NEW-USDT-SWAP", u_time=T0 + 60)])
    # The REST answer predates both: margin change and the new position came after it.
    drifts, changes = book.reconcile(A, [pos(u_time=T0 + 10)], as_of_ms=T0 + 20)
    assert drifts == [] and changes == []
    assert len(book.positions(A)) == 2


def test_reconcile_one_instrument_keeps_the_rest() -> None:
    book = PositionBook()
    book.apply_snapshot_page(A, [pos("A-USDT-SWAP"), pos("B-USDT-SWAP")], last_page=True)
    drifts, changes = book.reconcile(A, [], inst_id="A-USDT-SWAP")
    assert drifts == [
        Drift((A, "A-USDT-SWAP", "long", "isolated"), "presence", "present", "absent")
    ]
    assert kinds(changes) == [("A-USDT-SWAP", ChangeKind.CLOSED)]
    assert [p.inst_id for p in book.positions(A)] == ["B-USDT-SWAP"]


def test_many_updates_stay_consistent() -> None:
    book = PositionBook()
    insts = [f"C{i}-USDT-SWAP" for i in range(2000)]
    book.apply_snapshot_page(A, [pos(i, u_time=T0) for i in insts], last_page=True)
    for step in range(1, 4):
        changes = book.apply_update(A, [pos(i, u_time=T0 + step, margin=D(step)) for i in insts])
        assert len(changes) == len(insts)
    assert all(p.margin == D(3) for p in book.positions(A))


# --- a bad push cannot freeze a position -----------------------------------------------------

NOW = T0 + 3_600_000  # the fake clock: an hour after T0
DAY = 86_400_000
KEY = (A, "CRO-USDT-SWAP", "long", "isolated")


def clocked() -> PositionBook:
    return PositionBook(now_ms=lambda: NOW)


def test_push_with_utime_far_beyond_its_ptime_is_invalid_and_freezes_nothing() -> None:
    book = clocked()
    book.apply_snapshot_page(A, [pos(u_time=T0)], last_page=True)
    bad = pos(margin=D("5"), u_time=NOW + DAY, p_time=NOW)  # uTime a day ahead of OKX's clock
    assert book.apply_update(A, [bad]) == []
    assert book.get(KEY).margin == D("20.29")  # type: ignore[union-attr]
    # Before: the bad uTime was held and every later push, snapshot and read was "older".
    (change,) = book.apply_update(A, [pos(margin=D("10"), u_time=NOW + 1, p_time=NOW + 1)])
    assert change.kind is ChangeKind.UPDATED and book.get(KEY).margin == D("10")  # type: ignore[union-attr]


def test_future_utime_without_ptime_is_clamped_to_the_local_clock() -> None:
    book = clocked()
    book.apply_snapshot_page(A, [pos(u_time=NOW + DAY, margin=D("5"))], last_page=True)
    assert book.get(KEY).u_time == NOW  # type: ignore[union-attr]
    drifts, _ = book.reconcile(A, [pos(u_time=NOW + 10, margin=D("10"))])
    assert [d.field for d in drifts] == ["margin"] and book.get(KEY).margin == D("10")  # type: ignore[union-attr]


def test_a_utime_within_the_tolerance_keeps_its_order() -> None:
    book = clocked()
    book.apply_snapshot_page(A, [pos(u_time=T0)], last_page=True)
    book.apply_update(A, [pos(margin=D("12"), u_time=NOW + 4_000, p_time=NOW)])
    assert book.get(KEY).u_time == NOW + 4_000  # type: ignore[union-attr]
    assert book.apply_update(A, [pos(margin=D("11"), u_time=NOW + 3_000, p_time=NOW)]) == []


def test_ctime_after_ptime_is_an_invalid_record() -> None:
    book = clocked()
    book.apply_snapshot_page(A, [pos(u_time=T0)], last_page=True)
    bad = pos(c_time=NOW + DAY, u_time=NOW + DAY, p_time=NOW, margin=D("1"))
    assert book.apply_update(A, [bad]) == []
    held = book.get(KEY)
    assert held is not None and held.c_time == T0 and held.margin == D("20.29")


def test_snapshot_disagreeing_with_a_newer_entry_wins_on_the_second_look() -> None:
    book = clocked()
    book.apply_snapshot_page(A, [pos(u_time=T0)], last_page=True)
    book.apply_update(A, [pos(margin=D("5"), u_time=NOW + 4_000, p_time=NOW)])  # ahead, trusted
    snap = pos(margin=D("10"), u_time=NOW - 1_000)
    book.mark_stale(A)
    assert book.apply_snapshot_page(A, [snap], last_page=True) == []  # first look: stream ahead
    assert book.get(KEY).margin == D("5")  # type: ignore[union-attr]
    book.mark_stale(A)
    (change,) = book.apply_snapshot_page(A, [snap], last_page=True)  # still disagrees: it wins
    assert change.kind is ChangeKind.UPDATED and book.get(KEY).margin == D("10")  # type: ignore[union-attr]


def test_rest_read_disagreeing_with_a_newer_entry_wins_on_the_second_look() -> None:
    book = clocked()
    book.apply_snapshot_page(A, [pos(u_time=T0)], last_page=True)
    book.apply_update(A, [pos(margin=D("5"), u_time=NOW + 4_000, p_time=NOW)])
    read = pos(margin=D("10"), u_time=NOW - 1_000)
    drifts, changes = book.reconcile(A, [read])
    assert drifts == [] and changes == [] and book.get(KEY).margin == D("5")  # type: ignore[union-attr]
    drifts, changes = book.reconcile(A, [read])
    assert [d.field for d in drifts] == ["margin"] and book.get(KEY).margin == D("10")  # type: ignore[union-attr]


def test_a_real_newer_push_between_two_reads_resets_the_doubt() -> None:
    book = clocked()
    book.apply_snapshot_page(A, [pos(u_time=T0)], last_page=True)
    book.apply_update(A, [pos(margin=D("5"), u_time=NOW + 4_000, p_time=NOW)])
    read = pos(margin=D("10"), u_time=NOW - 1_000)
    book.reconcile(A, [read])
    book.apply_update(A, [pos(margin=D("6"), u_time=NOW + 4_500, p_time=NOW)])  # the stream moves
    drifts, _ = book.reconcile(A, [read])
    assert drifts == [] and book.get(KEY).margin == D("6")  # type: ignore[union-attr]


def test_an_agreeing_older_read_raises_no_doubt() -> None:
    book = clocked()
    book.apply_snapshot_page(A, [pos(u_time=NOW)], last_page=True)
    for _ in range(3):
        drifts, changes = book.reconcile(A, [pos(u_time=NOW - 5)])
        assert drifts == [] and changes == []
    assert book.get(KEY).u_time == NOW  # type: ignore[union-attr]


@given(
    bad_u=st.integers(min_value=0, max_value=10**15),
    bad_c=st.integers(min_value=0, max_value=10**15),
    bad_p=st.integers(min_value=0, max_value=10**15),
    via=st.sampled_from(["push", "snapshot", "rest"]),
)
def test_no_single_record_freezes_a_position(bad_u: int, bad_c: int, bad_p: int, via: str) -> None:
    """Whatever stamps one record carries, the exchange's later records win within two reads."""
    book = clocked()
    book.apply_snapshot_page(A, [pos(u_time=T0, c_time=T0)], last_page=True)
    bad = pos(margin=D("99"), u_time=bad_u, c_time=bad_c, p_time=bad_p)
    if via == "push":
        book.apply_update(A, [bad])
    elif via == "snapshot":
        book.mark_stale(A)
        book.apply_snapshot_page(A, [bad], last_page=True)
    else:
        book.reconcile(A, [bad])
    real = pos(margin=D("10"), u_time=NOW, c_time=T0, p_time=NOW)
    book.apply_update(A, [real])
    for _ in range(2):  # at most the second look
        book.reconcile(A, [pos(margin=D("10"), u_time=NOW, c_time=T0)])
    held = book.get(KEY)
    assert held is not None and held.margin == D("10") and held.c_time == T0
