"""Operator pauses: an account or one position the reactor sends nothing for until resumed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reactor.store.base import LedgerBase

__all__ = ["Pause", "PauseTables"]


@dataclass(frozen=True, slots=True)
class Pause:
    """An operator's pause: the whole account (``inst_id``/``pos_side`` None) or one position.
    The engine sends nothing for a paused position until it is resumed."""

    account: str
    inst_id: str | None
    pos_side: str | None
    reason: str
    source: str  # cli | api
    paused_ms: int

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return (self.account, self.inst_id, self.pos_side)

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "instId": self.inst_id,
            "posSide": self.pos_side,
            "reason": self.reason,
            "source": self.source,
            "pausedMs": self.paused_ms,
        }


class PauseTables(LedgerBase):
    """The ``pauses`` table (an account pause stores ``inst_id``/``pos_side`` as "")."""

    def pause(
        self,
        account: str,
        inst_id: str | None = None,
        pos_side: str | None = None,
        reason: str = "",
        *,
        source: str = "",
    ) -> bool:
        """Pause an account (no ``inst_id``) or one position; False when already paused."""
        if not account or (inst_id is None) != (pos_side is None):
            raise ValueError("pause: an account, and instId with posSide or neither")
        n = self._execute(
            self.dialect.sql(
                "INSERT INTO pauses (account, inst_id, pos_side, reason, source, paused_ms)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            (account, inst_id or "", pos_side or "", reason[:200], source, self._now_ms()),
            polled=True,
        )
        return n == 1

    def resume(self, account: str, inst_id: str | None = None, pos_side: str | None = None) -> bool:
        """Remove a pause; False when there was none (resuming twice is harmless)."""
        n = self._execute(
            self.dialect.sql(
                "DELETE FROM pauses WHERE account = ? AND inst_id = ? AND pos_side = ?"
            ),
            (account, inst_id or "", pos_side or ""),
            polled=True,
        )
        return n == 1

    def pauses(self) -> list[Pause]:
        rows = self._query(
            "SELECT account, inst_id, pos_side, reason, source, paused_ms FROM pauses"
            " ORDER BY account, inst_id, pos_side"
        )
        return [Pause(a, i or None, ps or None, r, src, int(ms)) for a, i, ps, r, src, ms in rows]
