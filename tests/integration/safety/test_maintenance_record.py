"""``maintenance record`` ties a record to the position OKX reports now (read over REST with the
account's credentials), never to the host clock; no position or no instrument: exit 2."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from reactor.service.app import LEDGER_FILE
from tests.engine.harness import SimAdmin, write_config
from tests.integration.faults.common import FAST, account, cro, scenario
from tests.integration.faults.procs import credentials_env

W = "Wu666666"


def _record(cfg_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import os

    argv = ["maintenance", "record", "--config", str(cfg_path), "--account", W, *args]
    return subprocess.run(
        [sys.executable, "-m", "reactor", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def _rows(tmp_path: Path) -> list[tuple[str, str, int | None]]:
    db = sqlite3.connect(tmp_path / "state" / LEDGER_FILE)
    try:
        return list(db.execute("SELECT inst_id, key, c_time FROM maintenance ORDER BY id"))
    finally:
        db.close()


async def test_record_without_c_time_takes_the_ctime_okx_reports(tmp_path, sim_factory):
    scen = scenario(account(W, 1, [cro()]))
    scen["accounts"][0]["positions"][0]["cTime"] = "1600000000000"  # long before the host now
    sim = await sim_factory(scen, price_walk=False)
    admin = SimAdmin(sim.url)
    env = credentials_env(scen)
    cfg_path = write_config(tmp_path, sim.url, [{"name": W}], **FAST)
    try:
        real = await admin.position(W, "CRO-USDT-SWAP", "long")
        assert real is not None
        c_time = int(real["cTime"])
        args = ("--inst-id", "CRO-USDT-SWAP", "--pos-side", "long", "--key", "ord-1")
        done = await asyncio.to_thread(_record, cfg_path, env, *args)
        assert done.returncode == 0, done.stderr
        event = json.loads(done.stdout.strip().splitlines()[-1])
        assert event["event"] == "maintenance.recorded" and event["cTime"] == c_time
        # Before: c_time NULL, counted from the host clock's recorded_ms.
        assert _rows(tmp_path) == [("CRO-USDT-SWAP", "ord-1", c_time)]
        # It read the position with the account's credentials.
        reads = await admin.requests("/api/v5/account/positions")
        assert reads and reads[-1]["path"].startswith("/api/v5/account/positions")

        # Unknown instrument; a side with no position; a closed position: refused, exit 2.
        cases = [
            (("--inst-id", "NOPE-USDT-SWAP", "--pos-side", "long"), "not a swap OKX lists"),
            (("--inst-id", "CRO-USDT-SWAP", "--pos-side", "short"), "no open position"),
        ]
        for i, (where, fragment) in enumerate(cases):
            done = await asyncio.to_thread(_record, cfg_path, env, *where, "--key", f"x-{i}")
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 2 and len(lines) == 1 and fragment in lines[0], done.stderr
        await admin.set_position(account=W, instId="CRO-USDT-SWAP", posSide="long", pos="0")
        done = await asyncio.to_thread(_record, cfg_path, env, *args[:4], "--key", "ord-2")
        assert done.returncode == 2 and "no open position" in done.stderr
        assert [r[1] for r in _rows(tmp_path)] == ["ord-1"]
    finally:
        await admin.aclose()


async def test_exchange_unreachable_is_exit_1_with_one_line(tmp_path):
    scen = scenario(account(W, 1, [cro()]))
    cfg_path = write_config(tmp_path, "http://127.0.0.1:1", [{"name": W}], **FAST)
    args = ("--inst-id", "CRO-USDT-SWAP", "--pos-side", "long", "--key", "ord-1")
    done = await asyncio.to_thread(_record, cfg_path, credentials_env(scen), *args)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot read the position" in lines[0]
    assert not (tmp_path / "state" / LEDGER_FILE).exists() or _rows(tmp_path) == []
