"""File-descriptor limits: raise the soft RLIMIT_NOFILE at start, name EMFILE when it happens.

Every account holds a WebSocket and a pooled HTTPS connection (plus one per in-flight call), so
500 accounts hold over 1,000 descriptors at rest. systemd's default soft limit (1024) makes a
burst of corrections fail with httpx's misleading "All connection attempts failed"; the units
set ``LimitNOFILE=`` and :func:`raise_nofile_limit` lifts the soft limit to the hard one, which
needs no privilege. :func:`log_if_emfile` is for the places that catch connection errors: it
finds EMFILE anywhere in the exception chain and logs ``process.fd.exhausted`` by name.
"""

from __future__ import annotations

import errno
import os
import resource
import time
from typing import Any

from reactor.log import get_logger

log = get_logger("reactor.fdlimit")

# Descriptors per account docs/operations.md budgets for (WebSocket, REST pool, calls in flight).
FDS_PER_ACCOUNT = 4
FDS_BASE = 64  # SQLite, status server, listeners, stdio


def recommended_nofile(accounts: int) -> int:
    """Descriptors a reactor with ``accounts`` accounts should be allowed to open."""
    return FDS_BASE + FDS_PER_ACCOUNT * max(accounts, 0)


def raise_nofile_limit(accounts: int = 0) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the (soft, hard) now in force.

    Logs ``process.fd.limit`` once: info normally, warning when even the hard limit is below
    :func:`recommended_nofile` for ``accounts`` (then raise ``LimitNOFILE`` in the unit).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = soft
    target = hard
    if hard == resource.RLIM_INFINITY:
        # An unlimited hard limit: the kernel still caps at fs.nr_open.
        target = _nr_open() or max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or (target != resource.RLIM_INFINITY and soft >= target):
        target = soft
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("process.fd.limit", soft=soft, hard=hard, error=str(exc))
            return soft, hard
    needed = recommended_nofile(accounts)
    fields: dict[str, Any] = {"soft_before": before, "soft": soft, "hard": hard}
    if accounts:
        fields.update(accounts=accounts, recommended=needed)
    if accounts and soft != resource.RLIM_INFINITY and soft < needed:
        log.warning("process.fd.limit", **fields, reason="below recommended: raise LimitNOFILE")
    else:
        log.info("process.fd.limit", **fields)
    return soft, hard


def _nr_open() -> int | None:
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def open_fds() -> int | None:
    """Descriptors this process holds now (Linux); None where /proc is not available or when
    listing it needs the descriptor that is missing (EMFILE)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def is_emfile(exc: BaseException | None) -> bool:
    """True when EMFILE (or ENFILE) is anywhere in ``exc``'s cause/context chain or group."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc] if exc is not None else []
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.EMFILE, errno.ENFILE):
            return True
        if "Too many open files" in str(e):
            return True
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                stack.append(nxt)
    return False


class EmfileReporter:
    """Logs ``process.fd.exhausted`` for EMFILE, at most once per ``interval_s`` (a burst of
    2,000 failing calls is one line with a count, not 2,000)."""

    def __init__(self, interval_s: float = 10.0, clock: Any = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._last: float | None = None
        self._suppressed = 0

    def report(self, exc: BaseException | None, **fields: Any) -> bool:
        """Log when ``exc`` is EMFILE; True when it was (logged or counted)."""
        if not is_emfile(exc):
            return False
        now = self._clock()
        if self._last is not None and now - self._last < self._interval_s:
            self._suppressed += 1
            return True
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        log.error(
            "process.fd.exhausted",
            **fields,
            open_fds=open_fds(),
            soft=soft,
            hard=hard,
            suppressed=self._suppressed,
            error=str(exc)[:200],
        )
        self._last = now
        self._suppressed = 0
        return True


_REPORTER = EmfileReporter()


def log_if_emfile(exc: BaseException | None, **fields: Any) -> bool:
    """Module-level :class:`EmfileReporter`: call it where connection errors are caught."""
    return _REPORTER.report(exc, **fields)
