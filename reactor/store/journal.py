"""The call journal: each margin call's intent, committed before it is sent, and its outcome.

An intent still ``pending`` after a crash is a call whose outcome is unknown; the OKX bill
credited to a call (``bill_id``) settles an ambiguous one. ``pending`` and ``unknown`` are the
open statuses: every open row is resolved from OKX's bills while OKX keeps them (``ok`` with its
bill, ``error`` when none was booked), and marked ``expired`` when they are gone (7 days).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from reactor.redaction import redact_text
from reactor.store.base import LedgerBase

__all__ = [
    "FINAL_STATUSES",
    "INTENT_COLUMNS",
    "OPEN_STATUSES",
    "PRUNABLE_STATUSES",
    "Intent",
    "JournalEntry",
    "JournalStatus",
    "JournalTables",
    "ResultStatus",
]

# A journalled call: "pending" from its intent until its outcome is written.
# "expired": left open until OKX no longer kept the bills that could have settled it.
ResultStatus = Literal["ok", "error", "unknown", "expired"]
JournalStatus = Literal["pending", "ok", "error", "unknown", "expired"]
OPEN_STATUSES = ("pending", "unknown")  # not final: resolved from the bills, whatever run left it
FINAL_STATUSES = ("ok", "error", "expired")
_RESULT_STATUSES = frozenset(get_args(ResultStatus))
# What retention may delete: calls whose outcome is known. A pending intent is a call whose
# outcome a restart must still resolve, and an "unknown" one may yet be settled by its bill:
# neither is ever pruned, however old ("expired" rows are kept too: a human may look).
PRUNABLE_STATUSES = ("ok", "error")
_PRUNE_BATCH = 500  # rows per transaction: a running reactor's writes wait for at most one

_J_COLS = (
    "id, account, inst_id, pos_side, action, amount, request, status, code, msg, sent_ms, done_ms,"
    " bill_id, sent_okx_ms"
)


# A pending row's columns, in the order of :meth:`JournalTables._insert_intents`' rows.
INTENT_COLUMNS = (
    "account",
    "inst_id",
    "pos_side",
    "action",
    "amount",
    "request",
    "sent_ms",
    "sent_okx_ms",
)
IntentRow = tuple[str, str, str, str, str, str, int, int | None]


@dataclass(frozen=True, slots=True)
class Intent:
    """A margin call about to be sent. ``okx_ms``: its send time on OKX's clock (its bill is
    matched on it); ``request``: its body (redacted before it is stored)."""

    account: str
    inst_id: str
    pos_side: str
    action: str
    amount: str
    request: str
    okx_ms: int | None = None


@dataclass(frozen=True, slots=True)
class JournalEntry:
    id: int
    account: str
    inst_id: str
    pos_side: str
    action: str
    amount: str
    request: str
    status: JournalStatus
    code: str | None
    msg: str | None
    sent_ms: int
    done_ms: int | None
    bill_id: str | None = None  # the OKX bill credited to this call (None: none yet)
    # When it was sent on OKX's clock: the local clock corrected by the offset in force then
    # (the time its signed request carried). None: a row written before the column existed.
    sent_okx_ms: int | None = None


def _check_status(status: ResultStatus | None) -> None:
    """Refuse a status a call cannot end in (``ValueError``); None: unchanged."""
    if status is not None and status not in _RESULT_STATUSES:
        raise ValueError(f"status must be one of {sorted(_RESULT_STATUSES)}, not {status!r}")


class JournalTables(LedgerBase):
    """The ``journal`` table."""

    def journal_intent(
        self,
        account: str,
        inst_id: str,
        pos_side: str,
        action: str,
        amount: str,
        request: str,
        *,
        okx_ms: int | None = None,
    ) -> int:
        """Write a pending entry, committed before the call is sent; returns its id.
        ``okx_ms``: the send time on OKX's clock (bills are matched on it)."""
        intent = Intent(account, inst_id, pos_side, action, amount, request, okx_ms)
        return self.journal_intents([intent])[0]

    def journal_intents(self, intents: Sequence[Intent]) -> list[int]:
        """Write pending entries, committed together before their calls are sent (all of them
        or none: an error means none was written); their ids, in order.

        One commit for the calls a push started on several positions (issue 18): three
        intents in one statement cost SQLite 35-60 us instead of 80-120 us one by one."""
        now = self._now_ms()
        rows: list[IntentRow] = [
            (
                i.account,
                i.inst_id,
                i.pos_side,
                i.action,
                i.amount,
                redact_text(i.request),
                now,
                i.okx_ms,
            )
            for i in intents
        ]
        return self._insert_intents(rows) if rows else []

    @abstractmethod
    def _insert_intents(self, rows: list[IntentRow]) -> list[int]:
        """The backend's write of ``rows`` (:data:`INTENT_COLUMNS`) as ``pending`` entries:
        committed together or not at all; the new ids in the rows' order."""

    def journal_result(
        self, entry_id: int, status: ResultStatus, code: str | None = None, msg: str | None = None
    ) -> None:
        """Complete an entry: "ok", "error" (with OKX code and message) or "unknown"."""
        _check_status(status)
        n = self._execute(
            self.dialect.sql(
                "UPDATE journal SET status = ?, code = ?, msg = ?, done_ms = ? WHERE id = ?"
            ),
            (status, code, None if msg is None else redact_text(msg), self._now_ms(), entry_id),
        )
        if n != 1:
            raise KeyError(f"no journal entry {entry_id}")

    def journal_bill(
        self, entry_id: int, bill_id: str, *, status: ResultStatus | None = None
    ) -> None:
        """Credit OKX bill ``bill_id`` to an entry (and, when given, set its status: an
        ambiguous call a bill showed applied becomes "ok"). A bill already credited to another
        entry is refused with ``ValueError``: one bill, one call."""
        _check_status(status)
        sql = self.dialect.sql
        with self._transaction() as run:
            other = run(
                sql("SELECT id FROM journal WHERE bill_id = ? AND id != ?"), (bill_id, entry_id)
            ).rows
            if other:
                raise ValueError(
                    f"bill {bill_id} is already credited to journal entry {other[0][0]}"
                )
            n = run(
                sql("UPDATE journal SET bill_id = ?, status = COALESCE(?, status) WHERE id = ?"),
                (bill_id, status, entry_id),
            ).rowcount
        if n != 1:
            raise KeyError(f"no journal entry {entry_id}")

    def journal_entry(self, entry_id: int) -> JournalEntry | None:
        rows = self._query(
            self.dialect.sql(f"SELECT {_J_COLS} FROM journal WHERE id = ?"), (entry_id,)
        )
        return JournalEntry(*rows[0]) if rows else None

    def pending_intents(self) -> list[JournalEntry]:
        """Entries sent (or about to be) with no result: after a crash, outcome unknown."""
        rows = self._query(f"SELECT {_J_COLS} FROM journal WHERE status = 'pending' ORDER BY id")
        return [JournalEntry(*row) for row in rows]

    def open_entries(self) -> list[JournalEntry]:
        """Entries not final (``pending`` or ``unknown``, whatever run left them), oldest first."""
        rows = self._query(
            f"SELECT {_J_COLS} FROM journal WHERE status IN ('pending', 'unknown') ORDER BY id"
        )
        return [JournalEntry(*row) for row in rows]

    def journal_since(self, since_ms: int, account: str | None = None) -> list[JournalEntry]:
        """Entries sent at or after ``since_ms``, oldest first (the runaway guard's window);
        only ``account``'s when given. A bills read matches one account's bills against that
        account's rows: reading every account's (1,000 accounts, an hour of calls) on each
        read was quadratic in a fleet-wide burst (docs/performance.md, funding)."""
        args: tuple[object, ...]
        if account is None:
            sql, args = f"SELECT {_J_COLS} FROM journal WHERE sent_ms >= ? ORDER BY id", (since_ms,)
        else:
            sql = f"SELECT {_J_COLS} FROM journal WHERE account = ? AND sent_ms >= ? ORDER BY id"
            args = (account, since_ms)
        return [JournalEntry(*row) for row in self._query(self.dialect.sql(sql), args)]

    def journal(self, limit: int = 100) -> list[JournalEntry]:
        """The latest ``limit`` entries, newest first."""
        rows = self._query(
            self.dialect.sql(f"SELECT {_J_COLS} FROM journal ORDER BY id DESC LIMIT ?"), (limit,)
        )
        return [JournalEntry(*row) for row in rows]

    def prune_journal(self, before_ms: int, *, dry_run: bool = False) -> int:
        """Delete finished entries (``ok``/``error``) completed before ``before_ms``; returns
        how many (would be) deleted. Pending and unknown entries stay, however old.

        Deletes in small transactions, so a reactor running on the same store is never kept
        waiting for a whole prune (its intents must not time out behind it).
        """
        where = "status IN ('ok', 'error') AND done_ms IS NOT NULL AND done_ms < ?"
        if dry_run:
            return int(
                self._query(
                    self.dialect.sql(f"SELECT COUNT(*) FROM journal WHERE {where}"), (before_ms,)
                )[0][0]
            )
        total = 0
        while True:
            n = self._execute(
                self.dialect.sql(
                    f"DELETE FROM journal WHERE id IN (SELECT id FROM journal WHERE {where}"
                    " ORDER BY id LIMIT ?)"
                ),
                (before_ms, _PRUNE_BATCH),
            )
            total += n
            if n < _PRUNE_BATCH:
                return total
