"""How the simulator writes a Decimal into an OKX string field."""

from __future__ import annotations

from decimal import Decimal


def fmt(d: Decimal) -> str:
    """Plain decimal string, never an exponent: ``Decimal('1E+2')`` -> ``"100"``."""
    if d == 0:
        return "0"
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
