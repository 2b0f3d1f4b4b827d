"""Maintenance ledger and call journal on a real SQLite file and a real PostgreSQL database
(the contract tests run on both backends), two instances as two processes."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from reactor.store import (
    Intent,
    Ledger,
    LedgerCorrupt,
    LedgerReplaced,
    LedgerUnavailable,
    SqliteLedger,
)
from tests.domain.factories import T0, MsClock
from tests.store.backends import OpenLedger

FILENAME = "ledger.sqlite3"


@pytest.fixture
def clock() -> MsClock:
    return MsClock(T0 + 1_000)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / FILENAME


@pytest.fixture
def ledger(open_ledger: OpenLedger, clock: MsClock) -> Ledger:
    """The backend's ledger (both backends: the contract tests)."""
    return open_ledger(clock=clock)


@pytest.fixture
def sqlite_ledger(path: Path, clock: MsClock) -> Iterator[SqliteLedger]:
    """The SQLite ledger alone: its file, its pragmas and its file-system faults."""
    with SqliteLedger(path, clock=clock) as led:
        yield led


def test_schema_and_wal(sqlite_ledger: SqliteLedger, path: Path) -> None:
    assert path.exists()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_record_is_idempotent_per_account_key(ledger: Ledger) -> None:
    first = ledger.record("sub1", "CRO-USDT-SWAP", "long", "ord-1", source="cli", c_time=T0)
    assert first is not None
    assert (first.account, first.key, first.c_time, first.recorded_ms) == (
        "sub1",
        "ord-1",
        T0,
        T0 + 1_000,
    )
    assert ledger.record("sub1", "CRO-USDT-SWAP", "long", "ord-1", source="cli", c_time=T0) is None
    # Same key on another instrument of the same account: still the same maintenance.
    assert ledger.record("sub1", "BTC-USDT-SWAP", "long", "ord-1", source="cli") is None
    # Another account may use the same clOrdId: OKX ids are unique per account only.
    assert ledger.record("sub2", "CRO-USDT-SWAP", "long", "ord-1", source="cli") is not None
    assert ledger.count("sub1", "CRO-USDT-SWAP", "long", T0) == 1
    assert [r.key for r in ledger.list_maintenance()] == ["ord-1", "ord-1"]


def test_empty_fields_are_rejected(ledger: Ledger) -> None:
    with pytest.raises(ValueError):
        ledger.record("sub1", "CRO-USDT-SWAP", "long", "", source="cli")
    with pytest.raises(ValueError):
        ledger.record("", "CRO-USDT-SWAP", "long", "k", source="cli")


def test_count_is_derived_and_restarts_on_reopen(ledger: Ledger, clock: MsClock) -> None:
    key = ("sub1", "CRO-USDT-SWAP", "long")
    assert ledger.count(*key, T0) == 0
    ledger.record(*key, "k1", source="cli", c_time=T0)
    clock.ms = T0 + 5_000
    ledger.record(*key, "k2", source="cli")  # no cTime: counts for the position open now
    assert ledger.count(*key, T0) == 2
    # Other sides, instruments and accounts are separate positions.
    assert ledger.count("sub1", "CRO-USDT-SWAP", "short", T0) == 0
    assert ledger.count("sub1", "ETH-USDT-SWAP", "long", T0) == 0
    assert ledger.count("sub2", "CRO-USDT-SWAP", "long", T0) == 0
    # The position closes and reopens at T0 + 10 s: a new position, count 0.
    reopened = T0 + 10_000
    assert ledger.count(*key, reopened) == 0
    clock.ms = reopened + 1
    ledger.record(*key, "k3", source="cli")
    ledger.record(*key, "k4", source="cli", c_time=reopened)
    assert ledger.count(*key, reopened) == 2
    # (count() is meant for the position open now: untied records made after a reopen would
    # also match an older cTime, which no longer matters once that position is closed.)
    assert ledger.count(*key, reopened + 100) == 0  # tied records never count for another cTime


def test_records_after_for_polling(ledger: Ledger) -> None:
    a = ledger.record("sub1", "CRO-USDT-SWAP", "long", "k1", source="cli")
    b = ledger.record("sub1", "CRO-USDT-SWAP", "long", "k2", source="cli")
    assert a is not None and b is not None
    assert [r.key for r in ledger.records_after(0)] == ["k1", "k2"]
    assert [r.key for r in ledger.records_after(a.id)] == ["k2"]
    assert ledger.records_after(b.id) == []


def test_two_instances_see_each_others_writes(open_ledger: OpenLedger, clock: MsClock) -> None:
    reactor = open_ledger(clock=clock)
    cli = open_ledger(clock=clock)  # stands for the CLI process
    try:
        before = reactor.data_version()
        assert reactor.data_version() == before  # nothing changed, nothing reported
        rec = cli.record("sub1", "CRO-USDT-SWAP", "long", "k1", source="cli", c_time=T0)
        assert rec is not None
        after = reactor.data_version()
        assert after != before
        assert [r.id for r in reactor.records_after(0)] == [rec.id]
        assert reactor.count("sub1", "CRO-USDT-SWAP", "long", T0) == 1
        # The duplicate from the other instance is a no-op there too.
        assert reactor.record("sub1", "CRO-USDT-SWAP", "long", "k1", source="cli") is None
        assert reactor.data_version() == after
    finally:
        reactor.close()
        cli.close()


def test_journal_intent_then_result(ledger: Ledger, clock: MsClock) -> None:
    body = '{"instId":"CRO-USDT-SWAP","posSide":"long","type":"reduce","amt":"10.03"}'
    first = ledger.journal_intent("sub1", "CRO-USDT-SWAP", "long", "reduce", "10.03", body)
    [pending] = ledger.pending_intents()
    assert pending.id == first
    assert (pending.status, pending.sent_ms, pending.done_ms) == ("pending", T0 + 1_000, None)
    assert pending.request == body
    clock.ms += 120
    ledger.journal_result(first, "ok", "0", "")
    second = ledger.journal_intent("sub1", "CRO-USDT-SWAP", "long", "reduce", "5", body)
    ledger.journal_result(second, "error", "59301", "Margin adjustment failed")
    third = ledger.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "1", body)
    ledger.journal_result(third, "unknown", msg="timeout")
    assert ledger.pending_intents() == []
    entries = ledger.journal()
    assert [e.id for e in entries] == [third, second, first]  # newest first
    assert [e.status for e in entries] == ["unknown", "error", "ok"]
    assert entries[1].code == "59301"
    assert entries[2].done_ms == T0 + 1_120
    assert [e.id for e in ledger.journal(limit=1)] == [third]


def test_intents_of_one_batch_commit_together_in_order(ledger: Ledger, clock: MsClock) -> None:
    """Issue 18: a push's corrections journal in one commit; the ids follow the intents'
    order, each row is what its intent said (redacted), and an empty batch writes nothing."""
    assert ledger.journal_intents([]) == []
    secret = '{"instId":"A-USDT-SWAP","apiKey":"k-123456789"}'
    batch = [
        Intent("sub1", "A-USDT-SWAP", "long", "add", "1.5", secret, okx_ms=7),
        Intent("sub2", "B-USDT-SWAP", "short", "reduce", "2", "{}"),
        Intent("sub1", "C-USDT-SWAP", "net", "add", "3", "{}", okx_ms=9),
    ]
    ids = ledger.journal_intents(batch)
    assert len(set(ids)) == 3 and ids == sorted(ids)
    rows = {e.id: e for e in ledger.pending_intents()}
    for new_id, intent in zip(ids, batch, strict=True):
        row = rows[new_id]
        assert (row.account, row.inst_id, row.pos_side, row.action, row.amount) == (
            intent.account,
            intent.inst_id,
            intent.pos_side,
            intent.action,
            intent.amount,
        )
        assert (row.status, row.sent_ms, row.sent_okx_ms) == ("pending", T0 + 1_000, intent.okx_ms)
    assert "k-123456789" not in rows[ids[0]].request
    after = ledger.journal_intent("sub1", "A-USDT-SWAP", "long", "add", "1", "{}")
    assert after > ids[-1]


def test_a_batch_with_one_bad_intent_writes_none(ledger: Ledger) -> None:
    """All or none: a row the table refuses (here an amount that is NULL) fails the whole
    batch, so the engine never holds an id for an intent that was not written."""
    good = Intent("sub1", "A-USDT-SWAP", "long", "add", "1", "{}")
    bad = Intent("sub1", "B-USDT-SWAP", "long", "add", None, "{}")  # type: ignore[arg-type]
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        ledger.journal_intents([good, bad, good])
    assert ledger.journal() == []
    assert ledger.journal_intents([good]) != []


def test_journal_since_one_account(ledger: Ledger, clock: MsClock) -> None:
    """A bills read matches one account's rows: ``journal_since(since, account)`` reads only
    those (on both backends, through the (account, sent_ms) index)."""
    ids = {}
    for account in ("sub1", "sub2", "sub1"):
        clock.ms += 10
        ids.setdefault(account, []).append(
            ledger.journal_intent(account, "X-USDT-SWAP", "long", "add", "1", "{}")
        )
    since = T0 + 1_015
    assert [e.id for e in ledger.journal_since(0, "sub1")] == ids["sub1"]
    assert [e.id for e in ledger.journal_since(since, "sub1")] == ids["sub1"][1:]
    assert [e.id for e in ledger.journal_since(0, "sub2")] == ids["sub2"]
    assert ledger.journal_since(0, "nobody") == []
    assert len(ledger.journal_since(since)) == 2  # every account's: sub2's and sub1's second


def test_journal_result_validation(ledger: Ledger) -> None:
    entry = ledger.journal_intent("sub1", "X-USDT-SWAP", "long", "add", "1", "{}")
    with pytest.raises(ValueError):
        ledger.journal_result(entry, "pending")
    with pytest.raises(KeyError):
        ledger.journal_result(entry + 100, "ok")


def test_pending_survives_a_crash(open_ledger: OpenLedger, clock: MsClock) -> None:
    before = open_ledger(clock=clock)
    done = before.journal_intent("sub1", "CRO-USDT-SWAP", "long", "reduce", "10.03", "{}")
    before.journal_result(done, "ok", "0")
    sent = before.journal_intent("sub1", "CRO-USDT-SWAP", "long", "reduce", "2", "{}")
    # "Crash": the process dies without closing; a new process opens the file.
    after = open_ledger(clock=clock)
    try:
        [pending] = after.pending_intents()
        assert (pending.id, pending.amount, pending.status) == (sent, "2", "pending")
        after.journal_result(sent, "unknown", msg="crash before the answer")
        assert after.pending_intents() == []
    finally:
        after.close()
        before.close()


def test_racing_writers_record_a_key_once(open_ledger: OpenLedger, clock: MsClock) -> None:
    """The old system's race: two writers each counting the same maintenance."""
    ledgers = [open_ledger(clock=clock) for _ in range(4)]
    results: list[object] = []
    barrier = threading.Barrier(len(ledgers))

    def write(led: Ledger) -> None:
        barrier.wait()
        for i in range(20):
            results.append(led.record("sub1", "CRO-USDT-SWAP", "long", f"k{i}", source="cli"))

    threads = [threading.Thread(target=write, args=(led,)) for led in ledgers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sum(r is not None for r in results) == 20
        assert ledgers[0].count("sub1", "CRO-USDT-SWAP", "long", T0) == 20
    finally:
        for led in ledgers:
            led.close()


# --- storage faults: typed errors, never a hang or a silent write into a lost file -----------


def test_deleted_ledger_file_is_detected(sqlite_ledger: SqliteLedger, path: Path) -> None:
    sqlite_ledger.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "1", "{}")
    path.unlink()
    with pytest.raises(LedgerReplaced) as err:
        sqlite_ledger.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "1", "{}")
    assert err.value.reason == "replaced" and "deleted" in str(err.value)
    with pytest.raises(LedgerReplaced):
        sqlite_ledger.check()
    assert sqlite_ledger.problem is not None and sqlite_ledger.problem.reason == "replaced"


def test_replaced_ledger_file_is_detected(
    sqlite_ledger: Ledger, path: Path, clock: MsClock
) -> None:
    other = path.with_name("other.sqlite3")
    SqliteLedger(other, clock=clock).close()
    other.replace(path)  # e.g. a restore from backup over the running file
    with pytest.raises(LedgerReplaced, match="replaced"):
        sqlite_ledger.record("sub1", "CRO-USDT-SWAP", "long", "k1", source="cli")
    assert isinstance(LedgerReplaced("x", "replaced"), LedgerUnavailable)


def test_locked_ledger_fails_fast_with_a_typed_error(path: Path, clock: MsClock) -> None:
    led = SqliteLedger(path, clock=clock, busy_timeout_ms=50)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        with pytest.raises(LedgerUnavailable) as err:
            led.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "1", "{}")
        assert err.value.reason == "locked"
        assert led.problem is err.value  # for /healthz until a write succeeds
        assert led.pending_intents() == []  # nothing was written
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # Storage recovered: the next write works without reopening.
    led.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "1", "{}")
    assert len(led.pending_intents()) == 1 and led.problem is None
    led.close()


def test_full_disk_is_a_typed_error(sqlite_ledger: SqliteLedger, path: Path) -> None:
    pages = sqlite_ledger._query("PRAGMA page_count")[0][0]
    sqlite_ledger._db.execute(f"PRAGMA max_page_count = {pages}")  # cannot grow: SQLITE_FULL
    with pytest.raises(LedgerUnavailable) as err:
        for i in range(200):
            sqlite_ledger.journal_intent(
                "sub1", "CRO-USDT-SWAP", "long", "add", "1", "x" * 2000 + str(i)
            )
    assert err.value.reason == "disk_full"


def test_corrupt_ledger_is_refused_at_open(path: Path, clock: MsClock) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerCorrupt, match="not a usable SQLite database"):
        SqliteLedger(path, clock=clock)


def test_closed_ledger_refuses_writes(open_ledger: OpenLedger, clock: MsClock) -> None:
    led = open_ledger(clock=clock)
    led.close()
    with pytest.raises(LedgerUnavailable, match="closed"):
        led.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "1", "{}")


def test_journal_rows_never_hold_a_credential(ledger: Ledger) -> None:
    from reactor.okx.credentials import Credentials

    Credentials("AKjournal-0001", "SKjournal-0002", "PPjournal-0003")  # registers the values
    entry = ledger.journal_intent(
        "sub1", "CRO-USDT-SWAP", "long", "add", "1", '{"instId":"CRO","sign":"c2ln+/="}'
    )
    ledger.journal_result(entry, "error", "50113", "bad: AKjournal-0001 PPjournal-0003")
    (row,) = ledger.journal(1)
    text = f"{row.request} {row.msg}"
    for secret in ("AKjournal-0001", "PPjournal-0003", "c2ln+/="):
        assert secret not in text


def test_a_bill_is_credited_to_one_journal_row_only(open_ledger: OpenLedger) -> None:
    with open_ledger() as ledger:
        a = ledger.journal_intent("sub1", "CRO-USDT-SWAP", "long", "reduce", "9.97", "{}")
        b = ledger.journal_intent("sub1", "CRO-USDT-SWAP", "long", "reduce", "9.97", "{}")
        ledger.journal_result(a, "unknown", None, "timeout")
        ledger.journal_bill(a, "700", status="ok")
        ledger.journal_bill(a, "700")  # the same credit again: no change
        with pytest.raises(ValueError, match="already credited"):
            ledger.journal_bill(b, "700")
        with pytest.raises(KeyError):
            ledger.journal_bill(99, "701")
        entry = ledger.journal_entry(a)
        assert entry is not None and (entry.status, entry.bill_id) == ("ok", "700")
        other = ledger.journal_entry(b)
        assert other is not None and other.bill_id is None


def test_a_ledger_from_before_bill_ids_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / FILENAME
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE journal (id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL,"
        " inst_id TEXT NOT NULL, pos_side TEXT NOT NULL, action TEXT NOT NULL,"
        " amount TEXT NOT NULL, request TEXT NOT NULL, status TEXT NOT NULL, code TEXT,"
        " msg TEXT, sent_ms INTEGER NOT NULL, done_ms INTEGER)"
    )
    db.execute(
        "INSERT INTO journal (account, inst_id, pos_side, action, amount, request, status,"
        " sent_ms) VALUES ('sub1', 'CRO-USDT-SWAP', 'long', 'add', '1', '{}', 'ok', 1)"
    )
    db.commit()
    db.close()
    with SqliteLedger(path) as ledger:
        (old,) = ledger.journal()
        assert old.bill_id is None and old.amount == "1"
        ledger.journal_bill(old.id, "5")
        assert ledger.journal()[0].bill_id == "5"
