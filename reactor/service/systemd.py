"""sd_notify(3) over a plain unix datagram socket: readiness, status and the watchdog.

No python-systemd dependency: the protocol is one datagram of ``KEY=VALUE`` lines sent to the
socket named by ``NOTIFY_SOCKET``. Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op,
so the reactor runs the same under a terminal, a test or a unit.

The watchdog is pinged from the asyncio event loop on purpose: if the loop is stuck (a blocking
call, a busy handler) the pings stop and systemd restarts the service, which is the point.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from reactor.log import error_text, get_logger

if TYPE_CHECKING:
    from reactor.status.model import StatusSnapshot

log = get_logger(__name__)


class SystemdNotifier:
    """Sends sd_notify messages to ``NOTIFY_SOCKET``; silent when it is unset.

    ``env`` defaults to ``os.environ``; tests pass their own mapping.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env: Mapping[str, str] = os.environ if env is None else env
        raw = self._env.get("NOTIFY_SOCKET", "")
        self._address: str | None = None
        if raw.startswith("@"):
            # Abstract namespace socket: systemd writes '@', the kernel wants a leading NUL.
            self._address = "\0" + raw[1:]
        elif raw.startswith("/"):
            self._address = raw
        elif raw:
            # vsock ("vsock:CID:PORT") and other forms are not used by a plain unit.
            log.warning("systemd.notify.failed", reason="unsupported NOTIFY_SOCKET", socket=raw)
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        """True when running under a unit that listens for notifications."""
        return self._address is not None

    def notify(self, *lines: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; False when disabled or the send failed.

        Failures are logged, never raised: a lost notification must not take the reactor down.
        """
        if self._address is None or not lines:
            return False
        payload = "\n".join(lines).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            log.warning("systemd.notify.failed", reason=str(exc), message=lines[0])
            self.close()
            return False
        return True

    def ready(self, status: str = "") -> None:
        """Tell systemd start-up is complete (``Type=notify`` waits for this)."""
        lines = ["READY=1"]
        if status:
            lines.append(_status_line(status))
        self.notify(*lines)

    def reloading(self) -> None:
        """A reload has begun (``RELOADING=1``; ``MONOTONIC_USEC`` as ``Type=notify-reload``
        requires): systemd shows the unit "reloading" until :meth:`ready` or :meth:`reloaded`."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def reloaded(self, status: str, refused: str | None = None) -> None:
        """The reload is over (``READY=1``); a refusal is named in ``STATUS=`` so
        ``systemctl status`` shows it, as ``systemctl reload`` itself cannot."""
        self.ready(f"{reload_refused_text(refused)}; {status}" if refused else status)

    def stopping(self) -> None:
        """Tell systemd a clean shutdown has begun, so it does not count it as a failure."""
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        """One keep-alive ping; must arrive at least every ``WatchdogSec``."""
        self.notify("WATCHDOG=1")

    def status(self, text: str) -> None:
        """Free-form one-line status shown by ``systemctl status``."""
        self.notify(_status_line(text))

    def watchdog_interval_s(self) -> float | None:
        """Ping period in seconds (half of ``WATCHDOG_USEC``), or None when no watchdog is armed.

        ``WATCHDOG_PID``, when set, names the process the watchdog is meant for; another process
        (e.g. a child that inherited the environment) must not ping on its behalf.
        """
        if self._address is None:
            return None
        pid = self._env.get("WATCHDOG_PID", "")
        if pid:
            try:
                if int(pid) != os.getpid():
                    return None
            except ValueError:
                return None
        try:
            usec = int(self._env.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        if usec <= 0:
            return None
        return usec / 2 / 1_000_000

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _status_line(text: str) -> str:
    # A newline would start a new KEY=VALUE assignment; keep STATUS to one line.
    return "STATUS=" + " ".join(text.splitlines())


def reload_refused_text(error: str) -> str:
    """The ``STATUS=`` prefix a refused reload leaves until the next reload is applied."""
    return "reload refused: " + " ".join(error.split())[:200]


def status_text(snap: StatusSnapshot, *, dry_run: bool = False) -> str:
    """One line for ``systemctl status``, from the same snapshot as ``/api/status``:
    ``498/500 live, 2 stopped, 3 adjusting`` (then blocked, paused, ledger failing, dry run;
    parts that are zero are left out, except the live count)."""
    enabled = [a for a in snap.accounts if a.enabled]
    live = sum(1 for a in enabled if a.stopped_reason is None and a.connected and a.fresh)
    stopped = sum(1 for a in enabled if a.stopped_reason is not None)
    down = len(enabled) - live - stopped
    statuses = [p.status for a in enabled for p in a.positions]
    parts = [f"{live}/{len(enabled)} live"]
    for n, what in (
        (stopped, "stopped"),
        (down, "connecting"),
        (statuses.count("adjusting"), "adjusting"),
        (statuses.count("blocked"), "blocked"),
        (sum(1 for a in enabled if a.paused is not None), "accounts paused"),
        (statuses.count("paused"), "positions paused"),
    ):
        if n:
            parts.append(f"{n} {what}")
    if not snap.storage_ok:
        parts.append("ledger failing")
    text = ", ".join(parts)
    return f"dry run: {text}" if dry_run else text


async def run_status(
    notifier: SystemdNotifier,
    text: Callable[[], str],
    interval_s: float = 2.0,
    wake: asyncio.Event | None = None,
) -> None:
    """Keep ``STATUS=`` current: send ``text()`` whenever it changed, checking every
    ``interval_s`` (or at once when ``wake`` is set); run until cancelled. No-op outside systemd.
    A failing ``text()`` is logged once per episode and retried, never fatal."""
    if not notifier.enabled:
        return
    last = ""
    failing = False
    while True:
        try:
            now = text()
            failing = False
        except Exception as exc:
            if not failing:
                log.error("systemd.status.failed", error=error_text(exc))
            failing = True
            now = last
        if now != last:
            notifier.status(now)
            last = now
        if wake is None:
            await asyncio.sleep(interval_s)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), interval_s)
        wake.clear()


async def run_watchdog(notifier: SystemdNotifier, is_healthy: Callable[[], bool]) -> None:
    """Ping the watchdog from the event loop while ``is_healthy()`` holds; run until cancelled.

    Returns at once when no watchdog is armed. While unhealthy (or when the check raises), the
    pings stop, so systemd restarts the service after ``WatchdogSec``; that is logged once per
    episode as ``systemd.watchdog.unhealthy``.
    """
    interval = notifier.watchdog_interval_s()
    if interval is None:
        return
    log.info("systemd.watchdog.started", interval_s=interval)
    unhealthy = False
    while True:
        try:
            healthy = is_healthy()
            reason = "" if healthy else "health check failed"
        except Exception as exc:  # a broken check must read as unhealthy, not kill the task
            healthy, reason = False, f"health check raised {type(exc).__name__}"
        if healthy:
            if unhealthy:
                log.info("systemd.watchdog.healthy")
            unhealthy = False
            notifier.watchdog()
        elif not unhealthy:
            unhealthy = True
            log.error("systemd.watchdog.unhealthy", reason=reason)
        await asyncio.sleep(interval)
