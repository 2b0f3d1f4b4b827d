"""Position builders for core tests (plain functions, usable from Hypothesis strategies)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from reactor.domain.policy import PolicyConfig, TargetRule
from reactor.okx.models import Position

D = Decimal

DEFAULT_TARGETS = (
    TargetRule(0, D("10"), D("9.5"), D("10.5")),
    TargetRule(2, D("20"), D("19"), D("21")),
    TargetRule(3, D("30"), D("28.5"), D("31.5")),
)
CFG = PolicyConfig(targets=DEFAULT_TARGETS)

T0 = 1_700_000_000_000  # ms: the epoch the ledger and probe tests start from


class MsClock:
    """A wall clock set in whole milliseconds (``clock.ms = ...``), read in seconds like
    ``time.time``: what :class:`reactor.store.Ledger` and the probe take as ``clock``."""

    def __init__(self, ms: int = T0) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


def position(**overrides: Any) -> Position:
    """The CRO seed position (long 108 @ 0.0905, mark 0.095, lever 10, margin 20.29)."""
    fields: dict[str, Any] = {
        "account": "sub1",
        "inst_id": "CRO-USDT-SWAP",
        "inst_type": "SWAP",
        "mgn_mode": "isolated",
        "pos_side": "long",
        "pos": D("108"),
        "ccy": "USDT",
        "avg_px": D("0.0905"),
        "mark_px": D("0.0950"),
        "lever": D("10"),
        "margin": D("20.29"),
        "mmr": D("0.4104"),
        "upl": D("4.86"),
        "notional_usd": D("102.6"),
        "liq_px": None,
        "pos_id": "1",
        "c_time": 1_700_000_000_000,
        "u_time": 1_700_000_000_000,
    }
    fields.update(overrides)
    return Position(**fields)
