"""A throwaway PostgreSQL for the tests: ONE cluster per pytest run, a fresh database per test.

``initdb`` refuses to run as root, so as root the cluster is made and started as the Debian
``postgres`` user, under a ``/tmp`` directory chowned to it (pytest's ``tmp_path`` lives in a
0700 directory postgres cannot enter). It listens on a unix socket only, fsync off: the tests
prove behaviour, not durability (ha.md §4 has the measured recipe).

Without PostgreSQL's binaries the tests that need it are skipped with the apt command, except
under ``CI=true``, where they fail: a CI machine installs ``postgresql`` (``.ci/run``), and a
silent skip there would hide the whole backend.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_BIN_ENV = "REACTOR_PG_BIN"  # a directory holding initdb and pg_ctl, when not the Debian one
_PORT = 5499  # unix socket only: the port merely names the socket file in our own directory
_USER = "reactor"


def find_pg_bin() -> Path | None:
    """The directory with ``initdb`` and ``pg_ctl``: $REACTOR_PG_BIN, Debian's newest, PATH."""
    candidates: list[Path] = []
    if os.environ.get(_BIN_ENV):
        candidates.append(Path(os.environ[_BIN_ENV]))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    return None


def _as_postgres() -> dict[str, Any]:
    """subprocess arguments that drop root to the postgres user (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


class PgCluster:
    """One running cluster: ``dsn(db)`` for a database on it, ``freeze()``/``thaw()`` for
    fault tests (SIGSTOP of the postmaster and every backend: a hung server)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="pgfix-", dir="/tmp"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self._names = itertools.count(1)
        self._options = ""
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        proc = subprocess.run(
            args, capture_output=True, text=True, timeout=60, check=False, **_as_postgres()
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])}: {proc.stderr.strip() or proc.stdout}")

    def start(self, *, durable: bool = False) -> None:
        """``durable``: fsync and synchronous commit on, as in production (benchmarks)."""
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            _USER,
            "--no-sync",
            "--no-instructions",
        )
        fast = "" if durable else " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._options = (
            f"-k {self.socket_dir} -c listen_addresses='' -p {_PORT}{fast} -c max_connections=200"
        )
        self.start_server()

    def start_server(self) -> None:
        """(Re)start the initialised cluster's server: after :meth:`stop_server`."""
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-s",
            "-o",
            self._options,
            "start",
        )

    def stop_server(self) -> None:
        """``pg_ctl stop -m fast``: the database is down (every session ended), data kept."""
        pg_ctl = str(self.bin_dir / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-w", "-s", "-m", "fast", "stop")

    def stop(self) -> None:
        try:
            self.thaw()
            if (self.data / "postmaster.pid").exists():  # not already stopped by a test
                pg_ctl = str(self.bin_dir / "pg_ctl")
                self._run(pg_ctl, "-D", str(self.data), "-w", "-s", "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={_PORT} user={_USER} dbname={dbname}"

    def create_database(self) -> str:
        """A fresh, empty database; returns its DSN."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        import psycopg

        name = dsn.rsplit("dbname=", 1)[1]
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def pids(self) -> list[int]:
        """The postmaster and all its children (backends, background workers)."""
        head = (self.data / "postmaster.pid").read_text().split("\n", 1)[0]
        master = int(head)
        children = Path(f"/proc/{master}/task/{master}/children")
        kids = [int(p) for p in children.read_text().split()] if children.exists() else []
        return [master, *kids]

    def freeze(self) -> None:
        for pid in self.pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        try:
            pids = self.pids()
        except (OSError, ValueError):
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: .ci/run installs postgresql)", pytrace=False)
    pytest.skip(f"{reason}: `apt-get install postgresql` enables the PostgreSQL tests")


@contextlib.contextmanager
def own_cluster() -> Iterator[PgCluster]:
    """A started cluster of one's own (skipped without PostgreSQL, as :func:`pg_cluster`):
    for tests that freeze or stop the server, which must not take the session's down."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        _missing("PostgreSQL binaries (initdb, pg_ctl) not found")
    assert bin_dir is not None
    try:
        import psycopg  # noqa: F401
    except ImportError:  # pragma: no cover - a dependency of the package
        _missing("psycopg not installed")
    cluster = PgCluster(bin_dir)
    try:
        cluster.start()
    except BaseException:
        shutil.rmtree(cluster.root, ignore_errors=True)
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The session's cluster, started on first use (a run without PG tests starts nothing)."""
    with own_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_dsn(pg_cluster: PgCluster) -> Iterator[str]:
    """A DSN to a fresh, empty database on the session's cluster (dropped afterwards)."""
    dsn = pg_cluster.create_database()
    yield dsn
    pg_cluster.drop_database(dsn)
