"""``reactor maintenance record | list | void`` as a process (exit codes, one-line errors)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.engine.harness import TARGETS

T0 = 1_700_000_000_000
REC = ("--account", "sub1", "--inst-id", "CRO-USDT-SWAP", "--pos-side", "long")


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    raw = {
        "venue": {
            "kind": "sim",
            "rest_url": "http://127.0.0.1:9",
            "ws_private_url": "ws://127.0.0.1:9/ws/v5/private",
        },
        "state_dir": str(tmp_path / "state"),
        "accounts": [{"name": "sub1"}, {"name": "sub2"}],
        "targets": TARGETS,
        "log": {"format": "json", "level": "info"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def cli(cfg_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reactor", "maintenance", *args, "--config", str(cfg_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def events(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_record_list_void(cfg_path: Path) -> None:
    ok = cli(cfg_path, "record", *REC, "--key", "k1", "--c-time", str(T0), "--ord-id", "777")
    assert ok.returncode == 0, ok.stderr
    [ev] = events(ok.stdout)
    assert (ev["event"], ev["source"], ev["cTime"]) == ("maintenance.recorded", "cli", T0)
    # The same order under another key (a back-fill from the desk's books): counted once.
    dup = cli(
        cfg_path,
        "record",
        *REC,
        "--key",
        "b1",
        "--c-time",
        str(T0),
        "--ord-id",
        "777",
        "--source",
        "backfill",
    )
    assert dup.returncode == 0 and events(dup.stdout)[0]["event"] == "maintenance.duplicate"
    cli(cfg_path, "record", *REC, "--key", "k2", "--c-time", str(T0), "--source", "backfill")
    listed = cli(cfg_path, "list", "--json")
    assert [json.loads(x) for x in listed.stdout.splitlines()] == [
        {
            "account": "sub1",
            "instId": "CRO-USDT-SWAP",
            "posSide": "long",
            "cTime": T0,
            "count": 2,
            "sources": {"backfill": 1, "cli": 1},
        }
    ]
    voided = cli(cfg_path, "void", "777", "--reason", "test order")
    assert voided.returncode == 0, voided.stderr
    [ev] = events(voided.stdout)
    assert ev["event"] == "maintenance.voided" and ev["key"] == "k1"
    assert str(ev["actor"]).startswith("cli:") and ev["reason"] == "test order"
    records = [
        json.loads(x) for x in cli(cfg_path, "list", "--records", "--json").stdout.splitlines()
    ]
    assert records[0]["count"] == 1 and records[0]["sources"] == {"backfill": 1}
    assert [(r["key"], r["voided_ms"] is not None) for r in records[1:]] == [
        ("k1", True),
        ("k2", False),
    ]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("void", "nope"), "no maintenance record"),
        (("void", "k", "--account", "ghost"), "ghost"),
        (("record", *REC, "--key", "k", "--c-time", str(T0), "--ord-id", " "), "--ord-id"),
        (("record", *REC, "--key", "k", "--c-time", str(T0), "--source", "fill"), "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(cfg_path: Path, args: tuple[str, ...], needle: str) -> None:
    done = cli(cfg_path, *args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and needle in lines[-1]  # one line (after argparse's usage)
    assert lines[0].startswith(("reactor:", "usage:"))


def test_void_twice_and_ambiguous(cfg_path: Path) -> None:
    for account in ("sub1", "sub2"):
        rec = ("--account", account, "--inst-id", "CRO-USDT-SWAP", "--pos-side", "long")
        assert cli(cfg_path, "record", *rec, "--key", "same", "--c-time", str(T0)).returncode == 0
    amb = cli(cfg_path, "void", "same")
    assert amb.returncode == 2 and "add --account" in amb.stderr
    assert cli(cfg_path, "void", "same", "--account", "sub2").returncode == 0
    again = cli(cfg_path, "void", "same", "--account", "sub2")
    assert again.returncode == 2 and "already void" in again.stderr
