"""The simulator's fault plan: what it should do wrong, and when (no I/O, injected clock).

Faults are set through ``POST /sim/faults`` (see :mod:`reactor.sim.admin`); the REST and
WebSocket cores ask the plan before answering. Keeping the plan apart from the transport means a
fault is a value a test can inspect, not a flag buried in a handler.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

RestFaultKind = Literal["rest_error", "rest_delay", "rest_gateway"]


@dataclass
class RestFault:
    """One armed REST fault: answer ``count`` requests of ``account`` to ``path`` wrongly.

    ``rest_error`` answers with OKX's envelope for ``code``; ``rest_delay`` applies the request
    at once and answers after ``delay_s`` (None: never); ``rest_gateway`` answers with a 5xx
    gateway body (``status``, ``body_kind`` "html" or "json"), without applying the request
    unless ``applied`` (a gateway timeout after the backend acted: the ambiguous case).
    """

    kind: RestFaultKind
    account: str
    path: str
    code: str = ""
    delay_s: float | None = None
    count: int = 1
    status: int = 502
    body_kind: Literal["html", "json"] = "html"
    applied: bool = False
    http_status: int | None = None  # rest_error: answer with this status, not the code's own


class FaultPlan:
    """Armed faults, consumed as requests meet them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rest: list[RestFault] = []
        self._silent_until: dict[str, float] = {}
        self._quiet_close_s: dict[str, float] = {}
        self._channel_delay_s: dict[tuple[str, str], float] = {}
        self._login_errors: dict[str, list[str]] = {}

    def add_rest(self, fault: RestFault) -> None:
        self._rest.append(fault)

    def take_rest(
        self, kinds: tuple[RestFaultKind, ...], account: str, path: str
    ) -> RestFault | None:
        """The first armed fault of one of ``kinds`` for this request, counted down."""
        for f in self._rest:
            if f.kind in kinds and f.account == account and f.path == path and f.count > 0:
                f.count -= 1
                if f.count == 0:
                    self._rest.remove(f)
                return f
        return None

    def silence(self, account: str, seconds: float) -> None:
        """No pushes, snapshots or pongs to ``account``'s connections for ``seconds``."""
        self._silent_until[account] = self._clock() + seconds

    def silent(self, account: str) -> bool:
        return self._clock() < self._silent_until.get(account, 0.0)

    def set_quiet_close(self, account: str, seconds: float | None) -> None:
        """Close ``account``'s connections once the client has *sent* nothing for ``seconds``
        (None: off). OKX's documented rule only closes when nothing moved either way (DOC-WS,
        docs/spec/okx-fidelity.md §2); this keeps "OKX is stricter than its docs" testable."""
        if seconds is None:
            self._quiet_close_s.pop(account, None)
        else:
            self._quiet_close_s[account] = seconds

    def quiet_close_s(self, account: str) -> float | None:
        return self._quiet_close_s.get(account)

    def set_channel_delay(self, account: str, channel: str, seconds: float | None) -> None:
        """Hold ``account``'s event pushes on ``channel`` for ``seconds`` more (None: off).

        OKX pushes one fill on ``positions`` and on ``orders`` in either order, tens of
        milliseconds apart; delaying one channel lets a test pick the order."""
        if seconds is None or seconds <= 0:
            self._channel_delay_s.pop((account, channel), None)
        else:
            self._channel_delay_s[(account, channel)] = seconds

    def channel_delay_s(self, account: str, channel: str) -> float:
        return self._channel_delay_s.get((account, channel), 0.0)

    def add_login_error(self, account: str, code: str, count: int = 1) -> None:
        """Answer ``account``'s next ``count`` WebSocket logins with error ``code`` (any code of
        OKX's table, e.g. 60032 "API key doesn't exist" for a key deleted on OKX)."""
        self._login_errors.setdefault(account, []).extend([code] * count)

    def take_login_error(self, account: str) -> str | None:
        queue = self._login_errors.get(account)
        if not queue:
            return None
        code = queue.pop(0)
        if not queue:
            del self._login_errors[account]
        return code
