"""The read-only status view: what the operator sees, as plain frozen data.

The engine builds a :class:`StatusSnapshot` on demand (``StatusSource.status_snapshot()``); the
HTTP server, the metrics and the dashboard only read it, so they can never change the reactor.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

POSITION_STATUSES = (
    "ok",
    "adjusting",
    "blocked",
    "held",
    "error",
    "stale",
    "unmanaged",
    "dry_run",
    "paused",
)
VENUES = ("sim", "demo", "live")
# How the dashboard's average profit rate is weighted (shown next to it).
PROFIT_RATE_WEIGHTING = "margin-weighted: total uPnL / total margin of positions reporting both"
ROLES = ("sub", "main")
# What the page's "needs attention" panel counts, most severe first (also the sort order).
ATTENTION_KINDS = ("error", "blocked", "held", "paused", "stale")
# /healthz: down (503) when problems() is not empty, degraded (200) when something needs
# attention but the reactor can still act, healthy (200) otherwise.
HEALTH_STATES = ("healthy", "degraded", "down")

_RATE_QUANTUM = Decimal("0.0001")


def _dec(value: Decimal | None) -> str | None:
    # Fixed-point text: JSON numbers would go through float, and str() may give '1E+1'.
    return None if value is None else format(value, "f")


@dataclass(frozen=True, slots=True)
class PositionStatus:
    account: str
    role: str  # sub | main
    inst_id: str
    pos_side: str  # long | short | net
    pos: Decimal
    margin: Decimal | None
    target: Decimal | None
    band_lo: Decimal | None
    band_hi: Decimal | None
    count: int  # maintenance count of the current position
    upl: Decimal | None
    profit_rate: Decimal | None  # upl / margin, a fraction (-0.1 is -10 %)
    status: str  # ok | adjusting | blocked | error | stale | unmanaged | dry_run | paused
    reason: str = ""
    # The last margin call for this position (from the journal): add / reduce, its amount,
    # its outcome (ok / error / unknown / pending) and when it was sent (epoch ms).
    last_action: str | None = None
    last_amount: Decimal | None = None
    last_result: str | None = None
    last_action_ms: int | None = None
    # Margin over the last hours, oldest first: (epoch ms, margin) steps for the chart.
    history: tuple[tuple[int, Decimal], ...] = ()
    # Where the counted maintenance records came from: fill | api | cli | backfill -> how many.
    sources: tuple[tuple[str, int], ...] = ()
    # OKX's cTime: when the position was opened (epoch ms; None until a push carried it). The
    # maintenance count belongs to this position: a reopened one has another cTime.
    c_time: int | None = None

    @property
    def in_band(self) -> bool | None:
        """None when margin or band is unknown."""
        if self.margin is None or self.band_lo is None or self.band_hi is None:
            return None
        return self.band_lo <= self.margin <= self.band_hi

    @property
    def side(self) -> str:
        """long or short; a net-mode position's side is the sign of ``pos``."""
        if self.pos_side in ("long", "short"):
            return self.pos_side
        return "short" if self.pos < 0 else "long"

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "role": self.role,
            "instId": self.inst_id,
            "posSide": self.pos_side,
            "cTime": self.c_time,
            "side": self.side,
            "pos": _dec(self.pos),
            "margin": _dec(self.margin),
            "target": _dec(self.target),
            "bandLo": _dec(self.band_lo),
            "bandHi": _dec(self.band_hi),
            "count": self.count,
            "sources": dict(self.sources),
            "upl": _dec(self.upl),
            "profitRate": _dec(self.profit_rate),
            "status": self.status,
            "reason": self.reason,
            "lastAction": None
            if self.last_action is None
            else {
                "action": self.last_action,
                "amount": _dec(self.last_amount),
                "result": self.last_result,
                "ms": self.last_action_ms,
            },
            "history": [[ms, _dec(m)] for ms, m in self.history],
        }


@dataclass(frozen=True, slots=True)
class Attention:
    """One thing an operator should look at: a position or an account (``inst_id`` None) or
    the engine itself (``account`` "")."""

    kind: str  # one of ATTENTION_KINDS
    account: str
    inst_id: str | None
    pos_side: str | None
    reason: str

    @property
    def where(self) -> str:
        """``sub-a CRO-USDT-SWAP long``, ``sub-a`` or ``engine``."""
        if not self.account:
            return "engine"
        if self.inst_id is None:
            return self.account
        return f"{self.account} {self.inst_id} {self.pos_side}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "account": self.account,
            "instId": self.inst_id,
            "posSide": self.pos_side,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class AccountStatus:
    name: str
    role: str  # sub | main
    enabled: bool
    connected: bool
    fresh: bool  # a snapshot newer than the freshness limit has arrived since (re)connecting
    stopped_reason: str | None
    positions: tuple[PositionStatus, ...] = ()
    paused: str | None = None  # paused by an operator (reason, "" without one); None: not paused
    # Book staleness after a lost subscription (the private session's, ws.book.stale): since
    # when it is stale now (wall ms; None: it is not), and how long the last window lasted.
    stale_since_ms: int | None = None
    last_stale_s: float | None = None

    @property
    def state(self) -> str:
        """disabled | stopped | disconnected | stale | live (one word for totals and badges)."""
        if not self.enabled:
            return "disabled"
        if self.stopped_reason is not None:
            return "stopped"
        if not self.connected:
            return "disconnected"
        return "live" if self.fresh else "stale"

    def problems(self) -> tuple[str, ...]:
        """Why this account is not healthy; empty when it is (or when it is disabled)."""
        if not self.enabled:
            return ()
        out: list[str] = []
        if self.stopped_reason is not None:
            out.append(f"{self.name}: stopped ({self.stopped_reason})")
        if not self.connected:
            out.append(f"{self.name}: not connected")
        elif not self.fresh:
            out.append(f"{self.name}: data not fresh")
        return tuple(out)

    def attention(self) -> tuple[Attention, ...]:
        """What needs a look in this account: its own state (stopped: error; disconnected or
        not fresh: stale; paused), then its positions in error, blocked, held, paused or stale.
        Nothing for a disabled account."""
        if not self.enabled:
            return ()
        out: list[Attention] = []
        if self.stopped_reason is not None:
            out.append(Attention("error", self.name, None, None, f"stopped: {self.stopped_reason}"))
        elif not self.connected:
            out.append(Attention("stale", self.name, None, None, "not connected"))
        elif not self.fresh:
            out.append(Attention("stale", self.name, None, None, "data not fresh"))
        if self.paused is not None:
            out.append(Attention("paused", self.name, None, None, self.paused or "paused"))
        for p in self.positions:
            if p.status in ATTENTION_KINDS:
                out.append(Attention(p.status, p.account, p.inst_id, p.pos_side, p.reason))
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "enabled": self.enabled,
            "connected": self.connected,
            "fresh": self.fresh,
            "stoppedReason": self.stopped_reason,
            "paused": self.paused is not None,
            "pausedReason": self.paused,
            "state": self.state,
            "staleSinceMs": self.stale_since_ms,
            "lastStaleS": self.last_stale_s,
            "positions": [p.to_json() for p in self.positions],
        }


@dataclass(frozen=True, slots=True)
class HaStatus:
    """High availability as this instance sees it: its role for its scope, the lease's epoch
    (the one it holds as leader, the holder's last seen as standby) and the holder."""

    scope: str
    instance: str
    role: str  # leader | standby
    epoch: int | None  # None: no grant seen yet
    holder: str | None  # None: nobody holds the lease (or the database is unreachable)

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "instance": self.instance,
            "role": self.role,
            "epoch": self.epoch,
            "holder": self.holder,
        }


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    accounts: tuple[AccountStatus, ...]
    main_expected_positions: int
    generated_ms: int
    engine_problems: tuple[str, ...] = ()  # journal writes failing, internal errors, guard holds
    storage_ok: bool = True  # the last journal/ledger write succeeded
    internal_errors: int = 0  # engine tasks that raised (engine.task.failed) since start
    venue: str = ""  # sim | demo | live ("" when the caller did not say)
    dry_run: bool = False  # decides and logs, never calls margin-balance
    ha: HaStatus | None = None  # high availability (cfg.ha); None without it

    # -- main account (read-only, monitored) -------------------------------------------------
    def _main_positions(self) -> list[PositionStatus]:
        return [p for a in self.accounts if a.role == "main" for p in a.positions]

    @property
    def has_main(self) -> bool:
        return any(a.role == "main" and a.enabled for a in self.accounts)

    @property
    def main_long(self) -> int:
        return sum(1 for p in self._main_positions() if p.side == "long")

    @property
    def main_short(self) -> int:
        return sum(1 for p in self._main_positions() if p.side == "short")

    @property
    def main_total(self) -> int:
        return len(self._main_positions())

    @property
    def main_below_expected(self) -> bool:
        """True when a main account is configured and holds fewer positions than expected."""
        return self.has_main and self.main_total < self.main_expected_positions

    # -- sub-accounts (managed) --------------------------------------------------------------
    @property
    def sub_accounts(self) -> int:
        """Enabled sub-accounts."""
        return sum(1 for a in self.accounts if a.role == "sub" and a.enabled)

    @property
    def sub_positions(self) -> int:
        return sum(len(a.positions) for a in self.accounts if a.role == "sub")

    def account_states(self, role: str | None = "sub") -> dict[str, int]:
        """Accounts of ``role`` (None: all) by :attr:`AccountStatus.state`, zeros included."""
        out = dict.fromkeys(("live", "stale", "disconnected", "stopped", "disabled"), 0)
        for a in self.accounts:
            if role is None or a.role == role:
                out[a.state] += 1
        return out

    @property
    def stopped_accounts(self) -> tuple[AccountStatus, ...]:
        return tuple(a for a in self.accounts if a.enabled and a.stopped_reason is not None)

    # -- combined PnL ------------------------------------------------------------------------
    def _all_positions(self) -> list[PositionStatus]:
        return [p for a in self.accounts for p in a.positions]

    @property
    def total_upl(self) -> Decimal:
        """Unrealised PnL over every account's positions (those that report one)."""
        return sum((p.upl for p in self._all_positions() if p.upl is not None), Decimal(0))

    @property
    def avg_profit_rate(self) -> Decimal | None:
        """Margin-weighted average profit rate (to 4 places): total uPnL / total margin over the
        positions that report both, so a 1-USDT position cannot swing it like a 30-USDT one
        (:data:`PROFIT_RATE_WEIGHTING`). None without any such position."""
        rows = [
            (p.upl, p.margin)
            for p in self._all_positions()
            if p.upl is not None and p.margin is not None and p.margin > 0
        ]
        margin = sum((m for _, m in rows), Decimal(0))
        if not rows or margin == 0:
            return None
        return (sum((u for u, _ in rows), Decimal(0)) / margin).quantize(_RATE_QUANTUM)

    # -- health ------------------------------------------------------------------------------
    def problems(self) -> tuple[str, ...]:
        """Reasons ``/healthz`` fails: every enabled account must be connected and fresh, and the
        engine must have nothing to report (journal writes, internal errors, guard holds)."""
        return tuple(r for a in self.accounts for r in a.problems()) + self.engine_problems

    @property
    def healthy(self) -> bool:
        return not self.problems()

    def attention(self) -> tuple[Attention, ...]:
        """Everything that needs a look, most severe kind first (:data:`ATTENTION_KINDS`), then
        by account. Engine problems count as errors, except the holds a held position already
        stands for (the engine names those too)."""
        items = [i for a in self.accounts for i in a.attention()]
        items += [
            Attention("error", "", None, None, r) for r in self.engine_problems if ": held" not in r
        ]
        rank = {k: n for n, k in enumerate(ATTENTION_KINDS)}
        return tuple(sorted(items, key=lambda i: (rank[i.kind], i.account)))

    def attention_counts(self, items: tuple[Attention, ...] | None = None) -> dict[str, int]:
        """How many of each kind (zeros included, in :data:`ATTENTION_KINDS` order)."""
        out = dict.fromkeys(ATTENTION_KINDS, 0)
        for i in self.attention() if items is None else items:
            out[i.kind] += 1
        return out

    def health(self, items: tuple[Attention, ...] | None = None) -> str:
        """``down`` when :meth:`problems` says so (``/healthz`` 503), ``degraded`` when
        something needs attention but every account is live (200), else ``healthy``."""
        if self.problems():
            return "down"
        return "degraded" if (self.attention() if items is None else items) else "healthy"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict; Decimals as fixed-point strings so no precision is lost."""
        attention = self.attention()
        return {
            "generatedMs": self.generated_ms,
            "healthy": self.healthy,
            "health": self.health(attention),
            "problems": list(self.problems()),
            "attention": {
                "counts": self.attention_counts(attention),
                "items": [i.to_json() for i in attention],
            },
            "main": {
                "present": self.has_main,
                "long": self.main_long,
                "short": self.main_short,
                "total": self.main_total,
                "expected": self.main_expected_positions,
                "belowExpected": self.main_below_expected,
            },
            "sub": {
                "accounts": self.sub_accounts,
                "positions": self.sub_positions,
                "states": self.account_states(),
                "stopped": [
                    {"name": a.name, "reason": a.stopped_reason} for a in self.stopped_accounts
                ],
            },
            "pnl": {
                "upl": _dec(self.total_upl),
                "avgProfitRate": _dec(self.avg_profit_rate),
                "avgProfitRateWeighting": PROFIT_RATE_WEIGHTING,
            },
            "venue": self.venue,
            "dryRun": self.dry_run,
            "ha": self.ha.to_json() if self.ha is not None else None,
            "engine": {"storageOk": self.storage_ok, "internalErrors": self.internal_errors},
            "accounts": [a.to_json() for a in self.accounts],
        }


class StatusSource(Protocol):
    """Anything that can describe the reactor right now (the engine implements it)."""

    def status_snapshot(self) -> StatusSnapshot: ...
