"""Per-position history for the status page: the last call from the journal, and the margin
as OKX pushed it (:class:`MarginRecorder`), recorded as it arrives (pure, no I/O).

The chart draws only what was recorded: every margin a ``positions`` push or snapshot carried,
at its ``uTime``, kept for the chart's window and at most ``max_points`` per position. Nothing
is inferred (the journal has call amounts, not margins, and fills and fees move isolated margin
too), so after a restart the chart starts empty and fills as pushes arrive. A position that
closes (``pos`` 0) forgets its history, so a reopened one never shows an earlier one's past.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Protocol

Key = tuple[str, str, str]  # account, instId, posSide


class _PositionRow(Protocol):
    """A row that names its position (:data:`Key`)."""

    @property
    def account(self) -> str: ...
    @property
    def inst_id(self) -> str: ...
    @property
    def pos_side(self) -> str: ...


class JournalRow(_PositionRow, Protocol):
    """What :class:`reactor.store.JournalEntry` provides (read-only)."""

    @property
    def action(self) -> str: ...
    @property
    def amount(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def sent_ms(self) -> int: ...
    @property
    def done_ms(self) -> int | None: ...


def last_calls(rows: Iterable[JournalRow]) -> dict[Key, JournalRow]:
    """The latest call per position (by time sent; ties: the later row)."""
    out: dict[Key, JournalRow] = {}
    for r in rows:
        key = (r.account, r.inst_id, r.pos_side)
        prev = out.get(key)
        if prev is None or r.sent_ms >= prev.sent_ms:
            out[key] = r
    return out


class PushedPosition(_PositionRow, Protocol):
    """What :class:`reactor.okx.models.Position` provides (read-only)."""

    @property
    def pos(self) -> Decimal: ...
    @property
    def margin(self) -> Decimal | None: ...
    @property
    def u_time(self) -> int: ...
    @property
    def c_time(self) -> int: ...


class MarginRecorder:
    """The margin each position had, as pushed: ``(uTime ms, margin)`` steps per position.

    Bounded: points older than ``window_ms`` before the newest are dropped (the last one before
    the window is kept, it is where the line starts), at most ``max_points`` per position, and
    :meth:`history` forgets positions the engine no longer has.
    """

    def __init__(self, window_ms: int, max_points: int = 240) -> None:
        self._window_ms = window_ms
        self._max = max_points
        self._points: dict[Key, deque[tuple[int, Decimal]]] = {}
        # Each open position's OKX cTime (when it was opened) as last pushed, with that uTime.
        self._opened: dict[Key, tuple[int, int]] = {}

    def record(self, positions: Iterable[PushedPosition]) -> None:
        """Pushed positions, in any order: an older ``uTime`` than the last point is ignored
        (a late or replayed push), an unchanged margin adds nothing."""
        for p in positions:
            key = (p.account, p.inst_id, p.pos_side)
            if p.pos == 0:
                self._points.pop(key, None)
                self._opened.pop(key, None)
                continue
            opened = self._opened.get(key)
            if p.c_time > 0 and (opened is None or p.u_time >= opened[1]):
                self._opened[key] = (p.c_time, p.u_time)
            if p.margin is None:
                continue
            points = self._points.get(key)
            if points is None:
                points = self._points[key] = deque(maxlen=self._max)
            if points and (p.u_time < points[-1][0] or p.margin == points[-1][1]):
                continue
            points.append((p.u_time, p.margin))
            start = p.u_time - self._window_ms
            while len(points) > 1 and points[1][0] <= start:
                points.popleft()

    def c_time(self, key: Key) -> int | None:
        """The position's OKX ``cTime`` (epoch ms it was opened), as last pushed; None when no
        push with one has been seen."""
        opened = self._opened.get(key)
        return None if opened is None else opened[0]

    def __len__(self) -> int:
        """Points held (all positions): what the retention bounds."""
        return sum(len(v) for v in self._points.values())

    def history(
        self, current: Mapping[Key, Decimal | None], now_ms: int
    ) -> dict[Key, tuple[tuple[int, Decimal], ...]]:
        """Recorded steps within the window ending ``now_ms`` for the positions in ``current``
        (the line starts at the window's edge with the margin it had then, and ends at
        ``now_ms`` with the current margin); positions not in ``current`` are forgotten, and
        one without a recorded point gets nothing (no line rather than a made-up one)."""
        for key in [k for k in self._points if k not in current]:
            del self._points[key]
        for key in [k for k in self._opened if k not in current]:
            del self._opened[key]
        start = now_ms - self._window_ms
        out: dict[Key, tuple[tuple[int, Decimal], ...]] = {}
        for key, margin in current.items():
            points = self._points.get(key)
            if not points or margin is None:
                continue
            line = [(t, m) for t, m in points if t <= now_ms]
            before = [n for n, (t, _) in enumerate(line) if t <= start]
            line = [(max(t, start), m) for t, m in line[before[-1] if before else 0 :]]
            if not line:
                continue
            line.append((now_ms, margin))
            out[key] = tuple(line)
        return out
