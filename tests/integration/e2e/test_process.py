"""`reactor run` as a process: the demo config works end to end and SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.paths import REPO


def _demo_config(tmp_path: Path) -> Path:
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["venue"]["scenario"] = str(REPO / "scenarios" / "demo.yaml")
    raw["venue"]["price_walk"] = False
    raw["state_dir"] = str(tmp_path / "state")
    raw["status"]["port"] = 0
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _read_events(proc: subprocess.Popen[str], until: str, timeout_s: float) -> list[dict]:
    assert proc.stdout is not None
    events: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        events.append(json.loads(line))
        if events[-1]["event"] == until:
            return events
    raise AssertionError(f"no {until} in {[e['event'] for e in events]}")


def test_demo_run_corrects_and_stops_cleanly_on_sigterm(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKX_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reactor", "run", "--config", str(_demo_config(tmp_path))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        events = _read_events(proc, "margin.adjust.ok", 20)
        assert any(e["event"] == "status.ready" for e in events)
        proc.send_signal(signal.SIGTERM)
        rest = _read_events(proc, "reactor.stopped", 20)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    names = [e["event"] for e in rest]
    assert "reactor.stopping" in names
    secrets = [s for s in ("demo-secret", "demo-pass") if any(s in json.dumps(e) for e in events)]
    assert secrets == []
    journal = subprocess.run(
        [
            sys.executable,
            "-m",
            "reactor",
            "journal",
            "--json",
            "--config",
            str(tmp_path / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    entries = [json.loads(line) for line in journal.stdout.splitlines()]
    assert entries and all(e["status"] in ("ok", "error") for e in entries)
