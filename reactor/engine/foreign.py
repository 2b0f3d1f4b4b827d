"""Pure: holding a position that someone else keeps moving (the second fence against a second
controller; the first is the state-dir lock).

Two reactors with different state dirs on one account fight: each undoes the other's transfer.
Fighting back is the wrong answer, so ``limit`` foreign transfers on an instrument of an account
within ``window_s`` put its positions on hold. Bills carry no ``posSide`` (docs/spec/okx-fidelity.md
§5.1), so the unit is (account, instId).

The hold ends by itself once ``window_s`` passes without a foreign transfer (the other
controller was stopped, or a person finished by hand): an operator is paged by the hold event
but does not have to come back to release it, and a restart releases it too. While the other
controller runs, it ends nothing: after a release the position is on probation for another
window, and one foreign transfer in it holds the position again at once, so a tug of war
costs at most one transfer per side per window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

Unit = tuple[str, str]  # (account, instId)


@dataclass(slots=True)
class _Watch:
    seen: deque[float] = field(default_factory=deque)  # arrival times within the window
    held_since: float | None = None
    last_foreign: float = -1e18
    probation_until: float = -1e18
    total: int = 0


class ForeignWatch:
    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = max(1, limit)
        self.window_s = window_s
        self._units: dict[Unit, _Watch] = {}

    def record(self, unit: Unit, now: float) -> bool:
        """A foreign transfer arrived; True when it starts a hold."""
        w = self._units.setdefault(unit, _Watch())
        w.total += 1
        w.last_foreign = now
        w.seen.append(now)
        while w.seen and now - w.seen[0] > self.window_s:
            w.seen.popleft()
        if w.held_since is not None:
            return False
        if len(w.seen) >= self.limit or now < w.probation_until:
            w.held_since = now
            return True
        return False

    def held(self, unit: Unit) -> bool:
        w = self._units.get(unit)
        return w is not None and w.held_since is not None

    def release_due(self, unit: Unit) -> float | None:
        """When the hold ends if nothing foreign comes (None: not held)."""
        w = self._units.get(unit)
        if w is None or w.held_since is None:
            return None
        return w.last_foreign + self.window_s

    def try_release(self, unit: Unit, now: float) -> bool:
        """End the hold when the window passed quietly; True when it ended now."""
        due = self.release_due(unit)
        if due is None or now < due:
            return False
        w = self._units[unit]
        w.held_since = None
        w.seen.clear()
        w.probation_until = now + self.window_s
        return True

    def count(self, unit: Unit) -> int:
        """Foreign transfers seen on the unit since start-up."""
        w = self._units.get(unit)
        return 0 if w is None else w.total

    def recent(self, unit: Unit) -> int:
        w = self._units.get(unit)
        return 0 if w is None else len(w.seen)

    def held_units(self) -> list[Unit]:
        return [u for u, w in self._units.items() if w.held_since is not None]
