"""Ledger additions for counts from fills: sources, ordId keys, void with audit, migration."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from reactor.store import Ledger, PositionCount, SqliteLedger
from tests.domain.factories import T0, MsClock

POS = ("sub1", "CRO-USDT-SWAP", "long")

# The maintenance table as the first release created it (before source / ord_id / voided_ms).
OLD_SCHEMA = """
CREATE TABLE maintenance (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account     TEXT    NOT NULL,
    inst_id     TEXT    NOT NULL,
    pos_side    TEXT    NOT NULL,
    c_time      INTEGER,
    key         TEXT    NOT NULL,
    recorded_ms INTEGER NOT NULL,
    UNIQUE (account, key)
);
"""


@pytest.fixture
def clock() -> MsClock:
    return MsClock(T0 + 1_000)


@pytest.fixture
def ledger(tmp_path: Path, clock: MsClock) -> Iterator[Ledger]:
    with SqliteLedger(tmp_path / "reactor.sqlite", clock=clock) as led:
        yield led


def test_record_from_a_fill_is_idempotent_on_ord_id(ledger: Ledger) -> None:
    rec = ledger.record(*POS, "ord-7", source="fill", c_time=T0, ord_id="ord-7")
    assert rec is not None
    assert (rec.source, rec.ord_id, rec.voided_ms) == ("fill", "ord-7", None)
    # The same fill again, or recovered from history under another key: one maintenance.
    assert ledger.record(*POS, "ord-7", source="fill", c_time=T0, ord_id="ord-7") is None
    assert ledger.record(*POS, "hist-ord-7", source="backfill", c_time=T0, ord_id="ord-7") is None
    # A strategy's API call naming that order, with its own key: still the same maintenance.
    assert ledger.record(*POS, "api-key-1", source="api", ord_id="ord-7") is None
    assert ledger.count(*POS, T0) == 1
    # Another account may reuse an id.
    assert ledger.record("sub2", *POS[1:], "ord-7", source="fill", ord_id="ord-7") is not None
    assert ledger.recorded_ord_ids("sub1") == {"ord-7"}


def test_record_validates(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="source"):
        ledger.record(*POS, "k", source="guess")
    with pytest.raises(ValueError, match="key"):
        ledger.record(*POS, "", source="cli")
    with pytest.raises(ValueError, match="ord_id"):
        ledger.record(*POS, "k", source="api", ord_id="")


def test_sources_and_position_counts(ledger: Ledger, clock: MsClock) -> None:
    ledger.record(*POS, "o1", source="fill", c_time=T0, ord_id="o1")
    ledger.record(*POS, "o2", source="backfill", c_time=T0, ord_id="o2")
    ledger.record(*POS, "manual-1", source="cli", c_time=T0)  # by hand (the CLI)
    clock.ms += 10
    ledger.record(*POS, "api-1", source="api")  # untied: the position open now
    ledger.record(*POS, "old", source="cli", c_time=T0 - 50_000)  # an earlier position
    assert ledger.count(*POS, T0) == 4
    assert ledger.sources(*POS, T0) == {"fill": 1, "backfill": 1, "cli": 1, "api": 1}
    assert [r.key for r in ledger.records_for(*POS, T0)] == ["o1", "o2", "manual-1", "api-1"]
    assert ledger.position_counts() == [
        PositionCount(*POS, None, 1, {"api": 1}),
        PositionCount(*POS, T0 - 50_000, 1, {"cli": 1}),
        PositionCount(*POS, T0, 3, {"backfill": 1, "cli": 1, "fill": 1}),
    ]


def test_void_stops_counting_with_an_audit_entry(ledger: Ledger, clock: MsClock) -> None:
    ledger.record(*POS, "o1", source="fill", c_time=T0, ord_id="o1")
    ledger.record(*POS, "o2", source="fill", c_time=T0, ord_id="o2")
    assert ledger.count(*POS, T0) == 2
    clock.ms += 500
    voided = ledger.void("sub1", "o2", actor="alice", reason="test order, not a maintenance")
    assert voided.voided_ms == clock.ms and voided.key == "o2"
    assert ledger.count(*POS, T0) == 1
    assert ledger.sources(*POS, T0) == {"fill": 1}
    [entry] = ledger.audit_after(0)
    assert (entry.record_id, entry.account, entry.key, entry.action, entry.actor) == (
        voided.id,
        "sub1",
        "o2",
        "void",
        "alice",
    )
    assert entry.reason == "test order, not a maintenance" and entry.at_ms == clock.ms
    assert ledger.audit_after(entry.id) == []
    # A voided fill is never brought back by the same fill or by recovery.
    assert ledger.record(*POS, "o2", source="backfill", ord_id="o2") is None
    assert ledger.count(*POS, T0) == 1
    assert "o2" in ledger.recorded_ord_ids("sub1")
    # Voiding twice, or an unknown key, is refused and writes no audit entry.
    with pytest.raises(ValueError, match="already void"):
        ledger.void("sub1", "o2", actor="alice", reason="again")
    with pytest.raises(KeyError):
        ledger.void("sub1", "nope", actor="alice", reason="")
    with pytest.raises(KeyError):
        ledger.void("sub2", "o1", actor="alice", reason="wrong account")
    assert len(ledger.audit_after(0)) == 1
    # The transaction was rolled back: the ledger still takes writes.
    assert ledger.record(*POS, "o3", source="fill", c_time=T0, ord_id="o3") is not None


def test_void_and_find_by_ord_id(ledger: Ledger) -> None:
    ledger.record(*POS, "api-key-9", source="api", c_time=T0, ord_id="ord-9")
    assert [r.key for r in ledger.find("ord-9")] == ["api-key-9"]
    assert [r.key for r in ledger.find("api-key-9", account="sub1")] == ["api-key-9"]
    assert ledger.find("api-key-9", account="sub2") == []
    assert ledger.void("sub1", "ord-9", actor="cli", reason="").key == "api-key-9"
    assert ledger.count(*POS, T0) == 0


def test_old_ledger_migrates_in_place(tmp_path: Path, clock: MsClock) -> None:
    path = tmp_path / "reactor.sqlite"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute(
        "INSERT INTO maintenance (account, inst_id, pos_side, c_time, key, recorded_ms)"
        " VALUES ('sub1', 'CRO-USDT-SWAP', 'long', ?, 'cli-1', ?)",
        (T0, T0),
    )
    db.commit()
    db.close()
    with SqliteLedger(path, clock=clock) as led:
        [old] = led.list_maintenance()
        assert (old.key, old.source, old.ord_id, old.voided_ms) == ("cli-1", "cli", None, None)
        assert led.count(*POS, T0) == 1
        assert led.record(*POS, "o1", source="fill", c_time=T0, ord_id="o1") is not None
        assert led.sources(*POS, T0) == {"cli": 1, "fill": 1}
    # Opening again (a second process, a restart) migrates nothing twice.
    with SqliteLedger(path, clock=clock) as again, SqliteLedger(path, clock=clock) as third:
        assert again.count(*POS, T0) == 2 == third.count(*POS, T0)


def test_fill_api_and_backfill_racing_on_one_order_count_once(tmp_path: Path) -> None:
    """The reactor (fill), a strategy (API) and a recovery (backfill) in three connections."""
    import threading

    path = tmp_path / "reactor.sqlite"
    ledgers = [SqliteLedger(path) for _ in range(3)]
    sources = ["fill", "api", "backfill"]
    results: list[object] = []
    barrier = threading.Barrier(3)

    def write(led: Ledger, source: str) -> None:
        barrier.wait()
        for i in range(30):
            key = f"ord-{i}" if source != "api" else f"strategy-key-{i}"
            results.append(led.record(*POS, key, source=source, c_time=T0, ord_id=f"ord-{i}"))

    threads = [threading.Thread(target=write, args=ab) for ab in zip(ledgers, sources, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sum(r is not None for r in results) == 30
        assert ledgers[0].count(*POS, T0) == 30
        assert len(ledgers[0].recorded_ord_ids("sub1")) == 30
    finally:
        for led in ledgers:
            led.close()
