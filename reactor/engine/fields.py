"""Pure: the log fields the core's events share, spelled one way for every event."""

from __future__ import annotations

from decimal import Decimal

from reactor.okx.models import PositionKey


def opt_str(value: Decimal | None) -> str | None:
    """A money field of an event: the Decimal's string, or None when it is not known."""
    return None if value is None else str(value)


def pos_fields(key: PositionKey) -> dict[str, str]:
    """The position an event is about, in OKX's names."""
    return {"account": key[0], "instId": key[1], "posSide": key[2]}
