"""The ledger commands (db migrate, pause/resume/pauses, maintenance record/list/void, journal)
work the same on both backends: SQLite in the state dir and PostgreSQL (storage.kind)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from reactor.cli.main import main
from reactor.config import load_config
from reactor.store.backend import open_configured

T0 = 1_700_000_000_000


@pytest.fixture(params=["sqlite", "postgres"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    raw: dict[str, Any] = {
        "venue": {"kind": "demo"},
        "state_dir": str(tmp_path / "state"),
        "accounts": [{"name": "sub1"}],
        "targets": [{"min_count": 0, "target": "10", "band": ["9.5", "10.5"]}],
        "log": {"format": "json"},
    }
    if request.param == "postgres":
        raw["storage"] = {"kind": "postgres", "dsn": request.getfixturevalue("pg_dsn")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, [line for line in out.splitlines() if line.strip()]


def test_ledger_commands_on_each_backend(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ("--config", str(config))
    code, lines = _run(capsys, "db", "migrate", *c)
    assert code == 0 and lines[-1].startswith("ledger schema:")
    assert _run(capsys, "pause", *c, "--account", "sub1", "--reason", "desk")[0] == 0
    code, lines = _run(capsys, "pauses", "--json", *c)
    pauses = [json.loads(x) for x in lines if x.startswith("{") and '"account"' in x]
    assert [(p["account"], p["reason"]) for p in pauses if "pausedMs" in p] == [("sub1", "desk")]
    assert _run(capsys, "resume", *c, "--account", "sub1")[0] == 0
    rec = ("maintenance", "record", *c, "--account", "sub1", "--inst-id", "CRO-USDT-SWAP")
    assert _run(capsys, *rec, "--pos-side", "long", "--key", "k1", "--c-time", str(T0))[0] == 0
    code, lines = _run(capsys, "maintenance", "list", "--json", *c)
    counts = [json.loads(x) for x in lines if '"count"' in x]
    assert [(x["account"], x["count"]) for x in counts] == [("sub1", 1)]
    assert _run(capsys, "maintenance", "void", *c, "k1", "--account", "sub1")[0] == 0
    code, lines = _run(capsys, "maintenance", "list", "--json", *c)
    assert not [x for x in lines if '"count"' in x]
    cfg = load_config(config)
    with open_configured(cfg) as ledger:
        assert ledger.pauses() == []
        ledger.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "1", "{}")
    code, lines = _run(capsys, "journal", *c)
    assert code == 0 and any('"pending"' in x or "pending" in x for x in lines)
