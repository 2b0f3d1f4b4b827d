"""Issue 20 item 9: amounts at USDT's precision in every output (logs, status, CLI), and
repeated identical warning/error lines summarised (``log.repeated``) instead of written
several times a second."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import pytest
import structlog

from reactor import log as logging_setup
from reactor.cli.plan import PlanRow
from reactor.log import RepeatSummary, amount_text, amounts_in_text

LONG_FLOOR = Decimal("12.77478000000000000000000002")  # the issue's own line


@pytest.fixture
def lines() -> Any:
    out = io.StringIO()

    def read() -> list[dict[str, Any]]:
        return [json.loads(x) for x in out.getvalue().splitlines() if x.strip()]

    logging_setup.configure("debug", "json", out)
    yield out, read
    logging_setup.configure("info", "json")


def test_amount_text_keeps_short_values_and_quantizes_long_ones() -> None:
    assert amount_text(LONG_FLOOR) == "12.77478"
    assert amount_text("0.41040000000000004") == "0.4104"
    assert amount_text("4.859999999999999") == "4.86"
    assert amount_text("20.29") == "20.29"  # already within precision: unchanged
    assert amount_text("2") == "2"
    assert amount_text("-0.123456789") == "-0.12345679"
    assert amount_text("n/a") == "n/a"
    assert amounts_in_text("floor_above_target: floor 12.77478000000000000000000002 > 10") == (
        "floor_above_target: floor 12.77478 > 10"
    )
    assert amounts_in_text("v1.2.3 at 10:00") == "v1.2.3 at 10:00"


def test_log_lines_carry_quantized_amounts(lines: Any) -> None:
    _, read = lines
    logging_setup.get_logger("t").warning(
        "margin.target.blocked",
        account="A1",
        margin="20.29",
        target="10",
        floor=str(LONG_FLOOR),
        upl="-4.859999999999999",
        reason=f"floor_above_target: step cap {LONG_FLOOR}",
        instId="BTC-USDT-SWAP",
    )
    (line,) = read()
    assert line["floor"] == "12.77478"
    assert line["upl"] == "-4.86"
    assert line["margin"] == "20.29"
    assert line["reason"] == "floor_above_target: step cap 12.77478"
    assert line["instId"] == "BTC-USDT-SWAP"


def test_plan_table_quantizes_amounts() -> None:
    row = PlanRow(
        "A1", "BTC-USDT-SWAP", "long", Decimal("1"), Decimal("20.29"), 0,
        Decimal("10"), (Decimal("9"), Decimal("11")), LONG_FLOOR, "blocked", None,
        f"floor_above_target: floor {LONG_FLOOR}",
    )  # fmt: skip
    cells = row.cells()
    assert "12.77478" in cells
    assert not any("0000000000" in c for c in cells)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_identical_errors_are_summarised_once_per_interval() -> None:
    """A ledger outage behind a status page polled every second: 300 identical error lines in
    five minutes become the first line and one count per minute."""
    out = io.StringIO()
    clock = Clock()
    summary = RepeatSummary(60.0, clock)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            summary,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(out),
    )
    try:
        log = structlog.get_logger("t")
        for i in range(300):
            clock.t = 1000.0 + i
            log.error("journal.write.failed", what="intent", error="OperationalError: locked")
            log.info("status.request", n=i)  # info lines are never summarised
        clock.t += 61
        summary.flush()
    finally:
        logging_setup.configure("info", "json")
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    errors = [r for r in rows if r["event"] == "journal.write.failed"]
    repeats = [r for r in rows if r["event"] == "log.repeated"]
    assert len(errors) == 1
    assert [r["level"] for r in repeats] == ["error"] * len(repeats)
    assert 4 <= len(repeats) <= 6  # one per minute over five minutes, and the tail
    assert sum(r["count"] for r in repeats) == 299
    assert {r["repeated_event"] for r in repeats} == {"journal.write.failed"}
    assert all(r["what"] == "intent" for r in repeats)  # the line's own fields
    assert sum(r["event"] == "status.request" for r in rows) == 300
    # A different line is its own: logged at once.
    assert len(rows) == 300 + 1 + len(repeats)


def test_repeat_interval_is_a_config_key_and_reaches_the_process(tmp_path: Any) -> None:
    from reactor.config import LogSection

    assert LogSection().repeat_interval_s == 60.0
    out = io.StringIO()
    logging_setup.configure("info", "json", out, repeat_interval_s=60.0)
    try:
        log = logging_setup.get_logger("t")
        for _ in range(5):
            log.warning("ws.pong.late", account="A1")
    finally:
        logging_setup.configure("info", "json")
    events = [json.loads(x)["event"] for x in out.getvalue().splitlines()]
    assert events == ["ws.pong.late"]
