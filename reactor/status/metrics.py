"""A tiny Prometheus registry: the handful of series the reactor exposes, no client library.

Counters and the latency histogram live here (the engine feeds them); gauges about accounts and
positions are read from a :class:`StatusSnapshot` at scrape time, so they can never disagree
with ``/api/status``. Everything runs on the event loop thread, so no locking.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

from reactor.status.model import StatusSnapshot

# Event-to-call latency: from the push that triggered a decision to the margin call being sent.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _num(value: float | int | Decimal) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value) if value != int(value) else str(int(value))
    return str(value)


class Metrics:
    """Counters and a histogram fed by the engine, rendered in Prometheus text format 0.0.4."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self._buckets = tuple(sorted(buckets))
        self._adjustments: Counter[str] = Counter()
        self._reconnects: Counter[str] = Counter()
        self._latency_counts = [0] * len(self._buckets)  # per bucket, not cumulative
        self._latency_sum = 0.0
        self._latency_count = 0

    def inc_adjustment(self, result: str) -> None:
        """One margin call finished: ok, failed, unknown, dry_run, ..."""
        self._adjustments[result] += 1

    def inc_reconnect(self, account: str) -> None:
        self._reconnects[account] += 1

    def observe_latency(self, seconds: float) -> None:
        self._latency_sum += seconds
        self._latency_count += 1
        i = bisect.bisect_left(self._buckets, seconds)
        if i < len(self._buckets):
            self._latency_counts[i] += 1

    def render(self, snapshot: StatusSnapshot | None = None) -> str:
        out: list[str] = []

        def family(name: str, kind: str, help_: str) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")

        family("reactor_margin_adjustments_total", "counter", "Margin calls finished, by result.")
        for result, n in sorted(self._adjustments.items()):
            out.append(f"reactor_margin_adjustments_total{_labels(result=result)} {n}")

        family("reactor_ws_reconnects_total", "counter", "WebSocket reconnects, by account.")
        for account, n in sorted(self._reconnects.items()):
            out.append(f"reactor_ws_reconnects_total{_labels(account=account)} {n}")

        name = "reactor_event_to_call_seconds"
        family(name, "histogram", "Latency from the triggering push to the margin call.")
        cumulative = 0
        for bound, n in zip(self._buckets, self._latency_counts, strict=True):
            cumulative += n
            out.append(f"{name}_bucket{_labels(le=_num(bound))} {cumulative}")
        out.append(f'{name}_bucket{{le="+Inf"}} {self._latency_count}')
        out.append(f"{name}_sum {_num(self._latency_sum)}")
        out.append(f"{name}_count {self._latency_count}")

        if snapshot is not None:
            self._render_snapshot(snapshot, family, out)
        return "\n".join(out) + "\n"

    @staticmethod
    def _render_snapshot(
        snap: StatusSnapshot, family: Callable[[str, str, str], None], out: list[str]
    ) -> None:
        family("reactor_positions", "gauge", "Open positions, by account, role and status.")
        for a in snap.accounts:
            by_status = Counter(p.status for p in a.positions)
            for status, n in sorted(by_status.items()):
                labels = _labels(account=a.name, role=a.role, status=status)
                out.append(f"reactor_positions{labels} {n}")

        family("reactor_account_up", "gauge", "1 when an enabled account is connected and fresh.")
        for a in snap.accounts:
            if a.enabled:
                up = int(a.connected and a.fresh and a.stopped_reason is None)
                out.append(f"reactor_account_up{_labels(account=a.name, role=a.role)} {up}")

        family("reactor_main_positions", "gauge", "Main-account positions, by side.")
        out.append(f'reactor_main_positions{{side="long"}} {snap.main_long}')
        out.append(f'reactor_main_positions{{side="short"}} {snap.main_short}')
        family("reactor_main_positions_expected", "gauge", "Expected main-account positions.")
        out.append(f"reactor_main_positions_expected {snap.main_expected_positions}")

        family("reactor_unrealized_pnl_usdt", "gauge", "Combined unrealised PnL (USDT).")
        out.append(f"reactor_unrealized_pnl_usdt {_num(snap.total_upl)}")
