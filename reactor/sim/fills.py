"""What one fill does to an isolated or cross position, as OKX applies it (pure arithmetic).

Sources (docs/spec/okx-fidelity.md §3.1):
- HELP: ``avgPx = (old pos x old avgPx + fill sz x fill px) / (old pos + fill sz)``.
- DOC-POS isolated sample and HELP ("Margin balance = Initial margin + margin added to or
  reduced from this position"): with auto transfers (DOC-TA "Isolated margin trading
  settings", the default) an opening fill adds its initial margin ``sz x ctVal x px / lever``
  to ``margin``, and a closing fill releases margin pro rata (**likely**).
- The fee is ``rate x sz x ctVal x px``, charged to the balance, never to the position
  (**likely**: the DOC-POS sample's margin is exactly the initial margin at ``avgPx``).
- Bills: ``balChg`` is what the account balance moved (margin paid or released, realised
  PnL and the negative fee); ``posBalChg`` what the position's margin moved. So for every
  fill ``balChg + posBalChg == pnl + fee`` (the invariant the tests check).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)
_MONEY_Q = Decimal("1e-16")


def money(d: Decimal) -> Decimal:
    """Money is kept to 16 decimals (as OKX prints it), so that sums of balances and margins
    stay exact within Decimal's 28 significant digits: conservation holds to the last digit."""
    return d.quantize(_MONEY_Q)


@dataclass(frozen=True)
class Fill:
    size: Decimal  # contracts held after the fill (unsigned)
    avg_px: Decimal
    margin: Decimal  # isolated margin after the fill (0 for cross)
    pos_bal_chg: Decimal
    bal_chg: Decimal
    pnl: Decimal  # realised, fee excluded
    fee: Decimal  # negative: charged


def taker_fee(sz: Decimal, ct_val: Decimal, px: Decimal, rate: Decimal) -> Decimal:
    return money(-(sz * ct_val * px * rate))


def open_fill(
    *,
    size: Decimal,
    avg_px: Decimal,
    margin: Decimal,
    lever: Decimal,
    ct_val: Decimal,
    sz: Decimal,
    px: Decimal,
    fee_rate: Decimal,
    isolated: bool,
) -> Fill:
    """An opening or increasing fill of ``sz`` contracts at ``px``."""
    new_size = size + sz
    new_avg = (size * avg_px + sz * px) / new_size
    im = money(sz * ct_val * px / lever) if isolated else ZERO
    fee = taker_fee(sz, ct_val, px, fee_rate)
    return Fill(new_size, new_avg, margin + im, im, -im + fee, ZERO, fee)


def close_fill(
    *,
    size: Decimal,
    avg_px: Decimal,
    margin: Decimal,
    ct_val: Decimal,
    sz: Decimal,
    px: Decimal,
    fee_rate: Decimal,
    short: bool,
) -> Fill:
    """A reducing fill of ``sz`` (<= ``size``) contracts at ``px``: margin released pro rata,
    PnL realised against ``avgPx``; ``avgPx`` itself does not move."""
    released = margin if sz == size else money(margin * sz / size)
    diff = sz * ct_val * (px - avg_px)
    pnl = money(-diff if short else diff)
    fee = taker_fee(sz, ct_val, px, fee_rate)
    return Fill(size - sz, avg_px, margin - released, -released, released + pnl + fee, pnl, fee)
