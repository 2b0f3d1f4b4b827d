"""OKX's WebSocket limits, sans-I/O (DOC-WS "Connect" and "Connection count limit";
docs/spec/okx-fidelity.md §7.4):

- "Connection limit: 3 requests per second (based on IP)". What OKX answers beyond it is not
  documented: the simulator refuses the upgrade with HTTP 429 (``http_429``, what an HTTP
  gateway answers) or accepts it and closes at once with 1013 "Try Again Later" (``close``).
  Only accepted connections count (**unknown**: whether refused attempts use up the window).
- "The total number of 'subscribe'/'unsubscribe'/'login' requests per connection is limited
  to 480 times per hour": beyond it the request is answered with error 60014 "Requests too
  frequent." (the code ccxt's okx exceptions table maps to RateLimitExceeded; **likely**) and
  not carried out; the connection stays open (**unknown**).
- "30 WebSocket connections per specific WebSocket channel per sub-account": the latest
  connection to subscribe beyond it gets the usual subscribe acknowledgement, then
  ``channel-conn-count-error`` and its subscription is terminated (DOC-WS, with the example
  ``{"event":"channel-conn-count-error","channel":"orders","connCount":"30","connId":…}``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from reactor.okx.pacing import SlidingWindow

ConnectRefusal = Literal["http_429", "close"]
OPS_WINDOW_S = 3600.0
CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455 registry: "Try Again Later"


@dataclass(frozen=True)
class WsLimits:
    """The limits in force; 0 turns one off (benchmarks, ``rate_limits=False``)."""

    connects_per_s: int = 3
    refusal: ConnectRefusal = "http_429"
    ops_per_hour: int = 480
    conns_per_channel: int = 30


class ConnectLimiter:
    """Accepted connection requests per IP in the last second (a sliding window)."""

    def __init__(self, per_s: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_s = per_s
        self._clock = clock
        self._accepted: dict[str, SlidingWindow] = {}
        self.refused = 0

    def allow(self, ip: str) -> bool:
        """Count a connection request from ``ip``; False when it is over the limit."""
        if self.per_s <= 0:
            return True
        window = self._accepted.get(ip)
        if window is None:
            window = self._accepted[ip] = SlidingWindow(self.per_s, 1.0, clock=self._clock)
        if not window.try_acquire():
            self.refused += 1
            return False
        return True


class OpsWindow:
    """login/subscribe/unsubscribe requests of one connection in the last hour."""

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._window = SlidingWindow(per_hour, OPS_WINDOW_S) if per_hour > 0 else None

    def allow(self, now: float) -> bool:
        return self._window is None or self._window.try_acquire(now)
