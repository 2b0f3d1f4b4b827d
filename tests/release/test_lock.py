"""The dependencies ``install.sh`` installs are the pinned, hash-checked ones of
``deploy/requirements.lock``, and that lock satisfies ``pyproject.toml``: an install on the
host is the combination the tests ran against, not whatever PyPI serves that day."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.paths import REPO

LOCK = REPO / "deploy" / "requirements.lock"


def _pins() -> dict[str, tuple[Version, list[str]]]:
    """name -> (pinned version, its hashes), from the pip-compile format."""
    out: dict[str, tuple[Version, list[str]]] = {}
    text = LOCK.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)\s*(.*)$", line)
        assert m, f"not a pinned requirement: {line[:80]}"
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", m.group(3))
        out[canonicalize_name(m.group(1))] = (Version(m.group(2)), hashes)
    return out


def test_every_dependency_is_pinned_with_hashes_and_satisfies_pyproject() -> None:
    pins = _pins()
    assert pins, "empty lock"
    for name, (_, hashes) in pins.items():
        assert hashes, f"{name} has no --hash"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not in the lock: `make lock`"
        assert req.specifier.contains(pins[name][0], prereleases=True), (
            f"{req.name}=={pins[name][0]} in the lock does not satisfy {spec}: `make lock`"
        )
    assert "okx-margin-reactor" not in pins  # the application itself is installed from source


def test_the_lock_says_how_it_is_made() -> None:
    head = LOCK.read_text()[:600]
    assert "pip-compile" in head and "--generate-hashes" in head
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^lock:", makefile, re.M) and "--generate-hashes" in makefile


def _stub_python(tmp_path: Path) -> tuple[Path, Path]:
    """A ``python`` whose ``-m venv DIR`` makes a venv whose pip only logs its arguments."""
    log = tmp_path / "pip.log"
    stub = tmp_path / "python"
    pip = f'#!/bin/sh\nprintf "%s|%s\\n" "$*" "${{GIT_CONFIG_VALUE_0:-}}" >> "{log}"\n'
    stub.write_text(
        "#!/bin/sh\n"
        '[ "$1" = "-m" ] && [ "$2" = "venv" ] || exit 9\n'
        'mkdir -p "$3/bin"\n'
        f"cat > \"$3/bin/pip\" <<'EOF'\n{pip}EOF\n"
        'cp "$3/bin/pip" "$3/bin/python"\n'
        'chmod +x "$3/bin/pip" "$3/bin/python"\n'
    )
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    return stub, log


def test_install_sh_installs_the_locked_dependencies_then_the_app_alone(tmp_path: Path) -> None:
    python, log = _stub_python(tmp_path)
    dest = tmp_path / "root"
    env = {**os.environ, "DESTDIR": str(dest), "INSTALL_APP": "1", "PYTHON": str(python)}
    done = subprocess.run(
        ["bash", str(REPO / "deploy" / "install.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    calls = [line.split("|") for line in log.read_text().splitlines()]
    installs = [(args, git) for args, git in calls if args.startswith("install")]
    deps = [a for a, _ in installs if "-r " in a]
    assert len(deps) == 1
    assert "--require-hashes" in deps[0] and f"-r {LOCK}" in deps[0]
    ((app, git_safe),) = [(a, g) for a, g in installs if a.endswith(f" {REPO}")]
    assert "--no-deps" in app.split()  # nothing resolved from the index for the app
    assert git_safe == str(REPO)  # root may read the owner's checkout for its version
    assert any(args.startswith("check") for args, _ in calls)
    assert (dest / "opt/okx-margin-reactor/docs/upgrading.md").is_file()
