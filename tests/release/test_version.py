"""Versions come from git tags (setuptools-scm) and survive the trip through an sdist and a
wheel built from it without git: the release an operator installs says what it is."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

import reactor
from tests.paths import REPO

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "HOME": "/nonexistent",
    "PATH": "/usr/bin:/bin",
}


def _git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def _clean_clone(dest: Path) -> Path:
    """The tracked files of this tree (as they are now) in a fresh repository, one commit."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True
    ).stdout.split(b"\0")
    for raw in filter(None, files):
        name = raw.decode()
        src = REPO / name
        if not src.is_file():  # deleted in the work tree
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(src.read_bytes())
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "release")
    return dest


def _build(what: str, src: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "build", f"--{what}", "--no-isolation", "--outdir", str(out)],
        cwd=src,
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("*.tar.gz" if what == "sdist" else "*.whl")
    return built


def test_the_running_version_is_the_installed_distributions() -> None:
    assert reactor.__version__ == version("okx-margin-reactor")
    assert reactor.__version__ != "0.1.0"  # the old constant that never changed


def test_a_tag_is_the_version_in_the_sdist_and_in_a_wheel_built_from_it(tmp_path: Path) -> None:
    clone = _clean_clone(tmp_path / "clone")
    _git(clone, "tag", "-a", "v9.8.7", "-m", "v9.8.7")
    sdist = _build("sdist", clone, tmp_path / "dist")
    assert sdist.name == "okx_margin_reactor-9.8.7.tar.gz"

    # The sdist alone (no .git): the version is in its PKG-INFO, and so in the wheel.
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
        names = tar.getnames()
    assert "okx_margin_reactor-9.8.7/LICENSE" in names
    assert "okx_margin_reactor-9.8.7/CHANGELOG.md" in names
    assert "okx_margin_reactor-9.8.7/deploy/requirements.lock" in names
    unpacked = tmp_path / "unpacked" / "okx_margin_reactor-9.8.7"
    assert not (unpacked / ".git").exists()
    wheel = _build("wheel", unpacked, tmp_path / "wheel")
    assert wheel.name.startswith("okx_margin_reactor-9.8.7-")

    # A commit after the tag is a development version of the next one, never the tag again.
    (clone / "NOTE").write_text("after the release\n")
    _git(clone, "add", "NOTE")
    _git(clone, "commit", "-q", "-m", "after")
    later = _build("sdist", clone, tmp_path / "dist2")
    assert later.name.startswith("okx_margin_reactor-9.8.8.dev1+g"), later.name
