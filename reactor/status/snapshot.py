"""Build the :class:`StatusSnapshot` from the engine's read-only view (no writes, no SQL)."""

from __future__ import annotations

import time
from typing import Protocol

from reactor.engine.state import EngineView
from reactor.status.model import AccountStatus, PositionStatus, StatusSnapshot


class EngineViewSource(Protocol):
    def view(self) -> EngineView: ...


def build_snapshot(view: EngineView, generated_ms: int) -> StatusSnapshot:
    accounts = []
    for a in view.accounts:
        rows = tuple(
            PositionStatus(
                account=p.account,
                role=p.role,
                inst_id=p.inst_id,
                pos_side=p.pos_side,
                pos=p.pos,
                margin=p.margin,
                target=p.target,
                band_lo=None if p.band is None else p.band[0],
                band_hi=None if p.band is None else p.band[1],
                count=p.count,
                upl=p.upl,
                profit_rate=p.profit_rate,
                status=p.status,
                reason=p.reason,
            )
            for p in a.positions
        )
        accounts.append(
            AccountStatus(
                name=a.name,
                role=a.role,
                enabled=a.enabled,
                connected=a.connected,
                fresh=a.fresh,
                stopped_reason=a.stopped_reason,
                positions=rows,
            )
        )
    return StatusSnapshot(
        accounts=tuple(accounts),
        main_expected_positions=view.main_expected_positions,
        generated_ms=generated_ms,
        engine_problems=view.problems,
        storage_ok=view.storage_ok,
        internal_errors=view.internal_errors,
    )


class EngineStatus:
    """The engine as the status server's :class:`StatusSource`."""

    def __init__(self, engine: EngineViewSource) -> None:
        self._engine = engine

    def status_snapshot(self) -> StatusSnapshot:
        return build_snapshot(self._engine.view(), int(time.time() * 1000))
