"""Typed views of OKX payloads, parsed from OKX's all-string JSON.

Parsing is hand-written rather than pydantic: it runs on every push (thousands per second at
scale) and must turn "" into ``None`` and anything malformed into one :class:`PayloadError`
that names the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple


class PositionKey(NamedTuple):
    """(account, instId, posSide, mgnMode): on OKX an isolated and a cross position on the same
    instrument and side coexist, so mgnMode is part of a position's identity. A tuple, so it
    equals, hashes and serializes exactly as the plain 4-tuple it replaces."""

    account: str
    inst_id: str
    pos_side: str
    mgn_mode: str


# Bounds of a real position; beyond them a record is an invalid frame, never acted on. They are
# far outside anything OKX lists (largest ctVal 1e7 contracts of PEPE, leverage <= 125), so a
# true position is never refused, while a corrupted one ("1e30", a negative margin) always is.
MAX_POS = Decimal("1e12")  # contracts
MAX_LEVER = Decimal("1000")
MAX_MARGIN = Decimal("1e9")  # USDT
MARGIN_PER_NOTIONAL_MAX = Decimal("1e4")  # isolated margin above 10,000 x notional + 1e6
MARGIN_SLACK = Decimal("1e6")
# notionalUsd / (|pos| x markPx) is the contract value; real ones lie in 1e-6 .. 1e9.
CT_VAL_IMPLIED_MIN = Decimal("1e-8")
CT_VAL_IMPLIED_MAX = Decimal("1e10")
_ZERO = Decimal(0)


class PayloadError(ValueError):
    """An exchange payload that cannot be used; names the field."""


def finite_decimal(value: object) -> Decimal | None:
    """A finite Decimal from one of OKX's number strings, or None for anything else ("" means
    "not applicable" there): for reads that skip what they cannot use rather than refuse it."""
    if not isinstance(value, str) or not value:
        return None
    try:
        d = Decimal(value)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _dec(raw: dict[str, Any], field: str) -> Decimal | None:
    value = raw.get(field, "")
    if value.__class__ is str:  # fast path: OKX sends every number as a string
        if not value:
            return None
        try:
            d = Decimal(value)
        except InvalidOperation:
            raise PayloadError(f"{field}: not a number: {value[:40]!r}") from None
        if not d.is_finite():
            raise PayloadError(f"{field}: not finite: {value!r}")
        return d
    if value is None or value == "":
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise PayloadError(f"{field}: expected a number string, got {type(value).__name__}")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise PayloadError(f"{field}: not a number: {str(value)[:40]!r}") from None
    if not d.is_finite():
        raise PayloadError(f"{field}: not finite: {value!r}")
    return d


def _str(raw: dict[str, Any], field: str, *, required: bool = False) -> str:
    value = raw.get(field, "")
    if value.__class__ is str and (value or not required):
        return value
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise PayloadError(f"{field}: expected a string, got {type(value).__name__}")
    if required and not value:
        raise PayloadError(f"{field}: missing")
    return value


def _int(raw: dict[str, Any], field: str) -> int:
    value = raw.get(field, "")
    if value in ("", None):
        return 0
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError(f"{field}: expected an integer string")
    try:
        return int(value)
    except ValueError:
        raise PayloadError(f"{field}: not an integer: {str(value)[:40]!r}") from None


@dataclass(frozen=True, slots=True)
class Position:
    """One OKX position as pushed on the ``positions`` channel or read over REST.

    Numbers OKX left empty are ``None``; the policy decides what it can do without them.
    """

    account: str
    inst_id: str
    inst_type: str
    mgn_mode: str
    pos_side: str
    pos: Decimal
    ccy: str
    avg_px: Decimal | None
    mark_px: Decimal | None
    lever: Decimal | None
    margin: Decimal | None
    mmr: Decimal | None
    upl: Decimal | None
    notional_usd: Decimal | None
    liq_px: Decimal | None
    pos_id: str
    c_time: int
    u_time: int
    # Push time (exchange clock), 0 when the payload has none (REST). Not part of equality: it
    # says when a record was sent, not what the position is, so a regular snapshot that repeats
    # a position (OKX: every 2-5 s) is no change to the book and no re-evaluation.
    p_time: int = field(default=0, compare=False)

    @property
    def key(self) -> PositionKey:
        return PositionKey(self.account, self.inst_id, self.pos_side, self.mgn_mode)

    @property
    def is_open(self) -> bool:
        return self.pos != 0

    @property
    def is_managed_kind(self) -> bool:
        """Isolated USDT swap: the only kind the reactor adjusts."""
        return (
            self.inst_type == "SWAP"
            and self.mgn_mode == "isolated"
            and self.ccy in ("USDT", "")
            and self.inst_id.endswith("-USDT-SWAP")
        )

    @property
    def profit_rate(self) -> Decimal | None:
        if self.upl is None or not self.margin:
            return None
        return self.upl / self.margin


def parse_position(account: str, raw: Any) -> Position:
    """Parse one element of a ``positions`` push or REST ``data`` list."""
    if not isinstance(raw, dict):
        raise PayloadError(f"position: expected an object, got {type(raw).__name__}")
    pos = _dec(raw, "pos")
    if pos is None:
        raise PayloadError("pos: missing")
    pos_side = _str(raw, "posSide", required=True)
    if pos_side not in ("long", "short", "net"):
        raise PayloadError(f"posSide: unknown value {pos_side[:20]!r}")
    position = Position(
        account=account,
        inst_id=_str(raw, "instId", required=True),
        inst_type=_str(raw, "instType"),
        mgn_mode=_str(raw, "mgnMode", required=True),
        pos_side=pos_side,
        pos=pos,
        ccy=_str(raw, "ccy"),
        avg_px=_dec(raw, "avgPx"),
        mark_px=_dec(raw, "markPx"),
        lever=_dec(raw, "lever"),
        margin=_dec(raw, "margin"),
        mmr=_dec(raw, "mmr"),
        upl=_dec(raw, "upl"),
        notional_usd=_dec(raw, "notionalUsd"),
        liq_px=_dec(raw, "liqPx"),
        pos_id=_str(raw, "posId"),
        c_time=_int(raw, "cTime"),
        u_time=_int(raw, "uTime"),
        p_time=_int(raw, "pTime"),
    )
    _check_plausible(position)
    return position


def _check_plausible(p: Position) -> None:
    """Refuse values no real position can have: acting on them could move real money."""
    pos = p.pos
    if pos < 0 and p.pos_side != "net":
        raise PayloadError(f"pos: negative for posSide {p.pos_side}: {pos}")
    size = -pos if pos < 0 else pos
    if size > MAX_POS:
        raise PayloadError(f"pos: implausible size {pos}")
    if p.c_time < 0 or p.u_time < 0 or p.p_time < 0:
        raise PayloadError("cTime/uTime/pTime: negative")
    mark, margin = p.mark_px, p.margin
    if mark is not None and mark <= 0:
        raise PayloadError(f"markPx: not positive: {mark}")
    if p.avg_px is not None and p.avg_px < 0:
        raise PayloadError(f"avgPx: negative: {p.avg_px}")
    if p.lever is not None and not _ZERO < p.lever <= MAX_LEVER:
        raise PayloadError(f"lever: implausible: {p.lever}")
    if p.mmr is not None and p.mmr < 0:
        raise PayloadError(f"mmr: negative: {p.mmr}")
    notional = p.notional_usd
    if notional is not None and notional < 0:
        raise PayloadError(f"notionalUsd: negative: {notional}")
    if margin is not None:
        if margin < 0:
            raise PayloadError(f"margin: negative: {margin}")
        if margin > MAX_MARGIN:
            raise PayloadError(f"margin: implausible: {margin}")
        if (
            notional is not None
            and size
            and margin > notional * MARGIN_PER_NOTIONAL_MAX + MARGIN_SLACK
        ):
            raise PayloadError(f"margin: {margin} is absurd against notional {notional}")
    if size and notional and mark is not None:
        implied = notional / (size * mark)
        if not CT_VAL_IMPLIED_MIN <= implied <= CT_VAL_IMPLIED_MAX:
            raise PayloadError(f"pos: size {pos} is absurd against notional {notional}")


@dataclass(frozen=True, slots=True)
class Instrument:
    inst_id: str
    ct_val: Decimal
    lot_sz: Decimal
    tick_sz: Decimal
    settle_ccy: str


def parse_instrument(raw: Any) -> Instrument:
    if not isinstance(raw, dict):
        raise PayloadError("instrument: expected an object")
    ct_val = _dec(raw, "ctVal")
    if ct_val is None or ct_val <= 0:
        raise PayloadError("ctVal: missing or not positive")
    return Instrument(
        inst_id=_str(raw, "instId", required=True),
        ct_val=ct_val,
        lot_sz=_dec(raw, "lotSz") or Decimal("1"),
        tick_sz=_dec(raw, "tickSz") or Decimal("0.0001"),
        settle_ccy=_str(raw, "settleCcy"),
    )
