"""Pure: the maintenance count the policy targets from, per position and cTime.

The ledger's count (read once per (position, cTime), forgotten when the ledger gains records)
plus the maintenances seen on ``orders`` that are not in the ledger yet: they count at once,
whether or not their write succeeded (a failed write is retried, never lost).
"""

from __future__ import annotations

from reactor.domain.fills import RecordMaintenance
from reactor.engine.state import CountSource
from reactor.okx.models import Position, PositionKey

PositionTriple = tuple[str, str, str]  # (account, instId, posSide)


class MaintenanceCounts:
    def __init__(self, source: CountSource) -> None:
        self._source = source
        self._counts: dict[tuple[PositionKey, int], int] = {}
        self._sources: dict[tuple[PositionKey, int], dict[str, int]] = {}
        # Maintenances seen but not yet in the ledger (they count meanwhile), oldest first.
        self.unwritten: list[RecordMaintenance] = []

    def count(self, pos: Position) -> int:
        """The ledger's count plus the unwritten ones; raises the source's StorageError."""
        ck = (pos.key, pos.c_time)
        count = self._counts.get(ck)
        if count is None:
            count = self._counts[ck] = self._source.count(
                pos.account, pos.inst_id, pos.pos_side, pos.c_time
            )
            read_sources = getattr(self._source, "sources", None)
            if read_sources is not None:
                self._sources[ck] = read_sources(pos.account, pos.inst_id, pos.pos_side, pos.c_time)
        return count + self._unwritten_for(pos)

    def sources(self, pos: Position) -> dict[str, int]:
        """Where the counted records came from (cached with the count; no I/O)."""
        sources = dict(self._sources.get((pos.key, pos.c_time), {}))
        pending = self._unwritten_for(pos)
        if pending:
            sources["fill"] = sources.get("fill", 0) + pending
        return sources

    def forget(self, keys: set[PositionTriple]) -> None:
        """The ledger changed for these positions: read their counts again when needed."""
        self._counts = {k: v for k, v in self._counts.items() if k[0][:3] not in keys}
        self._sources = {k: v for k, v in self._sources.items() if k[0][:3] not in keys}

    def _unwritten_for(self, pos: Position) -> int:
        if not self.unwritten:
            return 0
        return sum(
            1
            for r in self.unwritten
            if r.position_key == pos.key and (r.c_time is None or r.c_time == pos.c_time)
        )
