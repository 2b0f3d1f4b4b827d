"""``bench/burst.py`` stays runnable: a small burst under a NOFILE limit, 0 failed calls (the
500-account numbers are in docs/operations.md; the script runs in its own process because it sets
the process's RLIMIT_NOFILE)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_small_burst_has_no_failed_call() -> None:
    args = ["--accounts", "20", "--per-account", "2", "--nofile", "4096", "--connect-rate", "100"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.burst", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert (out["positions"], out["margin_calls"], out["failed_calls"]) == (40, 40, 0)
    assert out["codes"] == {"0": 40}
    assert out["events"]["margin.adjust.ok"] == 40
    assert out["all_in_band_s"] is not None
    assert "process.fd.exhausted" not in out["events"]
