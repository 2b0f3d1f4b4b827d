"""Every systemd unit the package ships is hardened alike: the reactor's units and the mtail
unit that reads its journal (which scored 6.6 MEDIUM on ``systemd-analyze security``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.paths import REPO
from tests.service.test_deploy import unit

DEPLOY = REPO / "deploy"
UNITS = [
    DEPLOY / "okx-margin-reactor.service",
    DEPLOY / "okx-margin-reactor@.service",
    DEPLOY / "alerts" / "okx-margin-reactor-mtail.service",
]
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "RemoveIPC": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "SystemCallArchitectures": "native",
    "SystemCallErrorNumber": "EPERM",
    "UMask": "0077",
}


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_every_unit_carries_the_hardening_keys(path: Path) -> None:
    u = unit(path)
    one = {k: v[-1] for k, v in u.items()}
    for key, want in HARDENING.items():
        assert one.get(f"Service.{key}") == want, f"{path.name}: {key}={one.get(f'Service.{key}')}"
    filters = u.get("Service.SystemCallFilter", [])
    assert "@system-service" in filters and "~@privileged @resources" in filters, path.name


def _exposure(path: Path, tmp_path: Path) -> float:
    text = path.read_text().replace("/opt/okx-margin-reactor/.venv/bin/reactor", "/bin/true")
    name = path.name.replace("@.service", "@shard1.service")
    (tmp_path / name).write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(tmp_path / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout + done.stderr)
    if m is None:
        pytest.skip(f"systemd-analyze security --offline unsupported: {done.stderr[:200]}")
    return float(m.group(1))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_security_rates_every_unit_ok(path: Path, tmp_path: Path) -> None:
    score = _exposure(path, tmp_path)
    assert score < 2.0, f"{path.name}: exposure {score} (OK is below 2.0)"  # mtail was 6.6
