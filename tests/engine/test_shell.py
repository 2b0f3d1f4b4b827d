"""The asyncio shell over a fake REST client and a real ledger file: no sockets."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from reactor.engine import AccountState, Engine
from reactor.engine.commands import ReadBills
from reactor.engine.shell import INTENTS_PER_COMMIT
from reactor.okx.clock import ExchangeClock
from reactor.okx.errors import OkxError
from reactor.status.snapshot import EngineStatus
from reactor.store import Intent, SqliteLedger
from tests.domain.factories import D

from .core_driver import CRO, CT_VALS, DOGE, KEY, cro, doge, settings


class FakeClient:
    """One CRO position whose margin moves with each accepted call, like the exchange's."""

    def __init__(self) -> None:
        self.margin = D("20.29")
        self.u_time = cro().u_time
        self.calls: list[tuple[str, str, str, Decimal]] = []
        self.fail_with: BaseException | None = None
        self.instruments = [{"instId": CRO, "ctVal": "10", "lotSz": "1", "tickSz": "0.00001"}]
        self.bills: list[dict[str, str]] = []
        self.bill_reads: list[dict[str, Any]] = []
        self.bills_fail: BaseException | None = None
        self.check_fails: BaseException | None = None
        self.clock = ExchangeClock()  # never measured: offset 0

    async def get_positions(
        self, inst_type: str = "SWAP", inst_id: str | None = None
    ) -> list[dict[str, Any]]:
        p = cro()
        return [
            {
                "instId": CRO,
                "instType": "SWAP",
                "mgnMode": "isolated",
                "posSide": "long",
                "pos": str(p.pos),
                "ccy": "USDT",
                "avgPx": str(p.avg_px),
                "markPx": str(p.mark_px),
                "lever": str(p.lever),
                "margin": str(self.margin),
                "mmr": str(p.mmr),
                "upl": str(p.upl),
                "posId": "1",
                "cTime": str(p.c_time),
                "uTime": str(self.u_time),
            }
        ]

    async def margin_balance(
        self, inst_id: str, pos_side: str, action: str, amt: Decimal
    ) -> dict[str, Any]:
        self.calls.append((inst_id, pos_side, action, amt))
        if self.fail_with is not None:
            raise self.fail_with
        self.margin += amt if action == "add" else -amt
        self.u_time += 1
        self.book_bill(action, amt)
        return {}

    def book_bill(self, action: str, amt: Decimal, ts: int | None = None) -> str:
        """The margin-transfer bill OKX books (CCXT-BILL shape), newest first."""
        bill_id = str(700 + len(self.bills))
        self.bills.insert(
            0,
            {
                "billId": bill_id,
                "instId": CRO,
                "type": "6",
                "subType": "160" if action == "add" else "161",
                "sz": str(amt),
                "posBalChg": str(amt if action == "add" else -amt),
                "posBal": str(self.margin),
                "ts": str(ts if ts is not None else int(time.time() * 1000)),
            },
        )
        return bill_id

    async def get_bills(self, inst_id: str, **kw: Any) -> list[dict[str, Any]]:
        self.bill_reads.append(kw)
        if self.bills_fail is not None:
            raise self.bills_fail
        return [b for b in self.bills if inst_id in ("", b["instId"])]

    async def adjust_leverage_info(
        self, inst_id: str, lever: Decimal, pos_side: str, *, mgn_mode: str = "isolated"
    ) -> dict[str, Any]:
        if self.check_fails is not None:
            raise self.check_fails
        return {"estAvailTrans": "9.9787"}

    async def sync_clock(self) -> float:
        return 0.0

    async def get_instruments(
        self, inst_type: str = "SWAP", inst_id: str | None = None
    ) -> list[dict[str, Any]]:
        return [i for i in self.instruments if inst_id in (None, i["instId"])]


class FlakyLedger(SqliteLedger):
    """A ledger whose writes fail while ``locked`` is set (another writer holds the lock)."""

    locked = False

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.batches: list[int] = []  # intents per commit asked for

    def journal_intents(self, intents: Sequence[Intent]) -> list[int]:
        self.batches.append(len(intents))
        if self.locked:
            raise sqlite3.OperationalError("database is locked")
        return super().journal_intents(intents)


async def until(pred: Callable[[], object], rounds: int = 2000) -> None:
    for _ in range(rounds):
        if pred():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never met")


def make(tmp_path: Path, ct_vals: dict[str, Decimal] | None = None) -> tuple[Engine, FakeClient]:
    client = FakeClient()
    engine = Engine(
        settings(debounce_s=0.0, cooldown_s=0.05, retry_max_s=0.2),
        {"sub1": AccountState("sub1", "sub", client)},
        {CRO: D("10")} if ct_vals is None else ct_vals,
        FlakyLedger(tmp_path / "l.sqlite"),
    )
    return engine, client


async def test_one_call_with_its_journal_row(tmp_path: Path) -> None:
    engine, client = make(tmp_path)
    engine.on_connected("sub1")
    engine.on_snapshot("sub1", [cro()], last_page=True, cur_page=1)
    await until(lambda: engine.ledger.journal(1) and engine.ledger.journal(1)[0].status == "ok")
    assert client.calls == [(CRO, "long", "reduce", D("10.03"))]
    (row,) = engine.ledger.journal()
    assert (row.action, row.amount, row.status) == ("reduce", "10.03", "ok")
    await engine.drain(1.0)


async def test_a_correction_due_now_is_journaled_in_the_frames_own_callback(
    tmp_path: Path,
) -> None:
    """Issue 18: with no debounce, the wake-up runs at the end of the snapshot's batch, not a
    loop iteration later: the intent is durable before ``on_snapshot`` returns, the send task
    is started."""
    engine, client = make(tmp_path)
    engine.on_connected("sub1")
    engine.on_snapshot("sub1", [cro()], last_page=True, cur_page=1)
    (row,) = engine.ledger.journal()  # no await since the snapshot
    assert (row.action, row.amount, row.status) == ("reduce", "10.03", "pending")
    assert engine.core.in_flight()
    await until(lambda: engine.ledger.journal(1)[0].status == "ok")
    assert client.calls == [(CRO, "long", "reduce", D("10.03"))]
    await engine.drain(1.0)


async def test_a_batch_that_starts_a_call_writes_its_lines_after_the_call_left(
    tmp_path: Path,
) -> None:
    """Issue 18: the lines of a batch that started a margin call are written after the call's
    first step (the request handed to the client), in the order the core gave them; a batch
    without a call writes its lines before it returns."""
    engine, client = make(tmp_path)
    order: list[str] = []
    inner = client.margin_balance

    async def margin_balance(*args: Any) -> dict[str, Any]:
        order.append("call")
        return await inner(*args)

    client.margin_balance = margin_balance  # type: ignore[method-assign]
    with capture_logs() as logs:
        engine.on_connected("sub1")
        assert [e["event"] for e in logs] == []  # nothing to log, nothing pending
        engine.on_snapshot("sub1", [cro()], last_page=True, cur_page=1)
        before = [e["event"] for e in logs]
        assert "margin.adjust.sent" not in before  # the batch started a call: not yet
        await asyncio.sleep(0)  # one loop iteration: the send's first step, then the lines
        order.extend(e["event"] for e in logs[len(before) :])
    assert order[0] == "call" and "margin.adjust.sent" in order
    events = [e["event"] for e in logs]
    assert events.index("book.snapshot") < events.index("margin.adjust.sent")
    await until(lambda: engine.ledger.journal(1)[0].status == "ok")
    engine.on_disconnected("sub1", "test")
    engine.on_connected("sub1")
    with capture_logs() as logs:  # in band now: a batch without a call writes at once
        engine.on_snapshot("sub1", [cro(margin=client.margin)], last_page=True, cur_page=1)
        assert [e["event"] for e in logs] == ["book.snapshot"]  # info: first since connect
    await engine.drain(1.0)


async def test_the_corrections_of_one_push_journal_in_one_commit(tmp_path: Path) -> None:
    """Issue 18: two positions out of band in one push are two intents in one commit, both
    durable before either call starts; when that commit fails, neither call is sent."""
    engine, client = make(tmp_path / "ok", ct_vals=CT_VALS)
    ledger = engine.ledger
    assert isinstance(ledger, FlakyLedger)
    engine.on_connected("sub1")
    engine.on_snapshot("sub1", [cro(), doge()], last_page=True, cur_page=1)
    assert ledger.batches == [2]
    rows = [(r.inst_id, r.status) for r in ledger.journal()]
    assert rows == [(DOGE, "pending"), (CRO, "pending")] and client.calls == []
    await until(lambda: len(client.calls) == 2)
    assert {c[0] for c in client.calls} == {CRO, DOGE}
    await engine.drain(1.0)

    engine, client = make(tmp_path / "locked", ct_vals=CT_VALS)
    ledger = engine.ledger
    assert isinstance(ledger, FlakyLedger)
    ledger.locked = True
    engine.on_connected("sub1")
    engine.on_snapshot("sub1", [cro(), doge()], last_page=True, cur_page=1)
    assert ledger.batches == [2]
    await asyncio.sleep(0.05)
    assert client.calls == [] and ledger.journal() == []
    await engine.drain(1.0)


async def test_a_commit_holds_at_most_intents_per_commit(tmp_path: Path) -> None:
    """The batch is bounded (the statement's size): one more intent than the bound is a second
    commit in the same callback; every intent is durable."""
    n = INTENTS_PER_COMMIT + 1
    insts = [f"X{i}-USDT-SWAP" for i in range(n)]
    engine, _ = make(tmp_path, ct_vals={inst: D("10") for inst in insts})
    ledger = engine.ledger
    assert isinstance(ledger, FlakyLedger)
    engine.on_connected("sub1")
    engine.on_snapshot("sub1", [cro(inst_id=inst) for inst in insts], last_page=True, cur_page=1)
    assert ledger.batches == [INTENTS_PER_COMMIT, 1]
    assert len(ledger.pending_intents()) == n
    await engine.drain(1.0)


async def test_drifts_of_one_account_in_one_batch_start_one_bills_read(tmp_path: Path) -> None:
    """Issue 18: three drifts in a push are one bills-read task (asked before the task is
    made) and one read; a read cancelled before its first step frees the account for the
    next request."""
    engine, client = make(tmp_path)
    engine.on_connected("sub1")
    engine.on_snapshot("sub1", [cro()], last_page=True, cur_page=1)
    await until(lambda: engine.ledger.journal(1)[0].status == "ok")
    await until(lambda: not engine._tasks)
    before = len(client.bill_reads)
    engine._run([ReadBills("sub1", "drift") for _ in range(3)])
    assert len(engine._tasks) == 1
    await until(lambda: not engine._tasks)
    assert len(client.bill_reads) == before + 1  # the drift read covers all three
    engine._run([ReadBills("sub1", "drift")])
    (task,) = engine._tasks
    task.cancel()  # before it ever ran
    await asyncio.sleep(0)
    engine._run([ReadBills("sub1", "interval")])
    assert len(engine._tasks) == 1  # not refused as "one runs": the account was freed
    await engine.drain(1.0)


async def test_a_task_exception_is_a_catalogued_event(tmp_path: Path) -> None:
    engine, client = make(tmp_path)
    client.fail_with = RuntimeError("boom")
    with capture_logs() as logs:
        engine.on_connected("sub1")
        engine.on_snapshot("sub1", [cro()], last_page=True)
        await until(lambda: any(e["event"] == "engine.task.failed" for e in logs))
        await until(lambda: not engine.core.in_flight())
    failed = next(e for e in logs if e["event"] == "engine.task.failed")
    assert failed["what"] == "SendMarginCall" and "boom" in failed["error"]
    snap = EngineStatus(engine).status_snapshot()
    assert not snap.healthy and snap.internal_errors == 1
    await engine.drain(1.0)


async def test_locked_journal_is_unhealthy_then_resumes_by_itself(tmp_path: Path) -> None:
    engine, client = make(tmp_path)
    ledger = engine.ledger
    assert isinstance(ledger, FlakyLedger)
    ledger.locked = True
    with capture_logs() as logs:
        engine.on_connected("sub1")
        engine.on_snapshot("sub1", [cro()], last_page=True)
        await until(lambda: sum(e["event"] == "journal.write.failed" for e in logs) >= 2)
        assert client.calls == []
        snap = EngineStatus(engine).status_snapshot()
        assert not snap.healthy and not snap.storage_ok
        assert any("journal" in p for p in snap.problems())
        ledger.locked = False
        await until(lambda: client.calls)
        await until(lambda: any(e["event"] == "journal.write.recovered" for e in logs))
    assert EngineStatus(engine).status_snapshot().storage_ok
    await engine.drain(1.0)


async def test_new_instrument_is_fetched_through_the_client(tmp_path: Path) -> None:
    engine, client = make(tmp_path, ct_vals={})
    listed = asyncio.Event()
    real = client.get_instruments

    async def slow(inst_type: str = "SWAP", inst_id: str | None = None) -> list[dict[str, Any]]:
        await listed.wait()
        return await real(inst_type, inst_id)

    client.get_instruments = slow  # type: ignore[method-assign]
    engine.on_connected("sub1")
    engine.on_snapshot("sub1", [cro()], last_page=True)

    def row() -> Any:
        return EngineStatus(engine).status_snapshot().accounts[0].positions[0]

    await until(lambda: row().status == "unmanaged")
    assert "contract value unknown" in row().reason
    listed.set()
    await until(lambda: client.calls)
    assert engine.ct_vals[CRO] == D("10")
    await engine.drain(1.0)


async def test_drain_journals_a_cancelled_call_unknown(tmp_path: Path) -> None:
    engine, client = make(tmp_path)
    gate = asyncio.Event()

    async def hang(*args: Any) -> dict[str, Any]:
        await gate.wait()
        return {}

    client.margin_balance = hang  # type: ignore[method-assign]
    engine.on_connected("sub1")
    engine.on_snapshot("sub1", [cro()], last_page=True)
    await until(lambda: engine.ledger.pending_intents())
    await engine.drain(0.01)
    (row,) = engine.ledger.journal()
    assert row.status == "unknown"
    assert engine.core.control(KEY) is not None


async def test_deleted_ledger_file_sends_nothing_and_is_unhealthy(tmp_path: Path) -> None:
    engine, client = make(tmp_path)
    (tmp_path / "l.sqlite").unlink()  # deleted under the running process
    with capture_logs() as logs:
        engine.on_connected("sub1")
        engine.on_snapshot("sub1", [cro()], last_page=True)
        await until(lambda: any(e["event"] == "journal.write.failed" for e in logs))
    failed = next(e for e in logs if e["event"] == "journal.write.failed")
    assert "deleted" in failed["error"]
    assert client.calls == [] and not engine.core.in_flight()
    assert not EngineStatus(engine).status_snapshot().healthy
    await engine.drain(1.0)


async def test_bills_read_credits_our_call_and_reports_a_foreign_one_once(tmp_path: Path) -> None:
    engine, client = make(tmp_path)
    engine.on_connected("sub1")
    engine.on_snapshot("sub1", [cro()], last_page=True)
    await until(lambda: engine.ledger.journal(1) and engine.ledger.journal(1)[0].status == "ok")
    foreign = client.book_bill("add", D("9.7"))
    with capture_logs() as logs:
        await engine.read_bills("sub1", "interval")
        await engine.read_bills("sub1", "interval")  # the same bills again: reported once
    reported = [e for e in logs if e["event"] == "margin.foreign_transfer"]
    assert [(e["billId"], e["amount"], e["action"]) for e in reported] == [(foreign, "9.7", "add")]
    (row,) = engine.ledger.journal()
    assert row.bill_id == "700"  # our own call's bill, credited in its journal row
    client.bills_fail = OkxError("50011", "Too Many Requests", 429)
    with capture_logs() as logs:
        await engine.read_bills("sub1", "drift")
    assert [e["event"] for e in logs if e["event"].startswith("bills.")] == ["bills.read.failed"]
    await engine.drain(1.0)


async def test_the_pre_reduce_check_goes_through_the_client(tmp_path: Path) -> None:
    client = FakeClient()
    engine = Engine(
        settings(debounce_s=0.0, cooldown_s=0.05, retry_max_s=0.2, pre_reduce_check=True),
        {"sub1": AccountState("sub1", "sub", client)},
        {CRO: D("10")},
        SqliteLedger(tmp_path / "l.sqlite"),
    )
    engine.on_connected("sub1")
    engine.on_snapshot("sub1", [cro()], last_page=True)
    await until(lambda: client.calls)
    assert client.calls == [(CRO, "long", "reduce", D("9.97"))]
    await engine.drain(1.0)


async def test_an_invalid_signature_on_the_check_stops_the_account(tmp_path: Path) -> None:
    """50113 on the ``estAvailTrans`` read: the key is bad, so the account stops (as on a call),
    not a retry loop of checks."""
    client = FakeClient()
    client.check_fails = OkxError("50113", "Invalid signature.", 401)
    engine = Engine(
        settings(debounce_s=0.0, cooldown_s=0.05, retry_max_s=0.2, pre_reduce_check=True),
        {"sub1": AccountState("sub1", "sub", client)},
        {CRO: D("10")},
        SqliteLedger(tmp_path / "l.sqlite"),
    )
    with capture_logs() as logs:
        engine.on_connected("sub1")
        engine.on_snapshot("sub1", [cro()], last_page=True)
        await until(lambda: engine.accounts["sub1"].stopped_reason)
        await asyncio.sleep(0.3)  # past the back-off: no second check, no call
    assert engine.accounts["sub1"].stopped_reason == "auth error 50113"
    assert client.calls == []
    assert [e["code"] for e in logs if e["event"] == "account.stopped"] == ["50113"]
    assert len([e for e in logs if e["event"] == "margin.reduce.check_failed"]) == 1
    await engine.drain(1.0)
