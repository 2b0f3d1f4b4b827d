"""One account's reading of OKX's clock: the local clock plus the offset last measured.

OKX refuses a signature whose timestamp is off by more than 30 s (REST 50102, WebSocket login
60006). A REST client measures the offset (``GET /api/v5/public/time``) and signs with it; the
WebSocket sessions sign their logins with the same object, so they never disagree and a re-sync
by any is used by all. The offset is the host's, not an account's, and ``public/time`` is
limited per IP (10 per 2 s): the running reactor keeps one for every account (a funding
settlement at 1,000 accounts otherwise queued 1,000 time reads), and a lock so that accounts
asking at once share one reading. Nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class ExchangeClock:
    """OKX's time as this host sees it: ``local() + offset_s``. One per process."""

    __slots__ = ("_local", "measurements", "offset_s", "sync_lock")

    def __init__(self, local: Callable[[], float] = time.time) -> None:
        self._local = local
        self.offset_s = 0.0  # OKX's clock minus ours, seconds (0 until measured)
        self.measurements = 0  # offsets measured so far
        self.sync_lock = asyncio.Lock()  # one time read in flight for every account sharing it

    def __repr__(self) -> str:
        return f"ExchangeClock(offset_s={self.offset_s:.3f}, measurements={self.measurements})"

    def local(self) -> float:
        """This host's clock (seconds), uncorrected: what a round trip is timed with."""
        return self._local()

    def now(self) -> float:
        """OKX's time (seconds) as far as the last measurement tells."""
        return self._local() + self.offset_s

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def measured(self, server_ms: int, before: float, after: float) -> float:
        """Take OKX's ``server_ms``, answered between local ``before`` and ``after``; returns
        the offset now in force.

        OKX stamped the answer inside the round trip, so its offset lies within
        ``[server - after, server - before]``. An offset already measured and inside that
        interval stays: a slow round trip (a busy exchange or a busy event loop) only blurs the
        reading, and taking its middle moved the offset by up to half the round trip - at a
        fleet-wide burst, enough to sign the next requests outside OKX's window. One outside
        the interval is wrong (a clock step) and is replaced by the middle."""
        lo, hi = server_ms / 1000.0 - after, server_ms / 1000.0 - before
        if not (self.measurements and lo <= self.offset_s <= hi):
            self.offset_s = (lo + hi) / 2.0
        self.measurements += 1
        return self.offset_s
