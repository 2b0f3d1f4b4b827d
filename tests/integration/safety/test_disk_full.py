"""A full disk under a running reactor (state dir on a tiny tmpfs; needs root to mount)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.engine.harness import SimAdmin, wait_for, write_config
from tests.integration.faults.common import FAST, account, cro, in_band, report, scenario
from tests.integration.faults.procs import credentials_env, journal, start_reactor, start_sim
from tests.integration.safety.test_storage_faults import OUT_OF_BAND, W, _margin


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()[:100]}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(path: Path) -> Path:
    filler = path / "filler"
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 4096)
    return filler


async def test_full_disk_stops_calls_then_corrections_resume(tmp_path):
    scen = scenario(account(W, 1, [cro()]))
    with _tmpfs(tmp_path / "small", "2m") as small:
        sim, url = await start_sim(scen, tmp_path)
        admin = SimAdmin(url)
        cfg_path = write_config(tmp_path, url, [{"name": W}], **FAST)
        raw = yaml.safe_load(cfg_path.read_text())
        raw["state_dir"] = str(small / "state")
        cfg_path.write_text(yaml.safe_dump(raw))
        reactor = await start_reactor(cfg_path, credentials_env(scen), tmp_path)

        async def ok() -> bool:
            return in_band(await _margin(admin))

        try:
            await wait_for(ok, timeout_s=15)
            await asyncio.sleep(0.5)
            before = len(await admin.margin_calls())
            filler = _fill(small)
            # Enough changes to need fresh pages (an intent each): the disk is full now.
            for i in range(30):
                await admin.set_position(**{**OUT_OF_BAND, "margin": f"{20 + i / 100:.2f}"})
                if reactor.events("journal.write.failed"):
                    break
                await asyncio.sleep(0.3)
            failed = reactor.events("journal.write.failed")
            during = len(await admin.margin_calls())
            calls_ok = [e for e in reactor.events("margin.adjust.sent")]
            filler.unlink()  # space again: corrections resume by themselves
            t0 = time.monotonic()
            await admin.set_position(**OUT_OF_BAND)
            await wait_for(ok, timeout_s=20)
            report("disk full: space back to in band", time.monotonic() - t0)
            assert reactor.alive
            total_calls = len(await admin.margin_calls())
        finally:
            await reactor.terminate()
            await sim.terminate()
            await admin.aclose()
        entries = journal(cfg_path)
    print(f"\nDISK-FULL failed={len(failed)} before={before} during={during} sent={len(calls_ok)}")
    assert failed and "full" in failed[0]["error"]
    # No call without its durable intent: every call the exchange saw is in the journal.
    assert len(entries) == total_calls
    assert all(e["status"] in ("ok", "error", "unknown") for e in entries)
