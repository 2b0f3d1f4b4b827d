"""The reduce limit (OKX 59301) and ``estAvailTrans``: how much isolated margin may leave.

OKX publishes no formula (docs/spec/okx-fidelity.md §4, DOC-TA "Increase/decrease margin" and "Get
leverage estimated info"); the only OKX-computed number is ``estAvailTrans``, "the maximum
quantity that can be transferred from the isolated position". The simulator therefore makes
the rule a scenario setting and derives both answers from one function, so a reduce is
accepted exactly when ``amt <= est_avail_trans`` (the property the tests check).

Variants (all **unknown** on OKX; the default is the strictest):

- ``im_basis``: initial margin at mark (the simulator's historical rule), at ``avgPx``
  (consistent with ``uplRatio`` and the HELP formula), or the larger of both;
- ``fee_reserve``: keep the taker fee of closing the whole position at mark;
- ``extra``: a further fixed reserve, to model an OKX that is stricter still;
- always: the unrealised loss counts, and the margin left must keep the position out of
  liquidation (``margin + upl >= mm`` with the tiered maintenance rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

ZERO = Decimal(0)

ImBasis = Literal["mark", "avgPx", "max"]


@dataclass(frozen=True)
class ReduceRule:
    im_basis: ImBasis = "max"
    fee_reserve: bool = True
    extra: Decimal = ZERO

    @classmethod
    def lenient(cls) -> ReduceRule:
        """The simulator's rule before it followed OKX (docs/spec/okx-fidelity.md §4): initial
        margin at mark plus the loss."""
        return cls(im_basis="mark", fee_reserve=False)


@dataclass(frozen=True)
class PositionFacts:
    """What the rule looks at; all in the settlement currency (USDT)."""

    margin: Decimal
    im_mark: Decimal  # |pos| x ctVal x markPx / lever
    im_avg: Decimal  # |pos| x ctVal x avgPx / lever
    upl: Decimal
    mm: Decimal  # maintenance margin at mark with the tier's rate
    close_fee: Decimal  # taker fee of closing the whole position at mark


def required_margin(rule: ReduceRule, f: PositionFacts) -> Decimal:
    """The least margin the position must keep after a reduce."""
    if rule.im_basis == "mark":
        im = f.im_mark
    elif rule.im_basis == "avgPx":
        im = f.im_avg
    else:
        im = max(f.im_mark, f.im_avg)
    loss = max(ZERO, -f.upl)
    fee = f.close_fee if rule.fee_reserve else ZERO
    by_im = im + loss + fee + rule.extra
    by_mm = f.mm - f.upl + fee  # margin + upl >= mm (+ fee): never into liquidation
    return max(by_im, by_mm)


def est_avail_trans(rule: ReduceRule, f: PositionFacts) -> Decimal:
    """The most a reduce may take now (never negative)."""
    return max(ZERO, f.margin - required_margin(rule, f))


def allows_reduce(rule: ReduceRule, f: PositionFacts, amt: Decimal) -> bool:
    return ZERO < amt <= est_avail_trans(rule, f)
