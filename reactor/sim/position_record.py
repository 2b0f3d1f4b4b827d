"""A position as OKX writes it (REST ``account/positions`` and the ``positions`` channel).

The field set is that of a captured live isolated USDT-swap record (2025-11-29,
``tests/fixtures/okx/http_get_positions_isolated_2025.json``; the same set as DOC-POS's
example): every field present, ``""`` where it does not apply to a USDT-margined swap
(spot-in-use, greeks, MARGIN borrowings...), ``closeOrderAlgo`` an array. Pure: the exchange
passes the numbers in.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# Fields the captured USDT-swap record leaves "" (they belong to MARGIN, OPTION, spot-in-use
# and delta-neutral accounts).
EMPTY_FIELDS = (
    "baseBal",
    "baseBorrowed",
    "baseInterest",
    "bizRefId",
    "bizRefType",
    "clSpotInUseAmt",
    "deltaBS",
    "deltaPA",
    "gammaBS",
    "gammaPA",
    "hedgedPos",
    "interest",
    "liab",
    "liabCcy",
    "maxSpotInUseAmt",
    "nonSettleAvgPx",
    "optVal",
    "pendingCloseOrdLiabVal",
    "posCcy",
    "quoteBal",
    "quoteBorrowed",
    "quoteInterest",
    "settledPnl",
    "spotInUseAmt",
    "spotInUseCcy",
    "thetaBS",
    "thetaPA",
    "vegaBS",
    "vegaPA",
)


@dataclass(frozen=True)
class CloseAlgo:
    """A TP/SL order attached to the position (DOC-POS ``closeOrderAlgo`` entries)."""

    algo_id: str
    sl_trigger_px: str = ""
    tp_trigger_px: str = ""
    close_fraction: str = "1"

    def record(self) -> dict[str, str]:
        return {
            "algoId": self.algo_id,
            "slTriggerPx": self.sl_trigger_px,
            "slTriggerPxType": "mark" if self.sl_trigger_px else "",
            "tpTriggerPx": self.tp_trigger_px,
            "tpTriggerPxType": "mark" if self.tp_trigger_px else "",
            "closeFraction": self.close_fraction,
        }


def breakeven_px(
    qty: Decimal, avg_px: Decimal, fee: Decimal, taker_rate: Decimal, short: bool
) -> Decimal:
    """``bePx``: the mark at which closing at the taker rate pays back the fees and funding
    paid so far (``fee`` is their negative sum). Two captures fit to the last digit: JAVA-2025
    (0.1 x 3011 + 0.15055) / (0.1 x (1 - 0.0005)) = 3014.0125062531265, and CCXT-STATIC LTC
    with its funding (0.002 x 82.675 + 0.000082675 + 0.0154171409554622) / (0.002 x 0.9995) =
    90.47014304925573 (docs/spec/okx-fidelity.md §11.2.2); realised PnL is left out (**likely**)."""
    if qty == 0:
        return avg_px
    paid = -fee
    if short:
        return (qty * avg_px - paid) / (qty * (1 + taker_rate))
    return (qty * avg_px + paid) / (qty * (1 - taker_rate))


def position_record(values: dict[str, str], close_algos: list[CloseAlgo]) -> dict[str, Any]:
    """The OKX record: ``values`` (every non-empty field, as strings) over the empty ones, in
    OKX's (alphabetical) field order."""
    record: dict[str, Any] = {name: "" for name in EMPTY_FIELDS}
    record.update(values)
    record["closeOrderAlgo"] = [a.record() for a in close_algos]
    return dict(sorted(record.items()))
