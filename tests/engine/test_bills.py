"""Bill matching (docs/spec/okx-fidelity.md §5.4): which call a margin-transfer bill belongs to."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reactor.engine.foreign import CallRecord, attribute, match_ambiguous
from reactor.okx.bills import Bill, parse_transfers, transfer_bill
from tests.domain.factories import D

CRO = "CRO-USDT-SWAP"
SKEW = 5000


def raw_bill(bill_id: str, sub_type: str, amount: str, pos_bal: str, ts: int) -> dict[str, str]:
    """A bill in OKX's shape (CCXT-BILL): balChg opposite posBalChg, sz the amount."""
    sign = "" if sub_type == "160" else "-"
    return {
        "billId": bill_id,
        "instId": CRO,
        "instType": "SWAP",
        "mgnMode": "isolated",
        "type": "6",
        "subType": sub_type,
        "sz": amount,
        "posBalChg": f"{sign}{amount}",
        "balChg": f"{'-' if not sign else ''}{amount}",
        "posBal": pos_bal,
        "ts": str(ts),
    }


def bill(bill_id: str, action: str, amount: str, pos_bal: str | None, ts: int) -> Bill:
    return transfer_bill(
        bill_id, CRO, action, D(amount), None if pos_bal is None else D(pos_bal), ts
    )


def call(jid: int, action: str, amount: str, sent: int, done: int | None = None) -> CallRecord:
    return CallRecord(jid, CRO, action, D(amount), sent, done)


def test_parse_keeps_manual_transfers_only_and_reports_bad_records() -> None:
    raw = [
        raw_bill("1", "161", "9.97", "10.32", 100),
        {**raw_bill("2", "162", "1", "11", 101)},  # auto margin add: not a controller's
        {"type": "2", "subType": "3", "billId": "3"},  # a fill
        {**raw_bill("4", "160", "x", "1", 102)},
    ]
    bills, errors = parse_transfers(raw)
    assert [(b.bill_id, b.action, b.sz, b.pos_bal_chg, b.pos_bal) for b in bills] == [
        ("1", "reduce", D("9.97"), D("-9.97"), D("10.32"))
    ]
    assert len(errors) == 1 and "4" in errors[0]


def test_the_ambiguous_call_matches_its_own_bill_only() -> None:
    me = call(9, "reduce", "9.97", sent=10_000)
    bills = [
        bill("a", "reduce", "9.97", "10.32", 2_000),  # before the send (less skew): older
        bill("b", "add", "9.97", "30.26", 10_100),  # the other direction
        bill("c", "reduce", "5", "15.29", 10_100),  # another amount
        bill("d", "reduce", "9.97", "0.35", 10_200),  # the short of the same instrument
        bill("e", "reduce", "9.97", "10.32", 10_300),
    ]
    found = match_ambiguous(bills, me, D("20.29"), set(), skew_ms=SKEW)
    assert found is not None and found.bill_id == "e"
    assert match_ambiguous(bills, me, D("20.29"), {"e"}, skew_ms=SKEW) is None  # credited
    # Without the margin it was decided from, posBal cannot tell long from short.
    assert match_ambiguous(bills, me, None, set(), skew_ms=SKEW).bill_id == "d"  # type: ignore[union-attr]


def test_a_bill_slightly_before_the_send_time_is_within_the_clock_skew() -> None:
    me = call(9, "add", "1", sent=10_000)
    found = match_ambiguous([bill("x", "add", "1", "11", 7_000)], me, D("10"), set(), skew_ms=SKEW)
    assert found is not None


def test_attribute_credits_each_call_once_and_the_rest_is_foreign() -> None:
    calls = [call(1, "reduce", "9.97", 1_000, 1_100), call(2, "reduce", "9.97", 5_000, None)]
    bills = [
        bill("x", "reduce", "9.97", "10.32", 1_050),
        bill("y", "add", "9.97", "20.29", 3_000),  # the other controller's add
        bill("z", "reduce", "9.97", "10.32", 5_050),
        bill("w", "reduce", "9.97", "0.35", 5_060),  # same amount again: nobody's
    ]
    credits, foreign = attribute(bills, calls, skew_ms=SKEW, late_ms=SKEW)
    assert credits == [(1, "x"), (2, "z")]
    assert [b.bill_id for b in foreign] == ["y", "w"]


def test_a_bill_already_credited_is_never_foreign_nor_credited_again() -> None:
    calls = [CallRecord(1, CRO, "add", D("5"), 1_000, 1_100, "x")]
    credits, foreign = attribute(
        [bill("x", "add", "5", "15", 1_050)], calls, skew_ms=SKEW, late_ms=SKEW
    )
    assert credits == [] and foreign == []


def test_a_bill_long_after_an_answered_call_is_not_that_calls() -> None:
    calls = [call(1, "add", "5", 1_000, 1_100)]
    _, foreign = attribute(
        [bill("x", "add", "5", "15", 90_000)], calls, skew_ms=SKEW, late_ms=60_000
    )
    assert [b.bill_id for b in foreign] == ["x"]


_amounts = st.sampled_from(["1", "2.5", "9.97"])


@given(
    ours=st.lists(st.tuples(st.sampled_from(["add", "reduce"]), _amounts), max_size=8),
    theirs=st.lists(st.tuples(st.sampled_from(["add", "reduce"]), _amounts), max_size=8),
)
def test_every_bill_is_ours_or_foreign_and_the_count_adds_up(
    ours: list[tuple[str, str]], theirs: list[tuple[str, str]]
) -> None:
    """Our calls (each booked 10 ms after it was sent) and foreign transfers interleaved: no
    bill is credited twice, no call gets two bills, and exactly the foreign count is left."""
    calls, bills = [], []
    t = 0
    for i, (action, amount) in enumerate(ours):
        t += 1000
        calls.append(call(i + 1, action, amount, t, t + 20))
        bills.append(bill(f"o{i}", action, amount, None, t + 10))
    for i, (action, amount) in enumerate(theirs):
        bills.append(bill(f"f{i}", action, amount, None, 500 + 1000 * i))
    credits, foreign = attribute(bills, calls, skew_ms=100, late_ms=100)
    credited = [b for _, b in credits]
    assert len(credited) == len(set(credited))
    assert len({j for j, _ in credits}) == len(credits)
    assert len(credits) + len(foreign) == len(bills)
    assert len(foreign) == len(theirs)
