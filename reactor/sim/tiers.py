"""Position tiers: the maintenance rate and maximum leverage step up with the position size.

OKX ``GET /api/v5/public/position-tiers`` (DOC; sizes in contracts for SWAP) gives each tier
``minSz``/``maxSz``, ``mmr`` and ``maxLever``; a larger position sits in a higher tier with a
higher maintenance rate. Liquidation of a position above the first tier is partial: OKX
reduces it tier by tier (docs/spec/okx-fidelity.md §6; DOC positions-history ``type`` 4 "Partial
liquidation", bills subType 100/101). An instrument without tiers has one tier with its flat
``mmrRate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Tier:
    max_sz: Decimal  # contracts, inclusive
    mmr: Decimal
    max_lever: Decimal


def tier_index(tiers: Sequence[Tier], size: Decimal) -> int:
    """The tier holding ``size`` contracts; sizes beyond the last tier stay in the last."""
    for i, t in enumerate(tiers):
        if size <= t.max_sz:
            return i
    return len(tiers) - 1


def mmr_rate(tiers: Sequence[Tier], size: Decimal, flat: Decimal) -> Decimal:
    return tiers[tier_index(tiers, size)].mmr if tiers else flat


def partial_target(tiers: Sequence[Tier], size: Decimal) -> Decimal | None:
    """The size a partial liquidation reduces ``size`` to (the top of the tier below), or
    None when the position is in the first tier and is liquidated in full."""
    if not tiers:
        return None
    i = tier_index(tiers, size)
    return tiers[i - 1].max_sz if i > 0 else None


def exceeds_limits(tiers: Sequence[Tier], size: Decimal, lever: Decimal) -> bool:
    """True when ``size`` contracts at ``lever`` is beyond what the tiers allow (OKX 51004)."""
    if not tiers:
        return False
    if size > tiers[-1].max_sz:
        return True
    return lever > tiers[tier_index(tiers, size)].max_lever
