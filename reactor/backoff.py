"""The one capped exponential back-off, used by every retry loop (engine positions, the
WebSocket reconnect, REST GET retries and clock resyncs, start-up retries).

Each caller keeps its own numbers and its own jitter: the engine jitters downwards (many
positions must not retry in step), the reconnect fully (accounts do not stampede), start-up
by half, REST retries around the nominal delay, the clock resync not at all (:meth:`ceiling`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """``base_s * 2 ** (attempt - 1)`` capped at ``max_s``, times a factor drawn uniformly from
    ``jitter``. The exponent stops at ``max_exponent`` so a long outage cannot overflow."""

    base_s: float
    max_s: float = math.inf
    jitter: tuple[float, float] = (1.0, 1.0)
    max_exponent: int = 64

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay before attempt ``attempt + 1`` (``attempt`` >= 1 failures)."""
        exponent = min(max(attempt - 1, 0), self.max_exponent)
        return min(self.max_s, self.base_s * 2.0**exponent)

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The jittered delay; ``rand`` returns a float in [0, 1) (tests pass a fixed one)."""
        low, high = self.jitter
        return self.ceiling(attempt) * (low + (high - low) * rand())
