"""The funding clock: when each instrument settles funding (no I/O; the server sleeps on it).

OKX settles perpetual funding at fixed UTC times: every 8 h at 00:00, 08:00 and 16:00, every
4 h or 2 h on some contracts (okx.com/help/360053909272, docs/spec/okx-fidelity.md §11.2.2).
Settlement times are therefore multiples of the interval since the Unix epoch, and every instrument
with
the same interval settles at the same instant, for every position of every account. Since
2024-07-01 the payment on an isolated position is taken from, or credited to, its margin
(FUND-2024); :meth:`reactor.sim.exchange.Exchange.settle_funding` applies it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class FundingTerms:
    """One instrument's funding: the rate per settlement and the seconds between them."""

    rate: Decimal
    interval_s: float


def next_settlement(now_s: float, interval_s: float) -> float:
    """The first settlement strictly after ``now_s`` (epoch-aligned, as OKX's UTC hours)."""
    return (math.floor(now_s / interval_s) + 1) * interval_s


class FundingClock:
    """Which instruments settle when; instruments with a zero rate never settle."""

    def __init__(self, terms: dict[str, FundingTerms], now_s: float) -> None:
        self._terms = {k: t for k, t in terms.items() if t.rate != 0}
        self._next = {k: next_settlement(now_s, t.interval_s) for k, t in self._terms.items()}

    def due_at(self) -> float | None:
        """The wall time of the next settlement (None: no instrument has funding)."""
        return min(self._next.values(), default=None)

    def take_due(self, now_s: float) -> list[str]:
        """Instruments whose settlement time has come (each once per settlement time, missed
        ones skipped rather than bursting after a stall), in a stable order."""
        due = sorted(k for k, at in self._next.items() if at <= now_s)
        for k in due:
            self._next[k] = next_settlement(now_s, self._terms[k].interval_s)
        return due

    def instruments(self) -> Iterable[str]:
        return self._terms.keys()
