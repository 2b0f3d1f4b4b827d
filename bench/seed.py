"""The seed case from a cold start: ``reactor run`` as a process, embedded simulator with the
CRO position (margin 20.29, count 0). Measures process start -> margin in band, and the calls.

The acceptance target is "one margin-balance call, within 2 s of start"; this is where that
is measured (never in a unit test). The clock starts before the interpreter is spawned, so Python's
own start-up and imports are included.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import ROOT, dist_ms


def _config(tmp: Path) -> Path:
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    raw["venue"].update(scenario=str(ROOT / "scenarios" / "cro.yaml"), price_walk=False)
    raw["accounts"] = [{"name": "Wu666666", "role": "sub", "enabled": True}]
    raw["state_dir"] = str(tmp / "state")
    raw["status"]["port"] = 0
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run_once() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-seed-") as tmp:
        cfg = _config(Path(tmp))
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "reactor", "run", "--config", str(cfg)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert proc.stdout is not None
        marks: dict[str, float] = {}
        sent: list[dict[str, Any]] = []
        try:
            for line in proc.stdout:
                event = json.loads(line)
                name = event["event"]
                marks.setdefault(name, time.monotonic() - t0)
                if name == "margin.adjust.sent":
                    sent.append(event)
                if name == "margin.adjust.ok":
                    time.sleep(0.5)  # room for a (wrong) second call to show
                    proc.terminate()
        finally:
            proc.wait(timeout=30)
        return {
            "to_started_s": marks.get("reactor.started"),
            "to_sent_s": marks.get("margin.adjust.sent"),
            "to_in_band_s": marks.get("margin.adjust.ok"),
            "calls": len(sent),
            "amount": sent[0]["amount"] if sent else None,
        }


def run(quick: bool) -> dict[str, Any]:
    runs = [run_once() for _ in range(3 if quick else 10)]
    in_band = [r["to_in_band_s"] for r in runs if r["to_in_band_s"] is not None]
    result = {
        "runs": len(runs),
        "calls_per_run": sorted({r["calls"] for r in runs}),
        "amount": runs[0]["amount"],
        "to_started": dist_ms([r["to_started_s"] for r in runs if r["to_started_s"]]),
        "to_in_band": dist_ms(in_band),
        "missed": len(runs) - len(in_band),
    }
    print(
        f"  process start -> in band p50 {result['to_in_band']['p50_ms']} ms, "
        f"max {result['to_in_band']['max_ms']} ms; calls per run {result['calls_per_run']}, "
        f"amount {result['amount']}",
        flush=True,
    )
    return result
