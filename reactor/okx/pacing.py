"""Client-side pacing so the reactor stays inside OKX's documented limits.

OKX answers 50011 (REST) or refuses connections (WS) past its limits; waiting for a slot is
cheaper and more predictable than being throttled and retrying.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

_POLL_S = 0.02


class SlidingWindow:
    """At most ``rate`` requests in any ``per_s`` window.

    A sliding window (not a refilling bucket) matches how OKX counts, so the simulator counts
    with it too (``try_acquire``: refuse past the limit instead of waiting). With :meth:`slot`, a
    request counts from when it is sent until ``per_s`` after its answer: the exchange counts
    it on arrival, somewhere in between, so network jitter can never push us over its count.
    """

    def __init__(
        self, rate: int, per_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate < 1 or per_s <= 0:
            raise ValueError("rate must be >= 1 and per_s > 0")
        self.rate = rate
        self.per_s = per_s
        self._clock = clock
        self._done: deque[float] = deque()  # completion times, ascending
        self._pending = 0
        self._lock = asyncio.Lock()

    def delay(self, now: float | None = None) -> float:
        """Seconds until the next request may start (0 if now)."""
        if now is None:
            now = self._clock()
        done = self._done
        while done and now - done[0] >= self.per_s:
            done.popleft()
        if len(done) + self._pending < self.rate:
            return 0.0
        if done:
            return max(done[0] + self.per_s - now, 0.001)
        return _POLL_S  # every slot is in flight: wait for one to finish

    def try_acquire(self, now: float | None = None) -> bool:
        """Count a request at ``now`` (default: the clock) if the window has room."""
        if now is None:
            now = self._clock()
        if self.delay(now) > 0:
            return False
        self._done.append(now)
        return True

    async def _wait(self) -> float:
        waited = 0.0
        while (d := self.delay()) > 0:
            await asyncio.sleep(d)
            waited += d
        return waited

    async def acquire(self) -> float:
        """Wait for a slot and count an instantaneous event now; returns seconds waited."""
        async with self._lock:  # FIFO among waiters
            waited = await self._wait()
            self._done.append(self._clock())
            return waited

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Hold a slot for the duration of a request; yields the seconds waited."""
        async with self._lock:
            waited = await self._wait()
            self._pending += 1
        try:
            yield waited
        finally:
            self._pending -= 1
            self._done.append(self._clock())


class ConnectPacer(SlidingWindow):
    """Shared by every account's session: OKX allows 3 new connections per second per IP."""

    def __init__(
        self, rate: int = 3, per_s: float = 1.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(rate, per_s, clock=clock)
