"""Client-side pacing so the reactor stays inside OKX's documented limits.

OKX answers 50011 (REST) or refuses connections (WS) past its limits; waiting for a token is
cheaper and more predictable than being throttled and retrying.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class TokenBucket:
    """Sliding-window limiter: at most ``rate`` acquisitions in any ``per_s`` window.

    A sliding window (not a refilling bucket) matches how OKX counts requests, so a burst
    never exceeds the exchange's own count even at window edges.
    """

    def __init__(
        self, rate: int, per_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate < 1 or per_s <= 0:
            raise ValueError("rate must be >= 1 and per_s > 0")
        self.rate = rate
        self.per_s = per_s
        self._clock = clock
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()

    def delay(self) -> float:
        """Seconds until the next acquisition would be allowed (0 if now)."""
        now = self._clock()
        while self._stamps and now - self._stamps[0] >= self.per_s:
            self._stamps.popleft()
        if len(self._stamps) < self.rate:
            return 0.0
        return self._stamps[0] + self.per_s - now

    def try_acquire(self) -> bool:
        if self.delay() > 0:
            return False
        self._stamps.append(self._clock())
        return True

    async def acquire(self) -> float:
        """Wait for a slot; returns the seconds waited. FIFO among waiters."""
        waited = 0.0
        async with self._lock:
            while True:
                d = self.delay()
                if d <= 0:
                    self._stamps.append(self._clock())
                    return waited
                # A small margin so a slightly coarse clock never lets us in early.
                await asyncio.sleep(d + 0.005)
                waited += d + 0.005


class ConnectPacer(TokenBucket):
    """Shared by every account's session: OKX allows 3 new connections per second per IP."""

    def __init__(
        self, rate: int = 3, per_s: float = 1.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(rate, per_s, clock=clock)
