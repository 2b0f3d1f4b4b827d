"""``reactor journal``, ``pauses`` and ``maintenance list`` for people and scripts: tables with
ISO 8601 times by default, ``--json`` lines, ``--account`` and ``--since`` (ISO or ``2h``),
and a ``--help`` that says what each is for (issue 20 item 6)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reactor.cli.main import main
from reactor.cli.tables import parse_since
from reactor.config import ConfigError
from reactor.store import SqliteLedger
from tests.engine.harness import write_config

HOUR_MS = 3_600_000
T_OLD = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@pytest.fixture(autouse=True)
def _logging_back_to_stdout() -> Iterator[None]:
    yield
    from reactor import log as logging_setup

    logging_setup.configure("info", "json")


@pytest.fixture
def cfg(tmp_path: Path) -> list[str]:
    """Two accounts; in the ledger an old and a recent call, pause and record for each."""
    path = write_config(tmp_path, "http://127.0.0.1:9", [{"name": "A"}, {"name": "B"}])
    now = int(time.time() * 1000)
    db = tmp_path / "state" / "reactor.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    with SqliteLedger(db) as ledger:
        old_a = ledger.journal_intent("A", "CRO-USDT-SWAP", "long", "add", "1.5", "{}")
        ledger.journal_result(old_a, "ok", "0", "")
        new_a = ledger.journal_intent("A", "CRO-USDT-SWAP", "long", "reduce", "2", "{}")
        ledger.journal_result(new_a, "error", "59200", "Insufficient account balance")
        new_b = ledger.journal_intent("B", "DOGE-USDT-SWAP", "short", "add", "3", "{}")
        ledger.pause("A", None, None, "hedging", source="cli")
        ledger.pause("B", "DOGE-USDT-SWAP", "short", "", source="api")
        ledger.record("A", "CRO-USDT-SWAP", "long", "k-old", source="cli", c_time=T_OLD)
        ledger.record("B", "DOGE-USDT-SWAP", "short", "k-new", source="fill", c_time=T_OLD)
    with sqlite3.connect(db) as raw:  # ages: the old rows three hours back, the rest now
        raw.execute("UPDATE journal SET sent_ms = ?, done_ms = ? WHERE id = ?",
                    (now - 3 * HOUR_MS, now - 3 * HOUR_MS + 80, old_a))  # fmt: skip
        raw.execute("UPDATE pauses SET paused_ms = ? WHERE account = 'A'", (now - 3 * HOUR_MS,))
        raw.execute("UPDATE maintenance SET recorded_ms = ? WHERE key = 'k-old'", (T_OLD,))
    del new_b
    return ["-c", str(path), "--log-level", "warning"]


def _out(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    assert main(list(argv)) == 0, capsys.readouterr().err
    return capsys.readouterr().out.splitlines()


def _iso_ok(cell: str) -> bool:
    return len(cell) == 24 and cell[4] == "-" and cell[10] == "T" and cell.endswith("Z")


def test_journal_table_json_account_since(
    cfg: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    head, *rows = _out(capsys, "journal", *cfg)
    assert head.split()[:3] == ["ID", "SENT", "ACCOUNT"]
    assert [r.split()[2] for r in rows] == ["B", "A", "A"]  # newest first
    assert all(_iso_ok(r.split()[1]) for r in rows)
    assert "59200" in rows[1] and "Insufficient account balance" in rows[1]
    # --json: today's lines, for scripts
    lines = [json.loads(x) for x in _out(capsys, "journal", "--json", *cfg)]
    assert [(e["account"], e["status"]) for e in lines] == [
        ("B", "pending"),
        ("A", "error"),
        ("A", "ok"),
    ]
    # --account, --since (relative and ISO), --limit
    a = [json.loads(x) for x in _out(capsys, "journal", "--json", "--account", "A", *cfg)]
    assert [e["status"] for e in a] == ["error", "ok"]
    recent = [json.loads(x) for x in _out(capsys, "journal", "--json", "--since", "2h", *cfg)]
    assert [e["account"] for e in recent] == ["B", "A"]
    both = _out(capsys, "journal", "--json", "--account", "A", "--since", "2h", *cfg)
    assert [json.loads(x)["status"] for x in both] == ["error"]
    iso_since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2 * 3600))
    assert len(_out(capsys, "journal", "--json", "--since", iso_since, *cfg)) == 2
    assert len(_out(capsys, "journal", "--json", "--since", "2026-01-01", *cfg)) == 3
    assert len(_out(capsys, "journal", "--json", "--account", "A", "--limit", "1", *cfg)) == 1


def test_pauses_table_json_account_since(
    cfg: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    head, *rows = _out(capsys, "pauses", *cfg)
    assert head.split() == ["ACCOUNT", "INSTRUMENT", "SIDE", "PAUSED", "SOURCE", "REASON"]
    assert [r.split()[:3] for r in rows] == [
        ["A", "(account)", "-"],
        ["B", "DOGE-USDT-SWAP", "short"],
    ]
    assert all(_iso_ok(r.split()[3]) for r in rows) and rows[0].endswith("hedging")
    only_b = [json.loads(x) for x in _out(capsys, "pauses", "--json", "--account", "B", *cfg)]
    assert [(p["account"], p["source"]) for p in only_b] == [("B", "api")]
    recent = [json.loads(x) for x in _out(capsys, "pauses", "--json", "--since", "1h", *cfg)]
    assert [p["account"] for p in recent] == ["B"]


def test_maintenance_list_table_json_account_since(
    cfg: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    head, *rows = _out(capsys, "maintenance", "list", *cfg)
    assert head.split()[:3] == ["ACCOUNT", "INSTRUMENT", "SIDE"]
    assert [r.split()[0] for r in rows] == ["A", "B"]
    assert "2026-01-01T00:00:00.000Z" in rows[0]  # the position's cTime, as ISO
    out = _out(capsys, "maintenance", "list", "--records", *cfg)
    rec_head = out.index("") + 1
    assert out[rec_head].split()[:2] == ["ID", "RECORDED"]
    assert "2026-01-01T00:00:00.000Z" in out[rec_head + 1] and "k-old" in out[rec_head + 1]
    since = _out(capsys, "maintenance", "list", "--records", "--json", "--since", "1d", *cfg)
    assert [json.loads(x).get("key", json.loads(x)["account"]) for x in since] == ["B", "k-new"]
    only_a = _out(capsys, "maintenance", "list", "--json", "--account", "A", *cfg)
    assert [json.loads(x)["account"] for x in only_a] == ["A"]


@pytest.mark.parametrize("command", [["journal"], ["pauses"], ["maintenance", "list"]])
def test_bad_filters_are_one_line_exit_2(
    cfg: list[str], capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    assert main([*command, *cfg, "--since", "yesterday"]) == 2
    assert capsys.readouterr().err.startswith("reactor: --since: 'yesterday' is neither")
    assert main([*command, *cfg, "--account", "nobody"]) == 2
    assert capsys.readouterr().err.startswith("reactor: --account: 'nobody' is not an account")


@pytest.mark.parametrize("command", [["journal"], ["pauses"], ["maintenance", "list"]])
def test_help_is_for_people(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--json", "--account", "--since", "examples:", "ISO 8601"):
        assert flag in text, (command, flag)
    assert f"reactor {' '.join(command)} -c F" in text


def test_top_level_help_is_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "Keeps the isolated margin" in text and ":mod:" not in text


def test_parse_since() -> None:
    now = 1_767_225_600_000 + 10 * HOUR_MS
    assert parse_since("2h", now) == now - 2 * HOUR_MS
    assert parse_since("90s", now) == now - 90_000
    assert parse_since("1w", now) == now - 7 * 24 * HOUR_MS
    assert parse_since("2026-01-01", now) == T_OLD
    assert parse_since("2026-01-01T02:00+02:00", now) == T_OLD
    assert parse_since("2026-01-01T00:00:00Z", now) == T_OLD
    for bad in ("", "2x", "-2h", "yesterday"):
        with pytest.raises(ConfigError):
            parse_since(bad, now)
