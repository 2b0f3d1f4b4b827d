"""Build the :class:`StatusSnapshot` from the engine's read-only view (no writes).

Extra, optional sources (all additive; the snapshot is complete without them): the venue and
dry-run flag the process runs with, the journal of margin calls (rows of
:class:`reactor.store.JournalEntry`) for each position's last action, and the margins OKX pushed
(:class:`reactor.status.history.MarginRecorder`) for its chart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Protocol

from reactor.engine.view import EngineView
from reactor.log import amounts_in_text, usdt
from reactor.status.history import JournalRow, Key, MarginRecorder, last_calls
from reactor.status.model import AccountStatus, PositionStatus, StatusSnapshot

HISTORY_WINDOW_MS = 6 * 3600 * 1000  # the chart's span: the last six hours


class EngineViewSource(Protocol):
    def view(self) -> EngineView: ...


def _status(dry_run: bool, status: str, reason: str, in_band: bool | None) -> tuple[str, str]:
    """A dry run never corrects: a position it would correct is ``dry_run``, not ``ok``."""
    if dry_run and status == "ok" and in_band is False:
        return "dry_run", "dry run: would adjust" if reason in ("", "dry run") else reason
    return status, reason


def build_snapshot(
    view: EngineView,
    generated_ms: int,
    *,
    venue: str = "",
    dry_run: bool = False,
    journal: Sequence[JournalRow] = (),
    margins: MarginRecorder | None = None,
) -> StatusSnapshot:
    """``margins``: the recorded pushes the charts draw (none without it: nothing is made up)."""
    current: dict[Key, Decimal | None] = {
        (p.account, p.inst_id, p.pos_side): p.margin for a in view.accounts for p in a.positions
    }
    last = last_calls(journal)
    history = {} if margins is None else margins.history(current, generated_ms)
    accounts = []
    for a in view.accounts:
        rows = []
        for p in a.positions:
            key = (p.account, p.inst_id, p.pos_side)
            band_lo = None if p.band is None else p.band[0]
            band_hi = None if p.band is None else p.band[1]
            in_band = (
                None
                if p.margin is None or band_lo is None or band_hi is None
                else band_lo <= p.margin <= band_hi
            )
            status, reason = _status(dry_run, p.status, p.reason, in_band)
            call = last.get(key)
            rows.append(
                PositionStatus(
                    account=p.account,
                    role=p.role,
                    inst_id=p.inst_id,
                    pos_side=p.pos_side,
                    pos=p.pos,
                    margin=usdt(p.margin),
                    target=p.target,
                    band_lo=band_lo,
                    band_hi=band_hi,
                    count=p.count,
                    upl=usdt(p.upl),
                    profit_rate=p.profit_rate,
                    status=status,
                    reason=amounts_in_text(reason),
                    last_action=None if call is None else call.action,
                    last_amount=None if call is None else usdt(_dec(call.amount)),
                    last_result=None if call is None else call.status,
                    last_action_ms=None if call is None else call.sent_ms,
                    history=history.get(key, ()) if p.role == "sub" else (),
                    sources=p.sources,
                    c_time=None if margins is None else margins.c_time(key),
                )
            )
        accounts.append(
            AccountStatus(
                name=a.name,
                role=a.role,
                enabled=a.enabled,
                # The socket's state is the session's (the runtime's WithSessionState puts
                # it here); the engine alone knows only that its book is fresh, which a live
                # subscription implies.
                connected=a.fresh,
                fresh=a.fresh,
                stopped_reason=a.stopped_reason,
                positions=tuple(rows),
                paused=a.paused,
            )
        )
    return StatusSnapshot(
        accounts=tuple(accounts),
        main_expected_positions=view.main_expected_positions,
        generated_ms=generated_ms,
        engine_problems=view.problems,
        storage_ok=view.storage_ok,
        internal_errors=view.internal_errors,
        venue=venue,
        dry_run=dry_run,
    )


def _dec(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except ArithmeticError:
        return None


class EngineStatus:
    """The engine as the status server's :class:`StatusSource`.

    ``journal(since_ms)`` (e.g. ``ledger.journal_since``) feeds last actions (the last
    ``history_window_ms``); ``margins`` the charts; its
    rows are reused for ``journal_ttl_s`` (a page refreshing every 3 s in several browsers reads
    the ledger once); when it raises (the ledger is locked or gone) the snapshot is built
    without them.
    """

    def __init__(
        self,
        engine: EngineViewSource,
        *,
        venue: str = "",
        dry_run: bool = False,
        journal: Callable[[int], Sequence[JournalRow]] | None = None,
        margins: MarginRecorder | None = None,
        history_window_ms: int = HISTORY_WINDOW_MS,
        journal_ttl_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._ttl_s = journal_ttl_s
        self._clock = clock
        self._cached: tuple[float, Sequence[JournalRow]] | None = None
        self._venue = venue
        self._dry_run = dry_run
        self._journal = journal
        self._window_ms = history_window_ms
        self._margins = margins

    def status_snapshot(self) -> StatusSnapshot:
        now_ms = int(time.time() * 1000)
        return build_snapshot(
            self._engine.view(),
            now_ms,
            venue=self._venue,
            dry_run=self._dry_run,
            journal=self._rows(now_ms),
            margins=self._margins,
        )

    def _rows(self, now_ms: int) -> Sequence[JournalRow]:
        if self._journal is None:
            return ()
        now = self._clock()
        if self._cached is not None and now - self._cached[0] < self._ttl_s:
            return self._cached[1]
        try:
            rows = self._journal(now_ms - self._window_ms)
        except Exception:  # the page must render while storage is failing (/healthz says so)
            rows = ()
        self._cached = (now, rows)
        return rows
