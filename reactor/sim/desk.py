"""A simulated trading desk: market orders on the demo positions every few seconds (no I/O).

The demo book would otherwise be corrected once and then sit still, and a newcomer running
``make run`` would never see what the reactor is for: a desk's fills moving isolated margin
out of band. Each decision picks one open isolated position of a desk account and either

- a *maintenance* fill (most of them): an increasing order tagged ``tag`` (``maint``), the way
  the desk marks its maintenance orders (the reactor's ``maintenance.detect: {tag: maint}``
  counts them); the fill adds its initial margin, as OKX's isolated mechanics do;
- a *plain* fill: untagged, half the time increasing the position, half the time reducing
  part of it (margin released pro rata, so the margin drops below the band; never a close).

Sizes are a percentage of the position's size when the desk first saw it, in whole lots, so a
fill moves the margin by a few USDT whatever the instrument. A position already grown past
``max_growth`` times that size gets a plain reduce instead, so the book stays bounded over a
long run. The orders go through the exchange's order path (:func:`reactor.sim.trade_endpoints.
fill`): the same checks, bills, ``orders`` push and ``positions`` event as a REST order.

The schedule is a plain "next at" time against an injected clock; the server's loop sleeps
until :meth:`Desk.due_in` and calls :meth:`Desk.poll`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from reactor.sim.exchange import Exchange, SimPosition
from reactor.sim.orders import OrderRequest
from reactor.sim.scenario import DeskSpec


@dataclass(frozen=True)
class DeskOrder:
    account: str
    request: OrderRequest
    maintenance: bool  # tagged as the desk tags its maintenance orders


class Desk:
    """Decides the desk's next order; the caller places it and reports nothing back."""

    def __init__(self, exchange: Exchange, spec: DeskSpec, now: float) -> None:
        self.exchange = exchange
        self.spec = spec
        first = spec.first_after_s if spec.first_after_s is not None else spec.interval_s
        self.next_at = now + first
        self._rng = random.Random(spec.seed)
        self._seq = 0
        self._base: dict[tuple[str, str, str, str], Decimal] = {}
        wanted = set(spec.accounts) if spec.accounts is not None else None
        self.accounts = [
            a.name
            for a in exchange.accounts.values()
            if (a.name in wanted if wanted is not None else not a.main)
        ]

    def due_in(self, now: float) -> float:
        return max(0.0, self.next_at - now)

    def poll(self, now: float) -> DeskOrder | None:
        """The order due at ``now`` (at most one; a late call does not catch up)."""
        if now < self.next_at:
            return None
        self.next_at = now + self.spec.interval_s
        return self.decide()

    def decide(self) -> DeskOrder | None:
        """One order on a random open isolated position of a desk account (None: none open)."""
        candidates = [
            (name, p)
            for name in self.accounts
            for p in sorted(self.exchange.accounts[name].positions.values(), key=lambda p: p.key)
            if p.mgn_mode == "isolated" and p.pos != 0
        ]
        if not candidates:
            return None
        name, p = self._rng.choice(candidates)
        lot = self.exchange.instruments[p.inst_id].lot_sz
        held = abs(p.pos)
        base = self._base.setdefault((name, *p.key), held)
        pct = Decimal(self._rng.randint(self.spec.size_pct[0], self.spec.size_pct[1]))
        sz = max(lot, (base * pct / 100 / lot).to_integral_value(ROUND_FLOOR) * lot)
        grown = held >= base * self.spec.max_growth
        maintenance = self._rng.random() < self.spec.maint_share and not grown
        if maintenance:
            increase = True
        else:  # plain: reduce part of it (never all), or add; always reduce a grown one
            increase = not grown and self._rng.random() < 0.5
            if held <= lot:
                increase = True
            if not increase:
                sz = min(sz, held - lot)
        self._seq += 1
        return DeskOrder(name, self._request(p, sz, increase, maintenance), maintenance)

    def _request(
        self, p: SimPosition, sz: Decimal, increase: bool, maintenance: bool
    ) -> OrderRequest:
        long_side = not p.short
        side = "buy" if increase == long_side else "sell"
        return OrderRequest(
            inst_id=p.inst_id,
            td_mode="isolated",
            side=side,
            pos_side=p.pos_side,
            ord_type="market",
            sz=sz,
            px=None,
            cl_ord_id=f"desk{self._seq}",
            tag=self.spec.tag if maintenance else "",
            reduce_only=not increase and p.pos_side == "net",
        )
