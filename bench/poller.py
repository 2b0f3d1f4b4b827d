"""The old design, kept as a baseline: a 5-minute poller with a guessed reduce limit.

What it does, faithfully to the tool the reactor replaces:
- every ``interval_s`` (300 s in real time) it reads each account's positions over REST;
- for each isolated USDT swap with margin ``m`` outside the band of target ``t`` (count 0:
  10 U, band 9.5-10.5 - the old tool had no durable maintenance count either):
  - ``m > hi``: reduce ``min(5, m - t, m - old_floor)``, rounded down to 0.01, where the old
    safety formula is ``old_floor = |pos| * markPx / lever`` - the initial margin computed from
    a notional *without ctVal*, with no unrealised loss and no maintenance buffer;
  - ``m < lo``: add ``t - m`` (rounded up to 0.01);
  - amounts below 0.1 U are skipped;
- positions are handled one after another; an error (59301 included) is counted and the
  position is simply tried again next round: no step halving, no awareness of the cause.

With ``counts`` (the maintenance scenario) the poller reads each position's maintenance count
at its round, as the old tool read its counter, and aims at that count's target and band.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from reactor.okx.errors import AmbiguousOutcome, OkxError, RequestNotSent
from reactor.okx.rest import OkxRestClient

MAX_STEP = Decimal(5)
# The desk's targets by maintenance count: (min_count, target, band low, band high).
TARGETS = [
    (0, Decimal(10), Decimal("9.5"), Decimal("10.5")),
    (2, Decimal(20), Decimal(19), Decimal(21)),
    (3, Decimal(30), Decimal("28.5"), Decimal("31.5")),
]
CountSource = Callable[[str, Mapping[str, Any]], int]
MIN_AMOUNT = Decimal("0.1")
STEP = Decimal("0.01")


@dataclass
class PollerStats:
    rounds: int = 0
    calls: int = 0
    codes: Counter[str] = field(default_factory=Counter)


def old_floor(raw: Mapping[str, Any]) -> Decimal:
    """The old tool's safety floor: initial margin from a notional that forgot ctVal."""
    return abs(Decimal(raw["pos"])) * Decimal(raw["markPx"]) / Decimal(raw["lever"])


def old_decision(
    raw: Mapping[str, Any],
    target: Decimal = Decimal(10),
    lo: Decimal = Decimal("9.5"),
    hi: Decimal = Decimal("10.5"),
) -> tuple[str, Decimal] | None:
    """(``"add"``/``"reduce"``, amount) for one REST position, or None."""
    if raw.get("mgnMode") != "isolated" or raw.get("pos") in ("", "0", None):
        return None
    m = Decimal(raw["margin"])
    if m > hi:
        amount = min(MAX_STEP, m - target, m - old_floor(raw))
        amount = amount.quantize(STEP, rounding=ROUND_FLOOR)
        kind = "reduce"
    elif m < lo:
        amount = (target - m).quantize(STEP, rounding=ROUND_CEILING)
        kind = "add"
    else:
        return None
    return (kind, amount) if amount >= MIN_AMOUNT else None


class OldPoller:
    """Runs rounds every ``interval_s``; the first one ``first_after_s`` after :meth:`run`."""

    def __init__(
        self,
        clients: Mapping[str, OkxRestClient],
        *,
        interval_s: float = 300.0,
        first_after_s: float = 0.0,
        counts: CountSource | None = None,
    ) -> None:
        self.clients = dict(clients)
        self.counts = counts
        self.interval_s = interval_s
        self.first_after_s = first_after_s
        self.stats = PollerStats()

    async def run_round(self) -> None:
        self.stats.rounds += 1
        for name, client in self.clients.items():
            try:
                positions = await client.get_positions("SWAP")
            except (OkxError, RequestNotSent, AmbiguousOutcome):
                continue  # next round
            for raw in positions:
                count = self.counts(name, raw) if self.counts is not None else 0
                _, target, lo, hi = [t for t in TARGETS if t[0] <= count][-1]
                decision = old_decision(raw, target, lo, hi)
                if decision is None:
                    continue
                kind, amount = decision
                self.stats.calls += 1
                try:
                    await client.margin_balance(raw["instId"], raw["posSide"], kind, amount)
                except OkxError as exc:
                    self.stats.codes[exc.code] += 1
                except (RequestNotSent, AmbiguousOutcome):
                    self.stats.codes["transport"] += 1
                else:
                    self.stats.codes["0"] += 1

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self.first_after_s
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            await self.run_round()
            next_at += self.interval_s
