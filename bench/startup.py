"""Start-up cost with many accounts whose credentials come from one 0600 credentials file.

``python -m bench.startup [--accounts 500]``: times ``reactor check-config`` (a subprocess, as an
operator runs it) and ``app.start()`` (in-process, against ``bench.simproc`` in a child process)
up to the point where ``reactor run`` sends ``READY=1``. systemd's ``TimeoutStartSec`` bounds
exactly that span.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import ROOT, TARGETS, account, sim_process
from reactor import log as logging_setup
from reactor.config import load_config
from reactor.service import app


def _scenario(n: int) -> dict[str, Any]:
    inst = {"instId": "S000-USDT-SWAP", "ctVal": "1", "markPx": "100", "tickSz": "0.01"}
    return {"instruments": [inst], "accounts": [account(i, []) for i in range(n)]}


def _write(tmp: Path, scenario: dict[str, Any], rest_url: str, ws_url: str) -> Path:
    creds = {
        a["name"]: {
            "api_key": a["apiKey"],
            "secret_key": a["secretKey"],
            "passphrase": a["passphrase"],
        }
        for a in scenario["accounts"]
    }
    cred_path = tmp / "credentials.yaml"
    cred_path.write_text(yaml.safe_dump(creds))
    cred_path.chmod(0o600)
    raw = {
        "venue": {"kind": "sim", "rest_url": rest_url, "ws_private_url": ws_url},
        "state_dir": str(tmp / "state"),
        "credentials_file": str(cred_path),
        "accounts": [{"name": a["name"]} for a in scenario["accounts"]],
        "targets": TARGETS,
        "status": {"enabled": False, "port": 0},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def check_config_s(path: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKX_")}
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "reactor", "check-config", "--config", str(path)],
        check=True,
        capture_output=True,
        cwd=str(ROOT),
        env=env,
        timeout=600,
    )
    return time.monotonic() - t0


async def start_s(path: Path) -> float:
    cfg = load_config(path)
    with open(os.devnull, "w") as sink:
        logging_setup.configure("info", "json", stream=sink)
        t0 = time.monotonic()
        rt = await app.start(cfg)
        took = time.monotonic() - t0
        await app.stop(rt)
    return took


async def main_async(n: int) -> dict[str, Any]:
    scen = _scenario(n)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as d:
        tmp = Path(d)
        async with sim_process(scen, rate_limits=False, stamp=False) as sim:
            path = _write(tmp, scen, sim.url, sim.ws_url)
            check = check_config_s(path)
            start = await start_s(path)
    return {"accounts": n, "check_config_s": round(check, 3), "app_start_s": round(start, 3)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.startup")
    p.add_argument("--accounts", type=int, default=500)
    args = p.parse_args(argv)
    print(json.dumps(asyncio.run(main_async(args.accounts))))


if __name__ == "__main__":
    main()
