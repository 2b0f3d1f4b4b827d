"""Pure timing rules: when a position is evaluated next, and how long to back off."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reactor.engine.state import EngineSettings, PositionControl


def next_due(
    control: PositionControl, now: float, settings: EngineSettings, *, immediate: bool
) -> float | None:
    """When a change to this position should be evaluated; None: fold into the pending one.

    Leading edge: a change to a position with no margin call started within the debounce
    window is evaluated at once (the policy is cheap and pure); changes while a window is open
    fold into one trailing evaluation. Measured on the last call, not the last push, so
    routine mark-price pushes never delay a fix; single flight and the cooldown still rule out
    a second call for one burst.
    """
    if control.due_at is not None and not immediate:
        return None
    quiet = now - control.last_acted >= settings.debounce_s
    if immediate or settings.debounce_s == 0 or (settings.leading_edge and quiet):
        return now
    return now + settings.debounce_s


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential back-off with a downward jitter (many positions do not retry in step)."""

    base_s: float
    max_s: float

    def delay(self, failures: int, rand: Callable[[], float]) -> float:
        exponent = min(max(failures - 1, 0), 16)
        delay = min(self.max_s, self.base_s * 2.0**exponent)
        return delay * (0.75 + rand() / 4)


def backoff_for(settings: EngineSettings) -> Backoff:
    return Backoff(max(settings.cooldown_s, 0.1), settings.retry_max_s)
