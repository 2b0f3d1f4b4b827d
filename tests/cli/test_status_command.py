"""``reactor status`` asks the running reactor's status API: a table with ISO times by
default, ``--json`` for scripts, ``--account``; exit 1 when the reactor is down, 2 when nothing
answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from reactor.cli.main import main
from reactor.status.metrics import Metrics
from reactor.status.model import AccountStatus
from reactor.status.server import StatusServer
from tests.engine.harness import write_config
from tests.status.snapshots import MutableSource, sample_snapshot


@pytest.fixture(autouse=True)
def _logging_back_to_stdout() -> Iterator[None]:
    yield
    from reactor import log as logging_setup

    logging_setup.configure("info", "json")


def _config(tmp_path: Path, port: int) -> Path:
    path = write_config(tmp_path, "http://127.0.0.1:9", [{"name": "Wu666666"}])
    raw = yaml.safe_load(path.read_text())
    raw["status"] = {"enabled": True, "host": "127.0.0.1", "port": port}
    path.write_text(yaml.safe_dump(raw))
    return path


async def test_status_asks_the_running_reactor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snap = sample_snapshot()
    snap = replace(snap, generated_ms=1_765_110_716_123)
    source = MutableSource(snap)
    server = StatusServer(source, Metrics(process=False), port=0)
    url = await server.start()
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    path = _config(tmp_path, port)
    capsys.readouterr()  # status.ready
    try:
        assert await asyncio.to_thread(main, ["status", "-c", str(path)]) == 0
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert lines[0].startswith("degraded  at 2025-12-07T12:31:56.123Z")
        assert lines[1] == "needs attention: 1 blocked"
        blocked = next(i for i in snap.attention())
        assert lines[2].split() == ["blocked", *blocked.where.split(), *blocked.reason.split()]
        assert lines[3].split()[:3] == ["ACCOUNT", "INSTRUMENT", "SIDE"]
        positions = [p for a in snap.accounts for p in a.positions]
        assert len(lines) == 4 + len(positions)

        assert await asyncio.to_thread(main, ["status", "-c", str(path), "--json"]) == 0
        import json

        body = json.loads(capsys.readouterr().out)
        assert body["health"] == "degraded" and body["attention"]["counts"]["blocked"] == 1
        name = next(a.name for a in snap.accounts if a.positions and a.role == "sub")
        assert await asyncio.to_thread(main, ["status", "-c", str(path), "--account", name]) == 0
        out_lines = capsys.readouterr().out.splitlines()
        rows = out_lines[next(n for n, x in enumerate(out_lines) if x.startswith("ACCOUNT")) + 1 :]
        assert rows and all(r.split()[0] == name for r in rows)

        # down: exit 1 with the reasons
        down = AccountStatus("sub-x", "sub", True, False, False, None, ())
        source.snapshot = replace(snap, accounts=(down,), main_expected_positions=0)
        assert await asyncio.to_thread(main, ["status", "-c", str(path)]) == 1
        out = capsys.readouterr().out
        assert out.splitlines()[1] == "  problem: sub-x: not connected"
    finally:
        await server.stop()
    # nothing answers: one clear line, exit 2
    assert await asyncio.to_thread(main, ["status", "-c", str(path)]) == 2
    assert f"no reactor answers at http://127.0.0.1:{port}/api/status" in capsys.readouterr().err


def test_status_help_is_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    out = capsys.readouterr().out
    assert "--json" in out and "--account" in out and "ISO 8601" in out
