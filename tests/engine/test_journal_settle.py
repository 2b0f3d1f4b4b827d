"""Every journal row ends final: the open ones are resolved from the bills
(:mod:`reactor.engine.journal_settle`), over a real ledger file and a fake bills endpoint."""

from __future__ import annotations

import asyncio
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from reactor.engine.bill_reads import HOUR_MS, BillReader
from reactor.engine.foreign import BillWindow
from reactor.engine.journal_settle import BILLS_KEPT_MS, BOOKED_WITHIN_MS, settle_open
from reactor.engine.state import AccountState, Role
from reactor.okx.clock import ExchangeClock
from reactor.store import FINAL_STATUSES, SqliteLedger

from .core_driver import CRO, settings

A = "sub1"
NOW_MS = 1_760_000_000_000


class Bills:
    """OKX's bills endpoint: the margin transfers it booked, newest first."""

    def __init__(self) -> None:
        self.rows: list[dict[str, str]] = []
        self.fail: BaseException | None = None
        self.clock = ExchangeClock()  # never measured: offset 0

    def book(self, action: str, amount: str, ts: int) -> None:
        chg = amount if action == "add" else f"-{amount}"
        sub = "160" if action == "add" else "161"
        bill_id = str(900 + len(self.rows))
        self.rows.insert(
            0,
            {"billId": bill_id, "instId": CRO, "type": "6", "subType": sub, "sz": amount}
            | {"posBalChg": chg, "posBal": "20", "ts": str(ts)},
        )

    async def get_bills(self, inst_id: str, **kw: Any) -> list[dict[str, Any]]:
        if self.fail is not None:
            raise self.fail
        sub, begin = kw.get("sub_type"), kw.get("begin_ms")
        return [
            b
            for b in self.rows
            if b["instId"] == inst_id
            and (sub is None or b["subType"] == sub)
            and (begin is None or int(b["ts"]) >= begin)
            and (kw.get("after") is None or int(b["billId"]) < int(kw["after"]))
        ]

    async def sync_clock(self) -> float:
        return 0.0


# A row: its status, how long ago it was sent, whether OKX booked it, its action and amount.
ROW = st.tuples(
    st.sampled_from(["pending", "unknown", "ok", "error"]),
    st.integers(min_value=0, max_value=8 * 24 * HOUR_MS),
    st.booleans(),
    st.sampled_from(["add", "reduce"]),
)


Row = tuple[str, int, bool, str, str]


def _ledger(path: Path, rows: list[Row], bills: Bills) -> SqliteLedger:
    clock = {"ms": 0}
    ledger = SqliteLedger(path, clock=lambda: clock["ms"] / 1000)
    for status, age, booked, action, amount in sorted(rows, key=lambda r: -r[1]):
        clock["ms"] = NOW_MS - age
        jid = ledger.journal_intent(A, CRO, "long", action, amount, "{}")
        if status != "pending":
            ledger.journal_result(jid, status, None, "left by an earlier run")  # type: ignore[arg-type]
        if booked:
            bills.book(action, amount, NOW_MS - age + 300)
    return ledger


async def _settle(ledger: SqliteLedger, bills: Bills, wall_ms: int) -> Any:
    accounts = {A: AccountState(A, Role.SUB, client=bills)}  # type: ignore[arg-type]
    reader = BillReader(ledger, BillWindow(NOW_MS, 5000), settings(), accounts)
    return await settle_open(ledger, accounts, reader, 30_000, wall_ms)


@hsettings(max_examples=40, deadline=None)
@given(st.lists(ROW, max_size=12))
def test_every_row_ends_final(drawn: list[tuple[str, int, bool, str]]) -> None:
    """Whatever statuses earlier runs left: after the passes of the next few minutes no row is
    open; a booked call is ok with its bill, an unbooked one not applied, one whose bills OKX
    no longer keeps expired; final rows are never touched."""
    rows = [(*row, f"{i + 1}.5") for i, row in enumerate(drawn)]  # one transfer, one row
    with tempfile.TemporaryDirectory() as tmp:
        bills = Bills()
        ledger = _ledger(Path(tmp) / "ledger.sqlite", rows, bills)
        before = {e.id: e for e in ledger.journal(1000)}
        asyncio.run(_settle(ledger, bills, NOW_MS))
        asyncio.run(_settle(ledger, bills, NOW_MS + BOOKED_WITHIN_MS))
        after = {e.id: e for e in ledger.journal(1000)}
        ledger.close()
    assert all(e.status in FINAL_STATUSES for e in after.values())
    booked = {amount for _, _, b, _, amount in rows if b}
    for jid, old in before.items():
        new = after[jid]
        if old.status in FINAL_STATUSES:
            assert (new.status, new.bill_id, new.msg) == (old.status, old.bill_id, old.msg)
        elif NOW_MS - old.sent_ms > BILLS_KEPT_MS:
            assert new.status == "expired"
        elif old.amount in booked:
            assert new.status == "ok" and new.bill_id is not None
        else:
            assert new.status == "error" and new.msg.startswith("not applied: no bill")


def test_a_young_row_without_bill_waits_and_bills_unreadable_leave_rows_open(
    tmp_path: Path,
) -> None:
    bills = Bills()
    ledger = _ledger(tmp_path / "l.sqlite", [("unknown", 1000, False, "add", "1")], bills)
    done = asyncio.run(_settle(ledger, bills, NOW_MS))
    assert (done.ok, done.not_applied, done.left) == (0, 0, 1)
    bills.fail = OSError("down")
    done = asyncio.run(_settle(ledger, bills, NOW_MS + BOOKED_WITHIN_MS))
    assert done.left == 1 and ledger.journal(1)[0].status == "unknown"
    bills.fail = None
    done = asyncio.run(_settle(ledger, bills, NOW_MS + BOOKED_WITHIN_MS))
    entry = ledger.journal(1)[0]
    assert (done.not_applied, entry.status) == (1, "error")
    assert entry.msg == "not applied: no bill (was unknown: left by an earlier run)"


def test_a_booked_row_is_ok_at_once_with_its_bill(tmp_path: Path) -> None:
    bills = Bills()
    ledger = _ledger(tmp_path / "l.sqlite", [("unknown", 1000, True, "reduce", "9.97")], bills)
    done = asyncio.run(_settle(ledger, bills, NOW_MS))
    entry = ledger.journal(1)[0]
    assert (done.ok, entry.status, entry.bill_id) == (1, "ok", "900")
    assert Decimal(entry.amount) == Decimal("9.97")
