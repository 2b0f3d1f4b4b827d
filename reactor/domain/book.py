"""In-memory position book, keyed by (account, instId, posSide).

Sans-I/O: the WebSocket session feeds it snapshot pages and pushes, the reconciler feeds it REST
reads; each call returns what changed so the engine re-evaluates only those positions. Built for
thousands of updates per second: one dict lookup and store per pushed position, no copies.

``uTime`` orders records, but one bad record must not freeze a position, so its trust is
bounded in two ways:

- **by the exchange clock**: a record whose ``uTime`` (or ``cTime``) lies more than
  :data:`UTIME_TOLERANCE_MS` beyond its own ``pTime`` contradicts itself - both stamps come
  from OKX's clock - and is dropped as invalid (``book.record.invalid``), never acted on. A
  record without ``pTime`` (REST reads) can only be compared with the local clock, which may
  be the one that is wrong: its ``uTime`` is *clamped* to the local time for ordering
  (``book.utime.clamped``), its values kept. Either way a clamped or dropped record orders no
  later than "received now", so every later record wins over it.
- **by a second look**: a snapshot or REST read that disagrees with a book entry claiming to be
  newer is ignored once (the stream may simply be ahead of the read); if the next snapshot or
  read still disagrees and the entry has not changed since, the read wins
  (``book.second_look``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from reactor.log import get_logger
from reactor.okx.models import Position, PositionKey

__all__ = ["UTIME_TOLERANCE_MS", "BookChange", "ChangeKind", "Drift", "PositionBook"]

log = get_logger(__name__)

# How far a record's uTime may run ahead of the exchange clock and still order as it says.
UTIME_TOLERANCE_MS = 5_000


def _wall_ms() -> int:
    return int(time.time() * 1000)


class ChangeKind(StrEnum):
    OPENED = "opened"
    UPDATED = "updated"
    CLOSED = "closed"
    REOPENED = "reopened"  # same key, new cTime: a new position (maintenance count restarts)


@dataclass(frozen=True, slots=True)
class BookChange:
    """One position's change. For CLOSED, ``position`` is the closing push (``pos`` 0) or, when
    the position vanished from a snapshot or REST read, the last one held."""

    key: PositionKey
    kind: ChangeKind
    position: Position
    previous: Position | None


@dataclass(frozen=True, slots=True)
class Drift:
    """A difference between the book and a REST read; ``field`` "presence" for missing/extra."""

    key: PositionKey
    field: str
    book: str
    exchange: str


# Fields compared by reconcile: (OKX name, attribute).
_RECONCILED = (("pos", "pos"), ("margin", "margin"), ("mgnMode", "mgn_mode"), ("cTime", "c_time"))


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _is_new_position(held: Position, incoming: Position) -> bool:
    return bool(incoming.c_time and held.c_time and incoming.c_time != held.c_time)


def _in_time(p: Position) -> bool:
    """Fast path: a pushed record whose cTime and uTime are within the tolerance of pTime."""
    limit = p.p_time + UTIME_TOLERANCE_MS
    return p.u_time <= limit and p.c_time <= limit


def _disagrees(held: Position, incoming: Position) -> bool:
    return any(getattr(held, attr) != getattr(incoming, attr) for _, attr in _RECONCILED)


class PositionBook:
    """Positions per account, with per-account freshness.

    An account is fresh once the last page of a snapshot arrived and until ``mark_stale`` (the
    session calls it on disconnect): reductions are never computed from a stale book.
    """

    __slots__ = ("_books", "_closed", "_doubted", "_fresh", "_now_ms", "_pending")

    def __init__(self, *, now_ms: Callable[[], int] = _wall_ms) -> None:
        """``now_ms``: the local clock (corrected to OKX's when known), used for records
        without ``pTime``."""
        self._now_ms = now_ms
        # key -> the book entry a read disagreed with while claiming to be newer (first look)
        self._doubted: dict[PositionKey, Position] = {}
        self._books: dict[str, dict[PositionKey, Position]] = {}
        self._pending: dict[str, dict[PositionKey, Position]] = {}
        # key -> (cTime, uTime) of the last close seen, so a late push cannot resurrect it.
        self._closed: dict[PositionKey, tuple[int, int]] = {}
        self._fresh: set[str] = set()

    # --- trust ------------------------------------------------------------------------------

    def _trusted(self, p: Position, source: str) -> Position | None:
        """``p`` with its ``uTime`` bounded by the exchange clock; None when it is invalid."""
        ref = p.p_time or self._now_ms()
        limit = ref + UTIME_TOLERANCE_MS
        if p.u_time <= limit and (not p.p_time or p.c_time <= limit):
            return p
        fields = {
            "account": p.account,
            "instId": p.inst_id,
            "posSide": p.pos_side,
            "source": source,
            "uTime": p.u_time,
            "cTime": p.c_time,
            "ref_ms": ref,
        }
        if p.p_time:  # OKX's clock against OKX's clock: the record contradicts itself
            log.warning("book.record.invalid", reason="uTime/cTime after pTime", **fields)
            return None
        log.warning("book.utime.clamped", **fields)
        return replace(p, u_time=ref)

    def _second_look(
        self, key: PositionKey, held: Position, incoming: Position, source: str
    ) -> bool:
        """A read disagreeing with a "newer" entry: False the first time, True when it still
        disagrees with the very same entry on the next read (the read then wins)."""
        if not _disagrees(held, incoming):
            return False
        if self._doubted.get(key) is held:
            del self._doubted[key]
            log.warning(
                "book.second_look",
                account=key[0],
                instId=key[1],
                posSide=key[2],
                source=source,
                book_uTime=held.u_time,
                read_uTime=incoming.u_time,
            )
            return True
        self._doubted[key] = held
        return False

    # --- snapshots --------------------------------------------------------------------------

    def apply_snapshot_page(
        self,
        account: str,
        positions: Sequence[Position],
        *,
        last_page: bool,
        cur_page: int | None = None,
    ) -> list[BookChange]:
        """Accumulate one snapshot page; on the last page replace the account's book.

        ``cur_page`` 1 (when given) discards pages left over from an interrupted snapshot.
        Positions with ``pos`` 0 are skipped. Returns the changes only on the last page.
        """
        if cur_page == 1:
            self._pending.pop(account, None)
        pending = self._pending.setdefault(account, {})
        for raw in positions:
            p = (
                raw
                if raw.u_time <= raw.p_time + UTIME_TOLERANCE_MS
                else self._trusted(raw, "snapshot")
            )
            if p is not None and p.pos != 0:
                seen = pending.get(p.key)
                if seen is None or seen.u_time <= p.u_time:
                    pending[p.key] = p
        if not last_page:
            return []
        del self._pending[account]
        changes = self._replace(account, pending, newer_wins=True, source="snapshot")
        self._fresh.add(account)
        return changes

    def _replace(
        self,
        account: str,
        incoming: dict[PositionKey, Position],
        *,
        newer_wins: bool,
        inst_id: str | None = None,
        source: str = "snapshot",
    ) -> list[BookChange]:
        """Make ``incoming`` the account's book (limited to ``inst_id`` when given)."""
        book = self._books.setdefault(account, {})
        changes: list[BookChange] = []
        gone = [k for k in book if k not in incoming and (inst_id is None or k[1] == inst_id)]
        for key in gone:
            last = book.pop(key)
            self._doubted.pop(key, None)
            self._closed[key] = (last.c_time, last.u_time)
            changes.append(BookChange(key, ChangeKind.CLOSED, last, last))
        for key, p in incoming.items():
            held = book.get(key)
            if held is None:
                book[key] = p
                self._closed.pop(key, None)
                changes.append(BookChange(key, ChangeKind.OPENED, p, None))
            elif _is_new_position(held, p):
                book[key] = p
                changes.append(BookChange(key, ChangeKind.REOPENED, p, held))
            elif (
                newer_wins
                and held.u_time > p.u_time
                and not self._second_look(key, held, p, source)
            ):
                continue  # a push newer than the snapshot already arrived
            elif held != p:
                book[key] = p
                changes.append(BookChange(key, ChangeKind.UPDATED, p, held))
        return changes

    # --- pushes -----------------------------------------------------------------------------

    def apply_update(self, account: str, positions: Sequence[Position]) -> list[BookChange]:
        """Apply an ``event_update`` push; out-of-date entries are ignored.

        Older ``uTime`` than held: ignored (equal ``uTime`` with other data: applied). A push of
        an older ``cTime`` than held belongs to the previous position: ignored; a newer one is a
        new position (REOPENED). ``pos`` 0 removes the position (CLOSED).
        """
        book = self._books.get(account)
        if book is None:
            book = self._books[account] = {}
        pending = self._pending.get(account)
        changes: list[BookChange] = []
        for raw in positions:
            if _in_time(raw):
                p = raw  # the common case: two comparisons, no clock read
            else:
                trusted = self._trusted(raw, "push")
                if trusted is None:
                    continue
                p = trusted
            key = p.key
            if pending is not None:
                self._merge_pending(pending, p)
            held = book.get(key)
            if held is None:
                if p.pos == 0:
                    self._closed[key] = (p.c_time, p.u_time)
                    continue
                tomb = self._closed.get(key)
                if tomb is not None and p.c_time == tomb[0] and p.u_time <= tomb[1]:
                    continue  # a late push of a position already closed
                book[key] = p
                changes.append(BookChange(key, ChangeKind.OPENED, p, None))
                continue
            if _is_new_position(held, p):
                if p.c_time < held.c_time:
                    continue  # straggler from the previous position
                if p.pos == 0:
                    del book[key]
                    self._closed[key] = (p.c_time, p.u_time)
                    changes.append(BookChange(key, ChangeKind.CLOSED, p, held))
                else:
                    book[key] = p
                    changes.append(BookChange(key, ChangeKind.REOPENED, p, held))
                continue
            if p.u_time < held.u_time:
                continue
            if p.pos == 0:
                del book[key]
                self._doubted.pop(key, None)
                self._closed[key] = (p.c_time or held.c_time, p.u_time)
                changes.append(BookChange(key, ChangeKind.CLOSED, p, held))
            elif p != held:
                book[key] = p
                changes.append(BookChange(key, ChangeKind.UPDATED, p, held))
        return changes

    @staticmethod
    def _merge_pending(pending: dict[PositionKey, Position], p: Position) -> None:
        """Fold a push into a snapshot in progress, so that the snapshot neither revives a
        position the push closed nor drops one it opened."""
        snap = pending.get(p.key)
        if snap is not None and p.u_time < snap.u_time:
            return
        if p.pos == 0:
            pending.pop(p.key, None)
        else:
            pending[p.key] = p

    # --- freshness --------------------------------------------------------------------------

    def mark_stale(self, account: str) -> None:
        """The account's stream broke: its data may be old until the next full snapshot."""
        self._fresh.discard(account)
        self._pending.pop(account, None)

    def forget(self, account: str) -> None:
        """The account left the configuration (a reload): drop its positions and state."""
        self._books.pop(account, None)
        self._pending.pop(account, None)
        self._fresh.discard(account)
        for key in [k for k in self._doubted if k[0] == account]:
            del self._doubted[key]

    def is_fresh(self, account: str) -> bool:
        return account in self._fresh

    # --- queries ----------------------------------------------------------------------------

    def get(self, key: PositionKey) -> Position | None:
        book = self._books.get(key[0])
        return None if book is None else book.get(key)

    def positions(self, account: str | None = None) -> list[Position]:
        if account is not None:
            return list(self._books.get(account, {}).values())
        return [p for book in self._books.values() for p in book.values()]

    def accounts(self) -> list[str]:
        return list(self._books)

    def __len__(self) -> int:
        return sum(len(book) for book in self._books.values())

    # --- reconcile --------------------------------------------------------------------------

    def reconcile(
        self,
        account: str,
        positions: Sequence[Position],
        *,
        inst_id: str | None = None,
        as_of_ms: int | None = None,
    ) -> tuple[list[Drift], list[BookChange]]:
        """Compare a REST read with the book, correct the book and report the drift.

        ``inst_id`` limits the comparison to one instrument (a re-read after an ambiguous call).
        Book entries newer than the read (``uTime`` > REST ``uTime``, or > ``as_of_ms`` for ones
        the read lacks) are left alone: the stream moved on after the request was answered.
        """
        book = self._books.setdefault(account, {})
        truth: dict[PositionKey, Position] = {}
        for raw in positions:
            p = self._trusted(raw, "rest")
            if p is not None and p.pos != 0 and (inst_id is None or p.inst_id == inst_id):
                truth[p.key] = p
        drifts: list[Drift] = []
        incoming: dict[PositionKey, Position] = {}
        for key, p in truth.items():
            held = book.get(key)
            if held is None:
                drifts.append(Drift(key, "presence", "absent", "present"))
                incoming[key] = p
                continue
            if (
                held.u_time > p.u_time
                and p.c_time <= held.c_time
                and not self._second_look(key, held, p, "rest")
            ):
                incoming[key] = held
                continue
            for name, attr in _RECONCILED:
                ours, theirs = getattr(held, attr), getattr(p, attr)
                if ours != theirs:
                    drifts.append(Drift(key, name, _text(ours), _text(theirs)))
            incoming[key] = p
        for key, held in book.items():
            if key in truth or (inst_id is not None and key[1] != inst_id):
                continue
            if as_of_ms is not None and held.u_time > as_of_ms:
                if self._doubted.get(key) is not held:
                    self._doubted[key] = held
                    incoming[key] = held  # opened after the read (first look)
                    continue
                del self._doubted[key]
            drifts.append(Drift(key, "presence", "present", "absent"))
        changes = self._replace(account, incoming, newer_wins=False, inst_id=inst_id, source="rest")
        return drifts, changes
