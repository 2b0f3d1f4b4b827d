"""Upgrades and retention of the ledger: the schema carries a version, a ledger from a newer
version is refused (one line, exit 2), ``reactor db backup`` copies it safely while it is being
written, and ``reactor db prune`` deletes finished journal rows only."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reactor.cli import db as db_cli
from reactor.cli.main import _parser, main
from reactor.config import load_config
from reactor.store import SCHEMA_VERSION, LedgerTooNew, SqliteLedger
from reactor.store.state_dir import LEDGER_FILE
from reactor.testing import write_config
from tests.paths import REPO

DAY_MS = 86_400_000


@pytest.fixture(autouse=True)
def _logging_back_to_stdout() -> Iterator[None]:
    yield
    from reactor import log as logging_setup

    logging_setup.configure("info", "json")


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    return write_config(tmp_path, "http://127.0.0.1:9", [{"name": "Wu666666"}])


def _ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / LEDGER_FILE


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reactor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=str(REPO),
    )


# --- the schema version and the downgrade refusal ------------------------------------------


def test_a_new_ledger_carries_the_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    SqliteLedger(path).close()
    assert SCHEMA_VERSION >= 1
    assert _user_version(path) == SCHEMA_VERSION


def test_a_ledger_from_before_versions_migrates_in_place(tmp_path: Path) -> None:
    """The first release's journal (no bill_id, no user_version) opens, keeps its rows and is
    stamped with the current version."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE journal (id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL,"
            " inst_id TEXT NOT NULL, pos_side TEXT NOT NULL, action TEXT NOT NULL, amount TEXT"
            " NOT NULL, request TEXT NOT NULL, status TEXT NOT NULL, code TEXT, msg TEXT,"
            " sent_ms INTEGER NOT NULL, done_ms INTEGER)"
        )
        db.execute(
            "INSERT INTO journal (account, inst_id, pos_side, action, amount, request, status,"
            " sent_ms, done_ms) VALUES ('a', 'BTC-USDT-SWAP', 'long', 'add', '1', '{}', 'ok',"
            " 1, 2)"
        )
    assert _user_version(path) == 0
    with SqliteLedger(path) as led:
        (entry,) = led.journal()
        assert entry.status == "ok" and entry.bill_id is None
    assert _user_version(path) == SCHEMA_VERSION


def _from_the_future(path: Path) -> None:
    SqliteLedger(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


def test_a_ledger_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    _from_the_future(path)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE pauses")  # what the newer version might have done
    with pytest.raises(LedgerTooNew) as refused:
        SqliteLedger(path)
    assert f"schema version {SCHEMA_VERSION + 1}" in str(refused.value)
    assert "newer" in str(refused.value)
    with sqlite3.connect(path) as db:  # nothing re-created, nothing re-stamped
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "pauses" not in tables
    assert _user_version(path) == SCHEMA_VERSION + 1


def test_the_cli_and_run_refuse_a_newer_ledger_with_one_line_exit_2(
    tmp_path: Path, cfg_path: Path
) -> None:
    _from_the_future(_ledger_path(tmp_path))
    env = {
        "OKX_WU666666_API_KEY": "k",
        "OKX_WU666666_SECRET_KEY": "s",
        "OKX_WU666666_PASSPHRASE": "p",
    }
    for args in (("journal",), ("pauses",), ("run",)):
        done = _run(*args, "-c", str(cfg_path), "--log-format", "json", env=env)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, (args, done.stderr)
        assert lines[0].startswith("reactor: ledger ") and "newer okx-margin-reactor" in lines[0]
        assert "Traceback" not in done.stdout


def test_db_version_reports_without_migrating(
    tmp_path: Path, cfg_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _ledger_path(tmp_path)
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE journal (id INTEGER PRIMARY KEY)")
    assert main(["db", "version", "-c", str(cfg_path)]) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert out["schema"] == 0 and out["program_schema"] == SCHEMA_VERSION
    assert out["state"].startswith("older")
    assert _user_version(path) == 0  # read only
    path.unlink()
    _from_the_future(path)
    assert main(["db", "version", "-c", str(cfg_path)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["state"].startswith("newer")


# --- backup --------------------------------------------------------------------------------


def test_backup_while_the_ledger_is_written_is_complete_and_consistent(
    tmp_path: Path, cfg_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _ledger_path(tmp_path)
    writer = SqliteLedger(path)
    for _ in range(200):
        writer.journal_result(
            writer.journal_intent("a", "X-USDT-SWAP", "long", "add", "1", "{}"), "ok"
        )
    stop = threading.Event()

    def write_on() -> None:
        while not stop.is_set():
            writer.journal_intent("a", "X-USDT-SWAP", "long", "add", "1", "{}")

    t = threading.Thread(target=write_on)
    t.start()
    try:
        dest = tmp_path / "backups"
        dest.mkdir()
        assert main(["db", "backup", "-c", str(cfg_path), str(dest)]) == 0
    finally:
        stop.set()
        t.join()
        writer.close()
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    (copy,) = dest.iterdir()
    assert out["event"] == "db.backup.done" and Path(out["backup"]) == copy
    assert copy.name.startswith("reactor-") and copy.suffix == ".sqlite"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert out["schema"] == SCHEMA_VERSION
    # self-contained: no -wal beside it, opens alone, passes an integrity check
    assert [p.name for p in dest.iterdir()] == [copy.name]
    with sqlite3.connect(copy) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        ok = db.execute("SELECT COUNT(*) FROM journal WHERE status = 'ok'").fetchone()[0]
    assert ok == 200
    with SqliteLedger(copy) as restored:  # the program opens the copy as its ledger
        assert len(restored.journal(1000)) >= 200


def test_backup_never_overwrites_and_never_creates_a_ledger(
    tmp_path: Path, cfg_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "b.sqlite"
    assert main(["db", "backup", "-c", str(cfg_path), str(dest)]) == 2
    assert "no ledger" in capsys.readouterr().err
    assert not _ledger_path(tmp_path).exists() and not dest.exists()
    SqliteLedger(_ledger_path(tmp_path)).close()
    dest.write_text("an older backup")
    assert main(["db", "backup", "-c", str(cfg_path), str(dest)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]
    assert dest.read_text() == "an older backup"
    assert not list(tmp_path.glob(".b.sqlite.part"))


# --- journal retention ---------------------------------------------------------------------


def test_prune_deletes_old_finished_rows_only(
    tmp_path: Path, cfg_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now_ms = 1_800_000_000_000
    clock_ms = [now_ms - 400 * DAY_MS]
    path = _ledger_path(tmp_path)
    led = SqliteLedger(path, clock=lambda: clock_ms[0] / 1000)

    def row(status: str) -> int:
        i = led.journal_intent("a", "X-USDT-SWAP", "long", "add", "1", "{}")
        if status != "pending":
            led.journal_result(i, status)  # type: ignore[arg-type]
        return i

    old = {s: row(s) for s in ("ok", "error", "unknown", "pending")}
    clock_ms[0] = now_ms - 10 * DAY_MS
    recent = {s: row(s) for s in ("ok", "error")}
    led.close()

    raw = yaml.safe_load(cfg_path.read_text())
    raw["journal"] = {"retention_days": 365}
    cfg_path.write_text(yaml.safe_dump(raw))
    cfg = load_config(cfg_path)
    args = ["db", "prune", "-c", str(cfg_path)]
    parsed = _parser()
    assert (
        db_cli.run(cfg, parsed.parse_args([*args, "--dry-run"]), clock=lambda: now_ms / 1000) == 0
    )
    dry = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert dry["event"] == "db.prune.dry_run" and dry["rows"] == 2 and dry["older_than_days"] == 365
    assert db_cli.run(cfg, parsed.parse_args(args), clock=lambda: now_ms / 1000) == 0
    done = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert done["event"] == "db.prune.done" and done["rows"] == 2
    with SqliteLedger(path) as after:
        left = {e.id for e in after.journal(100)}
    assert old["ok"] not in left and old["error"] not in left
    # never a non-final row, however old; never a row inside the retention
    assert {old["unknown"], old["pending"], *recent.values()} <= left

    # --older-than-days overrides the setting; below 1 day is refused
    assert (
        db_cli.run(
            cfg, parsed.parse_args([*args, "--older-than-days", "5"]), clock=lambda: now_ms / 1000
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["rows"] == 2
    assert main([*args, "--older-than-days", "0"]) == 2
    with SqliteLedger(path) as after:
        assert {e.status for e in after.journal(100)} == {"unknown", "pending"}


def test_retention_setting_is_validated(tmp_path: Path, cfg_path: Path) -> None:
    raw = yaml.safe_load(cfg_path.read_text())
    raw["journal"] = {"retention_days": 0}
    cfg_path.write_text(yaml.safe_dump(raw))
    done = _run("db", "prune", "-c", str(cfg_path))
    assert done.returncode == 2 and "journal.retention_days" in done.stderr
