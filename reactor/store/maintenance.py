"""Maintenance records: recording (idempotent per key and per OKX order), counts, voids, audit.

Maintenance counts are *derived* from records (never a stored counter) and a record's key is
unique per account, so recording twice is a no-op and a missing increment cannot happen. Both
backends use these rules (:class:`MaintenanceTables`); only their SQL runners differ.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from reactor.store.base import LedgerBase

__all__ = [
    "MAINTENANCE_SOURCES",
    "AuditEntry",
    "MaintenanceRecord",
    "MaintenanceSource",
    "MaintenanceTables",
    "PositionCount",
]

_M_COLS = "id, account, inst_id, pos_side, c_time, key, recorded_ms, source, ord_id, voided_ms"
# Where a maintenance record came from (see MAINTENANCE_SOURCES).
MaintenanceSource = Literal["fill", "api", "cli", "backfill"]


@dataclass(frozen=True, slots=True)
class MaintenanceRecord:
    id: int
    account: str
    inst_id: str
    pos_side: str
    c_time: int | None
    key: str
    recorded_ms: int
    source: MaintenanceSource = "cli"
    ord_id: str | None = None  # the OKX order, when known: a second idempotency key
    voided_ms: int | None = None  # voided records stay (audit) but never count


MAINTENANCE_SOURCES: tuple[MaintenanceSource, ...] = get_args(MaintenanceSource)
"""Where a maintenance record came from: the ``orders`` channel (``fill``), the local HTTP API,
the CLI, or OKX's order history / bills read after a restart or reconnect (``backfill``)."""

_A_COLS = "id, record_id, account, key, action, actor, reason, at_ms"


@dataclass(frozen=True, slots=True)
class PositionCount:
    """One position's counted maintenances, by source (``c_time`` None: records not tied)."""

    account: str
    inst_id: str
    pos_side: str
    c_time: int | None
    count: int
    sources: dict[str, int]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    record_id: int
    account: str
    key: str
    action: str  # "void"
    actor: str
    reason: str
    at_ms: int


# The records :meth:`MaintenanceTables.count` counts: tied to the position's cTime, or untied
# and made at or after it (so a reopened position, a new cTime, starts again at 0).
_COUNTED = (
    "account = ? AND inst_id = ? AND pos_side = ?"
    " AND (c_time = ? OR (c_time IS NULL AND recorded_ms >= ?)) AND voided_ms IS NULL"
)


def _check_record(
    account: str, inst_id: str, pos_side: str, key: str, source: str, ord_id: str | None
) -> None:
    if source not in MAINTENANCE_SOURCES:
        raise ValueError(f"source must be one of {list(MAINTENANCE_SOURCES)}, not {source!r}")
    for name, value in (
        ("account", account),
        ("inst_id", inst_id),
        ("pos_side", pos_side),
        ("key", key),
    ):
        if not value:
            raise ValueError(f"{name} must not be empty")
    if ord_id is not None and not ord_id:
        raise ValueError("ord_id must not be empty")


class MaintenanceTables(LedgerBase):
    """The ``maintenance`` and ``maintenance_audit`` tables."""

    def count(self, account: str, inst_id: str, pos_side: str, c_time: int) -> int:
        """Maintenances of the position opened at ``c_time`` (ms), derived from the records.

        Counts records tied to that cTime plus untied records made at or after it, so a
        reopened position (new cTime) starts again at 0.
        """
        rows = self._query(
            self.dialect.sql(f"SELECT COUNT(*) FROM maintenance WHERE {_COUNTED}"),
            (account, inst_id, pos_side, c_time, c_time),
        )
        return int(rows[0][0])

    def list_maintenance(self) -> list[MaintenanceRecord]:
        return self.records_after(0)

    def records_after(self, record_id: int) -> list[MaintenanceRecord]:
        """Records with id > ``record_id``, oldest first: incremental polling."""
        rows = self._query(
            self.dialect.sql(f"SELECT {_M_COLS} FROM maintenance WHERE id > ? ORDER BY id"),
            (record_id,),
        )
        return [MaintenanceRecord(*row) for row in rows]

    def record(
        self,
        account: str,
        inst_id: str,
        pos_side: str,
        key: str,
        *,
        source: MaintenanceSource,
        c_time: int | None = None,
        ord_id: str | None = None,
    ) -> MaintenanceRecord | None:
        """Record one maintenance from ``source``; None when already recorded.

        Idempotent on ``(account, key)`` and, when ``ord_id`` is given, on
        ``(account, ord_id)``: the fill seen on the ``orders`` channel, the same order recovered
        from history after a restart and a strategy's API call naming that order are one
        maintenance. A voided record keeps its keys, so nothing brings it back by itself.
        """
        _check_record(account, inst_id, pos_side, key, source, ord_id)
        now = self._now_ms()
        row_id = self._insert(
            self.dialect.sql(
                "INSERT INTO maintenance"
                " (account, inst_id, pos_side, c_time, key, recorded_ms, source, ord_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            (account, inst_id, pos_side, c_time, key, now, source, ord_id),
            polled=True,
        )
        if row_id is None:
            return None
        return MaintenanceRecord(
            row_id, account, inst_id, pos_side, c_time, key, now, source, ord_id, None
        )

    def records_for(
        self, account: str, inst_id: str, pos_side: str, c_time: int
    ) -> list[MaintenanceRecord]:
        """The records :meth:`count` counts for that position, oldest first."""
        rows = self._query(
            self.dialect.sql(f"SELECT {_M_COLS} FROM maintenance WHERE {_COUNTED} ORDER BY id"),
            (account, inst_id, pos_side, c_time, c_time),
        )
        return [MaintenanceRecord(*row) for row in rows]

    def sources(self, account: str, inst_id: str, pos_side: str, c_time: int) -> dict[str, int]:
        """How many of that position's counted records came from each source."""
        out: dict[str, int] = {}
        for rec in self.records_for(account, inst_id, pos_side, c_time):
            out[rec.source] = out.get(rec.source, 0) + 1
        return out

    def position_counts(self) -> list[PositionCount]:
        """Counted (not voided) records grouped per position (``c_time`` None: untied)."""
        rows = self._query(
            "SELECT account, inst_id, pos_side, c_time, source, COUNT(*) FROM maintenance"
            " WHERE voided_ms IS NULL GROUP BY account, inst_id, pos_side, c_time, source"
            " ORDER BY account, inst_id, pos_side, c_time NULLS FIRST, source"
        )
        grouped: dict[tuple[str, str, str, int | None], dict[str, int]] = {}
        for account, inst_id, pos_side, c_time, source, n in rows:
            grouped.setdefault((account, inst_id, pos_side, c_time), {})[source] = int(n)
        return [
            PositionCount(*key, count=sum(by_source.values()), sources=by_source)
            for key, by_source in grouped.items()
        ]

    def recorded_ord_ids(self, account: str) -> set[str]:
        """Every order of ``account`` already recorded, voided ones included (never re-added)."""
        rows = self._query(
            self.dialect.sql(
                "SELECT ord_id FROM maintenance WHERE account = ? AND ord_id IS NOT NULL"
            ),
            (account,),
        )
        return {row[0] for row in rows}

    def find(self, key: str, account: str | None = None) -> list[MaintenanceRecord]:
        """Records with that key (or that ``ord_id``), in every account unless one is named."""
        sql = f"SELECT {_M_COLS} FROM maintenance WHERE (key = ? OR ord_id = ?)"
        params: tuple[Any, ...] = (key, key)
        if account is not None:
            sql += " AND account = ?"
            params += (account,)
        rows = self._query(self.dialect.sql(sql + " ORDER BY id"), params)
        return [MaintenanceRecord(*row) for row in rows]

    def void(self, account: str, key: str, *, actor: str, reason: str) -> MaintenanceRecord:
        """Void one record (it stops counting) and write an audit entry, in one transaction.

        ``key`` may be the record's key or its ``ord_id``. Raises KeyError when no such
        record exists and ValueError when it is already void (a second void changes nothing).
        """
        if not actor:
            raise ValueError("actor must not be empty")
        now = self._now_ms()
        sql = self.dialect.sql
        with self._transaction() as run:
            found = run(
                sql(
                    f"SELECT {_M_COLS} FROM maintenance WHERE account = ?"
                    " AND (key = ? OR ord_id = ?) ORDER BY id LIMIT 1" + self.dialect.lock_row
                ),
                (account, key, key),
            ).rows
            if not found:
                raise KeyError(f"no maintenance record {key!r} in account {account!r}")
            rec = MaintenanceRecord(*found[0])
            if rec.voided_ms is not None:
                raise ValueError(f"maintenance record {rec.key!r} is already void")
            run(
                sql("UPDATE maintenance SET voided_ms = ? WHERE id = ?"), (now, rec.id), polled=True
            )
            run(
                sql(
                    "INSERT INTO maintenance_audit (record_id, account, key, action, actor,"
                    " reason, at_ms) VALUES (?, ?, ?, 'void', ?, ?, ?)"
                ),
                (rec.id, account, rec.key, actor, reason, now),
                polled=True,
            )
        return replace(rec, voided_ms=now)

    def audit_after(self, audit_id: int) -> list[AuditEntry]:
        """Audit entries with id > ``audit_id``, oldest first (the reactor polls for voids)."""
        rows = self._query(
            self.dialect.sql(f"SELECT {_A_COLS} FROM maintenance_audit WHERE id > ? ORDER BY id"),
            (audit_id,),
        )
        return [AuditEntry(*row) for row in rows]
