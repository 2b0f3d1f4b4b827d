"""The engine shell's wake-ups, one per position, on the event loop.

A wake-up due now is not put behind the loop's other work: it is handed back as a
:class:`WakeNow` for the batch of commands being carried out, so a correction decided by a
push is journaled and its send task started in the push's own callback (a loop iteration later
it waited behind other callbacks: 0.65 ms of the own share's median, docs/performance.md).
Once per position and loop iteration, so a core that re-arms at once cannot hold the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from reactor.okx.models import PositionKey


class WakeNow:
    """A position's wake-up due at once, carried out in the current batch; stale once replaced
    or cancelled (:meth:`PositionTimers.take`)."""

    __slots__ = ("key",)

    def __init__(self, key: PositionKey) -> None:
        self.key = key

    def cancel(self) -> None:
        """Nothing to undo: :meth:`PositionTimers.take` finds it gone."""


class PositionTimers:
    """At most one pending wake-up per position: a loop timer, or a :class:`WakeNow`."""

    def __init__(self, fire: Callable[[PositionKey], None], clock: Callable[[], float]) -> None:
        self._fire = fire
        self._clock = clock
        self._pending: dict[PositionKey, asyncio.TimerHandle | WakeNow] = {}
        self._woken_now: set[PositionKey] = set()  # this loop iteration's
        self._loop: asyncio.AbstractEventLoop | None = None

    def set(self, key: PositionKey, at: float) -> list[WakeNow] | None:
        """Wake ``key`` at ``at`` (engine clock), replacing its pending wake-up; a wake-up due
        now comes back for the caller's batch."""
        self.discard(key)
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        delay = at - self._clock()
        if delay <= 0 and key not in self._woken_now:
            if not self._woken_now:
                self._loop.call_soon(self._woken_now.clear)
            self._woken_now.add(key)
            wake = self._pending[key] = WakeNow(key)
            return [wake]
        self._pending[key] = self._loop.call_later(max(delay, 0.0), self._fire, key)
        return None

    def take(self, wake: WakeNow) -> bool:
        """Whether ``wake`` is still the position's pending wake-up (then it is due now)."""
        if self._pending.get(wake.key) is not wake:
            return False
        del self._pending[wake.key]
        return True

    def discard(self, key: PositionKey) -> None:
        """Cancel ``key``'s pending wake-up, if any (also: it fired)."""
        pending = self._pending.pop(key, None)
        if pending is not None:
            pending.cancel()

    def cancel_all(self) -> None:
        for pending in self._pending.values():
            pending.cancel()
        self._pending.clear()
