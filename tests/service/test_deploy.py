"""systemd units, the example config and install.sh (staged into a DESTDIR)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from reactor.config import load_config
from reactor.fdlimit import recommended_nofile
from tests.paths import REPO

ROOT = REPO
DEPLOY = ROOT / "deploy"


def unit(path: Path) -> dict[str, list[str]]:
    """``Section.Key`` -> values (systemd allows repeated keys)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


@pytest.mark.parametrize("name", ["okx-margin-reactor.service", "okx-margin-reactor@.service"])
def test_unit_settings(name: str) -> None:
    u = unit(DEPLOY / name)
    shard = "@" in name
    one = {k: v[-1] for k, v in u.items()}
    assert one["Service.Type"] == "notify"
    assert one["Service.NotifyAccess"] == "main"
    assert int(one["Service.WatchdogSec"]) > 0
    assert one["Service.Restart"] == "on-failure"
    assert one["Service.RestartPreventExitStatus"] == "2"  # cli.EXIT_BAD_INPUT
    for key in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "RestrictSUIDSGID",
    ):
        assert one[f"Service.{key}"] == "yes", key
    assert one["Service.ProtectSystem"] == "strict"
    assert one["Service.CapabilityBoundingSet"] == ""
    env = "/etc/okx-margin-reactor/%i.env" if shard else "/etc/okx-margin-reactor/credentials.env"
    assert one["Service.EnvironmentFile"] == "-" + env
    cfg = "%i.yaml" if shard else "config.yaml"
    assert one["Service.ExecStart"] == (
        f"/opt/okx-margin-reactor/.venv/bin/reactor run --config /etc/okx-margin-reactor/{cfg}"
    )
    state = "okx-margin-reactor/%i" if shard else "okx-margin-reactor"
    assert one["Service.StateDirectory"] == state
    assert one["Service.ReadWritePaths"] == f"/var/lib/{state}"
    assert one["Install.WantedBy"] == "multi-user.target"
    # 1,000+ accounts at ~4 descriptors each, and the soft limit may be raised to it at start.
    # One value: soft = hard (a SOFT:HARD pair is raised at start by reactor.fdlimit).
    assert int(one["Service.LimitNOFILE"]) >= recommended_nofile(1000)
    assert one["Service.SystemCallErrorNumber"] == "EPERM"  # a filtered call fails, not kills


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize(
    ("name", "as_name"),
    [
        ("okx-margin-reactor.service", "okx-margin-reactor.service"),
        ("okx-margin-reactor@.service", "okx-margin-reactor@shard1.service"),
    ],
)
def test_systemd_analyze_verify(name: str, as_name: str, tmp_path: Path) -> None:
    # ExecStart must exist for verify; point it at a binary that does.
    text = (
        (DEPLOY / name)
        .read_text()
        .replace("/opt/okx-margin-reactor/.venv/bin/reactor", "/bin/true")
    )
    (tmp_path / name).write_text(text)
    if as_name != name:
        (tmp_path / as_name).symlink_to(tmp_path / name)
    r = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / as_name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "Unknown key" not in r.stderr and "Unknown section" not in r.stderr, r.stderr


def test_example_config_is_valid_and_uses_the_state_dir() -> None:
    cfg = load_config(DEPLOY / "config.example.yaml")
    assert cfg.state_dir == Path("/var/lib/okx-margin-reactor")
    assert cfg.status.host == "127.0.0.1"
    assert cfg.venue.kind == "live"


def test_credentials_example_names_match_config_prefixes() -> None:
    cfg = load_config(DEPLOY / "config.example.yaml")
    text = (DEPLOY / "credentials.example.env").read_text()
    for account in cfg.accounts:
        for suffix in ("API_KEY", "SECRET_KEY", "PASSPHRASE"):
            assert f"#{account.env_prefix}_{suffix}=" in text


def run_install(dest: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DESTDIR": str(dest), "INSTALL_APP": "0"}
    return subprocess.run(
        ["bash", str(DEPLOY / "install.sh")], env=env, capture_output=True, text=True, timeout=60
    )


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_install_staged(tmp_path: Path) -> None:
    r = run_install(tmp_path)
    assert r.returncode == 0, r.stderr
    etc = tmp_path / "etc/okx-margin-reactor"
    assert mode(etc) == 0o750
    assert mode(etc / "credentials.env") == 0o600
    assert mode(etc / "config.yaml") == 0o640
    assert mode(tmp_path / "var/lib/okx-margin-reactor") == 0o700
    units = tmp_path / "etc/systemd/system"
    for name in ("okx-margin-reactor.service", "okx-margin-reactor@.service"):
        assert (units / name).read_text() == (DEPLOY / name).read_text()
        assert mode(units / name) == 0o644
    assert "Next steps" in r.stdout
    mtail_unit = units / "okx-margin-reactor-mtail.service"
    assert (
        mtail_unit.read_text() == (DEPLOY / "alerts/okx-margin-reactor-mtail.service").read_text()
    )
    program = etc / "mtail/okx-margin-reactor.mtail"
    assert program.read_text() == (DEPLOY / "alerts/okx-margin-reactor.mtail").read_text()
    assert "--progs /etc/okx-margin-reactor/mtail" in mtail_unit.read_text()


def test_install_never_overwrites_credentials_or_config(tmp_path: Path) -> None:
    etc = tmp_path / "etc/okx-margin-reactor"
    etc.mkdir(parents=True)
    creds = etc / "credentials.env"
    creds.write_text("OKX_WU666666_API_KEY=real\n")
    creds.chmod(0o644)
    (etc / "config.yaml").write_text("mine: true\n")
    r = run_install(tmp_path)
    assert r.returncode == 0, r.stderr
    assert creds.read_text() == "OKX_WU666666_API_KEY=real\n"
    assert (etc / "config.yaml").read_text() == "mine: true\n"
    assert "WARNING" in r.stderr and "chmod 0600" in r.stderr
    assert "real" not in r.stdout + r.stderr  # the secret is never echoed
