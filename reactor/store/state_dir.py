"""The state directory: checked at start-up and held by exactly one ``reactor run``.

Two controllers on one ledger fight (paired double adds and reduces), so ``reactor run`` takes
an exclusive ``flock`` on ``reactor.lock`` before it opens the ledger and keeps it for its
lifetime. ``flock`` belongs to the open file, so the kernel releases it when the process
exits by any means (SIGKILL included): a stale lock file left behind is harmless, and its
content (pid, host, start time) only names the holder in the refusal.

The CLI's ``maintenance record`` does not take the lock: writing a maintenance record while
the reactor runs is the designed path (SQLite serialises it; the reactor polls for it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

__all__ = [
    "LEDGER_FILE",
    "LOCK_FILE",
    "RELOAD_RESULT_FILE",
    "StartupError",
    "StateDirError",
    "StateLock",
    "prepare_state_dir",
    "read_lock_holder",
    "read_reload_result",
    "write_reload_result",
]

LOCK_FILE = "reactor.lock"
LEDGER_FILE = "reactor.sqlite"  # the ledger (SQLite), shared by ``reactor run`` and the CLI
# The outcome of the last reload of the running reactor, for ``reactor reload`` (ExecReload=):
# systemd cannot be told that a reload failed (READY=1 has no failure form), its helper can.
RELOAD_RESULT_FILE = "reload-result.json"


class StartupError(Exception):
    """A problem found before the reactor runs; the CLI prints it as one line and exits 2."""


class StateDirError(StartupError):
    """The state dir is missing, unwritable, or held by another reactor."""


def prepare_state_dir(path: Path) -> None:
    """Make sure ``path`` is a writable directory, creating it (and parents) when missing."""
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise StateDirError(f"state_dir {path}: not writable")
        return
    if path.exists():
        raise StateDirError(f"state_dir {path}: exists and is not a directory")
    try:
        path.mkdir(mode=0o700, parents=True)
    except OSError as exc:
        raise StateDirError(
            f"state_dir {path}: missing and cannot be created: {exc.strerror}"
        ) from None


class StateLock:
    """An exclusive, non-blocking ``flock`` on ``<state_dir>/reactor.lock``."""

    def __init__(self, state_dir: Path, *, started: float | None = None) -> None:
        self.path = Path(state_dir) / LOCK_FILE
        self._fd: int | None = None
        self._started = time.time() if started is None else started  # shown to a refused 2nd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StateDirError` naming the holder."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateDirError(f"state_dir {self.path.parent}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StateDirError(
                f"state_dir {self.path.parent}: in use by another reactor ({holder}); "
                "one controller per account"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StateDirError(f"state_dir {self.path.parent}: lock: {exc.strerror}") from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._started)),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise StateDirError(f"state_dir {self.path.parent}: {exc.strerror}") from None
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (closing the file releases it; the file itself stays)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        info = json.loads(raw)
        return f"pid {info['pid']} on {info['host']} since {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def read_lock_holder(state_dir: Path) -> int | None:
    """The pid of the ``reactor run`` that holds the state dir, or None when none does (the
    lock is free: a stale file names nobody)."""
    path = Path(state_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            info = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
            pid = info.get("pid") if isinstance(info, dict) else None
            return pid if isinstance(pid, int) and pid > 0 else None
        return None  # we got the lock: nobody holds it
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def write_reload_result(state_dir: Path, result: dict[str, object]) -> None:
    """Replace the reload result atomically (a reader never sees half a file)."""
    path = Path(state_dir) / RELOAD_RESULT_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(result) + "\n")
    os.replace(tmp, path)


def read_reload_result(state_dir: Path) -> dict[str, object] | None:
    try:
        raw = json.loads((Path(state_dir) / RELOAD_RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None
