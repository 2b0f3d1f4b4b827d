"""Carries out the :class:`~reactor.maintenance.FillGate`'s effects: ledger writes and events.

The one object the engine talks to for counts from fills. It stays synchronous and clock-free
(every call takes ``now_ms``), so the engine's tests drive it with a fake clock:

- :meth:`on_orders` / :meth:`on_position` feed the gate and return the positions to evaluate
  again (a count moved, or a hold ended);
- :meth:`held` is asked in the evaluation path: a grown position is not corrected yet;
- :meth:`count_extra` adds maintenances the ledger has not taken yet (a failed write is kept
  in memory and retried), so a storage hiccup never makes the reactor correct to the old target;
- :meth:`tick` runs at :meth:`next_deadline` (grace ends, retries).
"""

from __future__ import annotations

from typing import Protocol

from reactor.ledger import MaintenanceRecord
from reactor.log import get_logger
from reactor.maintenance import (
    Effect,
    FillGate,
    GateKey,
    PlainFill,
    RecordMaintenance,
    Released,
    Skipped,
    describe_effect,
)
from reactor.okx.models import Position
from reactor.okx.orders import OrderUpdate

__all__ = ["MaintenanceTracker"]

log = get_logger(__name__)

RETRY_MS = 1_000


class RecordSink(Protocol):
    """What the tracker needs of the ledger (:class:`reactor.ledger.Ledger` is one)."""

    def record(
        self,
        account: str,
        inst_id: str,
        pos_side: str,
        key: str,
        *,
        source: str,
        c_time: int | None = None,
        ord_id: str | None = None,
    ) -> MaintenanceRecord | None: ...


class MaintenanceTracker:
    def __init__(self, gate: FillGate, ledger: RecordSink, *, retry_ms: int = RETRY_MS) -> None:
        self.gate = gate
        self.ledger = ledger
        self.retry_ms = retry_ms
        self._unsaved: list[RecordMaintenance] = []
        self._retry_at: int | None = None

    @property
    def enabled(self) -> bool:
        return self.gate.enabled

    # -- inputs -------------------------------------------------------------------------------

    def on_orders(self, orders: list[OrderUpdate], now_ms: int) -> set[GateKey]:
        """An ``orders`` push; returns the positions to evaluate again."""
        touched: set[GateKey] = set()
        for order in orders:
            touched |= self._apply(self.gate.on_order(order, now_ms), now_ms)
        return touched

    def on_position(self, pos: Position, now_ms: int, *, baseline: bool = False) -> set[GateKey]:
        """A position from a push (``baseline`` for snapshots and REST re-reads)."""
        return self._apply(self.gate.on_position(pos, now_ms, baseline=baseline), now_ms)

    def reset_account(self, account: str, now_ms: int) -> set[GateKey]:
        return self._apply(self.gate.reset_account(account, now_ms), now_ms)

    def tick(self, now_ms: int) -> set[GateKey]:
        touched = self._apply(self.gate.expire(now_ms), now_ms)
        if self._unsaved and (self._retry_at is None or now_ms >= self._retry_at):
            self._flush(now_ms)
        return touched

    # -- queries ------------------------------------------------------------------------------

    def held(self, pos: Position, now_ms: int) -> bool:
        return self.gate.held(pos, now_ms)

    def count_extra(self, pos: Position) -> int:
        """Maintenances of ``pos`` known from fills but not yet in the ledger (write failed)."""
        return sum(
            1
            for r in self._unsaved
            if r.position_key == (pos.account, pos.inst_id, pos.pos_side, pos.mgn_mode)
            and (r.c_time is None or r.c_time == pos.c_time)
        )

    def next_deadline(self) -> int | None:
        times = [t for t in (self.gate.next_deadline(), self._retry_at) if t is not None]
        return min(times) if times else None

    @property
    def unsaved(self) -> int:
        return len(self._unsaved)

    # -- internals ----------------------------------------------------------------------------

    def _apply(self, effects: list[Effect], now_ms: int) -> set[GateKey]:
        touched: set[GateKey] = set()
        fresh = False
        for effect in effects:
            if isinstance(effect, RecordMaintenance):
                self._unsaved.append(effect)
                touched.add(effect.position_key)
                fresh = True
            elif isinstance(effect, Released):
                touched.add(effect.key)
                if effect.reason == "grace_expired":
                    log.warning("maintenance.gate.expired", **describe_effect(effect))
                else:
                    log.debug("maintenance.gate.released", **describe_effect(effect))
            elif isinstance(effect, Skipped):
                log.warning("maintenance.fill.skipped", **describe_effect(effect))
            elif isinstance(effect, PlainFill):
                log.debug("maintenance.fill.plain", **describe_effect(effect))
        if fresh:  # write at once, before the engine evaluates (older failures ride along)
            self._flush(now_ms)
        return touched

    def _flush(self, now_ms: int) -> None:
        """Write unsaved records; on failure keep them (counted in memory) and retry later."""
        remaining: list[RecordMaintenance] = []
        for rec in self._unsaved:
            fields = {"account": rec.account, "instId": rec.inst_id, "posSide": rec.pos_side}
            try:
                row = self.ledger.record(
                    rec.account,
                    rec.inst_id,
                    rec.pos_side,
                    rec.key,
                    source="fill",
                    c_time=rec.c_time,
                    ord_id=rec.ord_id,
                )
            except ValueError as exc:  # a record the ledger can never take: say so, once
                log.error(
                    "maintenance.record.failed", **fields, key=rec.key, error=f"invalid: {exc}"
                )
                continue
            except Exception as exc:  # storage fault: never lose the maintenance
                remaining.append(rec)
                log.error(
                    "maintenance.record.failed", **fields, key=rec.key, error=type(exc).__name__
                )
                continue
            if row is None:
                log.info("maintenance.duplicate", **fields, key=rec.key, source="fill")
            else:
                log.info(
                    "maintenance.recorded",
                    **fields,
                    key=rec.key,
                    source="fill",
                    record_id=row.id,
                    cTime=rec.c_time,
                )
        self._unsaved = remaining
        self._retry_at = now_ms + self.retry_ms if remaining else None
