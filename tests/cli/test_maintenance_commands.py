"""The maintenance CLI's rules (record / list / void) on a real ledger file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from reactor.cli.maintenance import CliInputError, list_lines, record, void
from reactor.store import Ledger, SqliteLedger

T0 = 1_700_000_000_000
POS = ("sub1", "CRO-USDT-SWAP", "long")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with SqliteLedger(tmp_path / "reactor.sqlite") as led:
        yield led


def test_record_by_hand_and_backfill(ledger: Ledger) -> None:
    with capture_logs() as logs:
        assert record(ledger, *POS, "manual-1", c_time=T0) is not None
        assert record(ledger, *POS, " manual-1 ", c_time=T0) is None
        rec = record(ledger, *POS, "desk-7", c_time=T0, ord_id="777", source="backfill")
    assert rec is not None and (rec.source, rec.ord_id) == ("backfill", "777")
    assert [e["event"] for e in logs] == [
        "maintenance.recorded",
        "maintenance.duplicate",
        "maintenance.recorded",
    ]
    assert logs[0]["source"] == "cli" and logs[2]["source"] == "backfill"
    with pytest.raises(CliInputError, match="--source"):
        record(ledger, *POS, "k", source="fill")
    with pytest.raises(CliInputError, match="--key"):
        record(ledger, *POS, "  ")
    with pytest.raises(CliInputError, match="--ord-id"):
        record(ledger, *POS, "k", ord_id=" ")


def test_list_shows_per_position_counts_and_sources(ledger: Ledger) -> None:
    ledger.record(*POS, "o1", source="fill", c_time=T0, ord_id="o1")
    ledger.record(*POS, "o2", source="api", c_time=T0, ord_id="o2")
    ledger.record(*POS, "o3", source="fill", c_time=T0, ord_id="o3")
    ledger.void("sub1", "o3", actor="t", reason="")
    [line] = list_lines(ledger)
    assert json.loads(line) == {
        "account": "sub1",
        "instId": "CRO-USDT-SWAP",
        "posSide": "long",
        "cTime": T0,
        "count": 2,
        "sources": {"api": 1, "fill": 1},
    }
    lines = [json.loads(x) for x in list_lines(ledger, records=True)]
    assert [x.get("key") for x in lines[1:]] == ["o1", "o2", "o3"]
    assert lines[3]["voided_ms"] is not None and lines[1]["source"] == "fill"


def test_void_with_audit_and_clear_errors(ledger: Ledger) -> None:
    ledger.record(*POS, "o1", source="fill", c_time=T0, ord_id="o1")
    ledger.record("sub2", *POS[1:], "o1", source="fill", c_time=T0, ord_id="o1")
    with pytest.raises(CliInputError, match="sub1, sub2: add --account"):
        void(ledger, "o1", account=None, reason="x")
    with capture_logs() as logs:
        voided = void(ledger, "o1", account="sub1", reason="test order", actor=lambda: "alice")
    assert voided.voided_ms is not None and ledger.count(*POS, T0) == 0
    assert ledger.count("sub2", *POS[1:], T0) == 1
    [event] = logs
    assert event["event"] == "maintenance.voided" and event["actor"] == "cli:alice"
    [audit] = ledger.audit_after(0)
    assert (audit.actor, audit.reason) == ("cli:alice", "test order")
    with pytest.raises(CliInputError, match="already void"):
        void(ledger, "o1", account="sub1", reason="again")
    with pytest.raises(CliInputError, match="no maintenance record"):
        void(ledger, "nope", account=None, reason="")
    with pytest.raises(CliInputError, match="must not be empty"):
        void(ledger, " ", account=None, reason="")
