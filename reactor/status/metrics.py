"""Prometheus metrics through ``prometheus_client``: one registry per :class:`Metrics`.

Counters and the latency histogram are fed by the engine (:class:`EngineObserver`); gauges about
accounts and positions are read from a :class:`StatusSnapshot` at scrape time, so they can never
disagree with ``/api/status``. The process collector exports ``process_open_fds`` and
``process_max_fds`` (and CPU, memory, start time), which the fd alerts read.

Semantics worth knowing:
- ``reactor_ws_reconnects_total`` counts lost connections that the reactor will reconnect; the
  disconnects of a clean shutdown (after :meth:`Metrics.stopping`) and of stopped accounts are
  not reconnects (``reason="stopped"``/``"shutdown"`` are dropped).
- ``reactor_event_to_call_seconds`` is the reaction latency: from the push that made a position
  due to its margin call being sent. Retries after a failed call are not reactions: they are
  observed with ``retry=True`` into ``reactor_retry_call_delay_seconds`` instead, so back-off
  never inflates the reaction latency.

Everything runs on the event loop thread.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import subprocess
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from reactor.status.model import StatusSnapshot

# Event-to-call latency: from the triggering push to the margin call being sent.
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
RETRY_BUCKETS: tuple[float, ...] = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# No ``*_created`` series: they double the exposition and nothing here alerts on them.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Reasons passed to inc_reconnect that are not followed by a reconnect.
_NOT_RECONNECTS = frozenset({"stopped", "shutdown"})


class _SnapshotCollector(Collector):
    """Gauges from the snapshot handed to :meth:`Metrics.render` (none without one)."""

    def __init__(self) -> None:
        self.snapshot: StatusSnapshot | None = None

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot
        if snap is None:
            return []
        return list(_snapshot_families(snap))


def _snapshot_families(snap: StatusSnapshot) -> Iterator[Metric]:
    positions = GaugeMetricFamily(
        "reactor_positions",
        "Open positions, by account, role and status.",
        labels=["account", "role", "status"],
    )
    for a in snap.accounts:
        for status, n in sorted(Tally(p.status for p in a.positions).items()):
            positions.add_metric([a.name, a.role, status], n)
    yield positions

    up = GaugeMetricFamily(
        "reactor_account_up",
        "1 when an enabled account is connected, fresh and not stopped.",
        labels=["account", "role"],
    )
    stopped = GaugeMetricFamily(
        "reactor_account_stopped",
        "1 when an enabled account is stopped until restart (bad credentials, ...).",
        labels=["account", "role"],
    )
    for a in snap.accounts:
        if a.enabled:
            up.add_metric([a.name, a.role], int(a.connected and a.fresh and not a.stopped_reason))
            stopped.add_metric([a.name, a.role], int(a.stopped_reason is not None))
    yield up
    yield stopped
    paused = GaugeMetricFamily(
        "reactor_account_paused",
        "1 when an operator paused the whole account (reactor pause / POST /api/pause).",
        labels=["account", "role"],
    )
    for a in snap.accounts:
        if a.enabled:
            paused.add_metric([a.name, a.role], int(a.paused is not None))
    yield paused

    accounts = GaugeMetricFamily(
        "reactor_accounts", "Configured accounts, by role and state.", labels=["role", "state"]
    )
    for role in ("sub", "main"):
        for state, n in snap.account_states(role).items():
            accounts.add_metric([role, state], n)
    yield accounts

    info = GaugeMetricFamily(
        "reactor_info",
        "Where the reactor trades: venue (sim/demo/live) and dry run.",
        labels=["venue", "dry_run"],
    )
    info.add_metric([snap.venue or "unknown", "true" if snap.dry_run else "false"], 1)
    yield info
    yield GaugeMetricFamily(
        "reactor_dry_run",
        "1 when margin calls are decided and logged but never sent.",
        value=int(snap.dry_run),
    )

    main = GaugeMetricFamily(
        "reactor_main_positions", "Main-account positions, by side.", labels=["side"]
    )
    main.add_metric(["long"], snap.main_long)
    main.add_metric(["short"], snap.main_short)
    yield main
    yield GaugeMetricFamily(
        "reactor_main_positions_expected",
        "Expected main-account positions.",
        value=snap.main_expected_positions,
    )
    yield GaugeMetricFamily(
        "reactor_unrealized_pnl_usdt",
        "Combined unrealised PnL (USDT).",
        value=float(snap.total_upl),
    )
    yield GaugeMetricFamily(
        "reactor_storage_ok",
        "1 when the last journal/ledger write succeeded.",
        value=int(snap.storage_ok),
    )


@dataclass(frozen=True, slots=True)
class DomainFigures:
    """What the ledger knows, read at scrape time (the service builds it from the journal
    and the maintenance records)."""

    # USDT moved by margin calls OKX accepted in the last hour: (account, add|reduce) -> sum.
    moved_usdt: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)
    # Maintenance records that count (not voided): (account, source) -> how many.
    maintenances: Mapping[tuple[str, str], int] = field(default_factory=dict)


@functools.cache
def build_info() -> tuple[str, str]:
    """(version, revision): the installed package's version; the git revision from
    ``REACTOR_REVISION`` (set by install.sh), else the checkout's HEAD, else ``unknown``."""
    try:
        version = importlib.metadata.version("okx-margin-reactor")
    except importlib.metadata.PackageNotFoundError:
        from reactor import __version__ as version
    revision = os.environ.get("REACTOR_REVISION", "")
    if not revision:
        try:
            r = subprocess.run(
                ["git", "rev-parse", "--short=12", "HEAD"],
                cwd=Path(__file__).resolve().parent,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            revision = r.stdout.strip() if r.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError):
            revision = ""
    return version, revision or "unknown"


class _DomainCollector(Collector):
    """``reactor_build_info`` always; the ledger's figures when a provider is set and works."""

    def __init__(self) -> None:
        self.provider: Callable[[], DomainFigures] | None = None

    def collect(self) -> Iterable[Metric]:
        version, revision = build_info()
        info = GaugeMetricFamily(
            "reactor_build_info",
            "The running build: package version and git revision (value 1).",
            labels=["version", "revision"],
        )
        info.add_metric([version, revision], 1)
        out: list[Metric] = [info]
        if self.provider is None:
            return out
        try:
            figures = self.provider()
        except Exception:  # the ledger is down: reactor_storage_ok says so
            return out
        moved = GaugeMetricFamily(
            "reactor_margin_moved_usdt",
            "USDT moved by margin calls OKX accepted in the last hour, by account and action.",
            labels=["account", "action"],
        )
        for (account, action), total in sorted(figures.moved_usdt.items()):
            moved.add_metric([account, action], float(total))
        maint = GaugeMetricFamily(
            "reactor_maintenances",
            "Maintenance records that count (not voided), by account and source.",
            labels=["account", "source"],
        )
        for (account, source), n in sorted(figures.maintenances.items()):
            maint.add_metric([account, source], n)
        return [*out, moved, maint]


class Metrics:
    """The engine's observer and the ``/metrics`` renderer."""

    def __init__(
        self,
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
        *,
        process: bool = True,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._stopping = False
        self._adjustments = Counter(
            "reactor_margin_adjustments",
            "Margin calls finished, by result (ok, an OKX code, unknown, not_sent, ...) and "
            "account.",
            ["result", "account"],
            registry=self.registry,
        )
        self._reconnects = Counter(
            "reactor_ws_reconnects",
            "WebSocket connections lost and reconnected, by account (not clean shutdowns).",
            ["account"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "reactor_event_to_call_seconds",
            "Reaction latency: from the push that made a position due to its margin call "
            "(retries excluded).",
            buckets=sorted(buckets),
            registry=self.registry,
        )
        self._retry_delay = Histogram(
            "reactor_retry_call_delay_seconds",
            "From the push that made a position due to a retried margin call (back-off included).",
            buckets=RETRY_BUCKETS,
            registry=self.registry,
        )
        self._snapshot = _SnapshotCollector()
        self.registry.register(self._snapshot)
        self._domain = _DomainCollector()
        self.registry.register(self._domain)
        if process:
            # process_open_fds, process_max_fds, CPU, memory (Linux /proc; empty elsewhere).
            ProcessCollector(registry=self.registry)

    # -- EngineObserver ---------------------------------------------------------------------------
    def inc_adjustment(self, result: str, account: str = "") -> None:
        """One margin call finished: ok, an OKX code, unknown, not_sent, journal_failed, ..."""
        self._adjustments.labels(result=result, account=account).inc()

    def inc_reconnect(self, account: str, reason: str = "") -> None:
        """A connection was lost; counted unless it ends for good (shutdown, stopped)."""
        if self._stopping or reason in _NOT_RECONNECTS:
            return
        self._reconnects.labels(account=account).inc()

    def observe_latency(self, seconds: float, *, retry: bool = False, account: str = "") -> None:
        """Push-to-call time; ``retry=True`` for a call after a failed one (back-off inside)."""
        del account  # accepted for symmetry; a per-account histogram would be 12 series each
        (self._retry_delay if retry else self._latency).observe(max(seconds, 0.0))

    def stopping(self) -> None:
        """A clean shutdown has begun: the disconnects that follow are not reconnects."""
        self._stopping = True

    def set_domain(self, provider: Callable[[], DomainFigures] | None) -> None:
        """Where the ledger's figures come from at scrape time (None: not exported)."""
        self._domain.provider = provider

    # -- exposition -------------------------------------------------------------------------------
    def render(self, snapshot: StatusSnapshot | None = None) -> str:
        """Prometheus text format 0.0.4 of everything, gauges from ``snapshot``."""
        self._snapshot.snapshot = snapshot
        try:
            return generate_latest(self.registry).decode()
        finally:
            self._snapshot.snapshot = None
