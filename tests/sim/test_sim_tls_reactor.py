"""The reactor, as a process, against a TLS simulator: https + wss trusted through
``SSL_CERT_FILE`` alone (its REST client uses ``ssl.create_default_context()``, ``websockets``
does the same for wss://), so no config key is needed for a private CA."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

import yaml

from tests.conftest import SCENARIOS, SimFactory
from tests.engine.harness import TARGETS
from tests.sim.helpers import KEY, PASSPHRASE, SECRET

CRO = "CRO-USDT-SWAP"


async def test_reactor_corrects_over_https_and_wss(sim_factory: SimFactory, tmp_path: Path) -> None:
    sim = await sim_factory(SCENARIOS / "cro.yaml", price_walk=False, tls=True)
    assert sim.ca_file is not None
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "venue": {"kind": "sim", "rest_url": sim.url, "ws_private_url": sim.ws_url},
                "state_dir": str(tmp_path / "state"),
                "accounts": [{"name": "Wu666666"}],
                "targets": TARGETS,
                "timing": {"debounce_ms": 50, "cooldown_s": 1},
                "status": {"enabled": False},
                "log": {"format": "json", "level": "info"},
            }
        )
    )
    env = {
        **os.environ,
        "SSL_CERT_FILE": str(sim.ca_file),
        "OKX_WU666666_API_KEY": KEY,
        "OKX_WU666666_SECRET_KEY": SECRET,
        "OKX_WU666666_PASSPHRASE": PASSPHRASE,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reactor",
        "run",
        "--config",
        str(config),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        account = sim.exchange.accounts["Wu666666"]
        position = account.isolated(CRO, "long")
        assert position is not None
        deadline = time.monotonic() + 60
        while position.margin > Decimal("10.5") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        # 20.29 brought into the 9.5-10.5 band through margin-balance over https, after the
        # wss positions snapshot showed it.
        assert Decimal("9.5") <= position.margin <= Decimal("10.5"), position.margin
        calls = [r for r in sim.rest.requests if r["path"].endswith("margin-balance")]
        assert calls and all(r["account"] == "Wu666666" for r in calls)
    finally:
        proc.terminate()
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode()
    assert '"event": "ws.connected"' in text or '"event":"ws.connected"' in text, text[-2000:]
    assert "CERTIFICATE_VERIFY_FAILED" not in text
