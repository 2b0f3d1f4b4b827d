"""The demo price walk: bounded random mark-price steps (no I/O; the server schedules it)."""

from __future__ import annotations

import random
from decimal import Decimal

from reactor.sim.exchange import Change, Exchange
from reactor.sim.scenario import PriceWalkSpec


class PriceWalk:
    """Each :meth:`step` moves every mark price by at most ``max_step_pct`` percent."""

    def __init__(self, exchange: Exchange, spec: PriceWalkSpec | None) -> None:
        self.exchange = exchange
        self.interval_s = spec.interval_s if spec else 1.0
        self._max_step = (spec.max_step_pct if spec else Decimal("0.2")) / 100
        self._rng = random.Random(spec.seed if spec else None)

    def step(self) -> list[Change]:
        """One step over every instrument; the changes it caused (liquidations, if any)."""
        changes: list[Change] = []
        for inst in list(self.exchange.instruments.values()):
            step = Decimal(self._rng.randint(-1000, 1000)) / 1000 * self._max_step
            px = (inst.mark_px * (1 + step)).quantize(inst.tick_sz)
            if px > 0:
                changes.extend(self.exchange.set_mark_price(inst.inst_id, px))
        return changes
