"""What the engine core asks its driver to do. Every input of the core returns a list of these.

The shell executes them in order: timers on the event loop, journal writes on the ledger,
exchange calls and reads as tasks whose answers come back as core inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from reactor.domain.fills import RecordMaintenance
from reactor.engine.state import PendingOutcome
from reactor.okx.models import Position, PositionKey
from reactor.store import ResultStatus


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Wake the position at ``at`` (engine clock): replaces its pending wake-up."""

    key: PositionKey
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    key: PositionKey


@dataclass(frozen=True, slots=True)
class WriteIntent:
    """Journal the call durably; answer ``on_intent_written`` or ``on_intent_failed``."""

    call: int
    key: PositionKey
    action: str
    amount: Decimal
    request: str


@dataclass(frozen=True, slots=True)
class SendMarginCall:
    """Send margin-balance; answer ``on_call_done`` with its :class:`Outcome`."""

    call: int
    key: PositionKey
    action: str
    amount: Decimal
    journal_id: int


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Complete a journal entry; a failure is answered ``on_result_failed``."""

    journal_id: int
    status: ResultStatus
    code: str | None = None
    msg: str | None = None


@dataclass(frozen=True, slots=True)
class CheckReduce:
    """Before a reduce: ask the exchange how much may leave the position (``estAvailTrans``).

    The shell reads ``GET adjust-leverage-info`` at the position's own ``lever`` and answers
    ``on_reduce_checked(call, cap)``; a read that fails, times out or gives no number answers
    ``on_reduce_check_failed(call, error)`` (then nothing is sent).
    """

    call: int
    key: PositionKey
    amount: Decimal
    lever: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ResolveOutcome:
    """Find out what happened to an ambiguous call (or re-read before acting on a position).

    Answer ``on_resolved(key, positions, bill_applied=..., bill_id=...)`` with a REST read of the
    instrument; ``bill_applied`` is what the exchange's bills say when the shell can read them
    (None: undecided, the margin comparison decides). A bill matches ``pending``: instrument,
    subType 160 add / 161 reduce, amount, ``posBal`` = margin_before +- amount, ``ts`` after the
    journal entry's ``sent_ms`` (read by ``pending.journal_id``). Failures: ``on_resolve_failed``.
    """

    key: PositionKey
    pending: PendingOutcome | None


@dataclass(frozen=True, slots=True)
class ReadBills:
    """Read the account's margin-transfer bills and report those no journalled call accounts
    for; answer ``on_bills_read(account, foreign)`` (``on_bills_failed`` when unreadable)."""

    account: str
    trigger: str  # interval | drift


@dataclass(frozen=True, slots=True)
class ReadPositions:
    """Reconcile an account from a REST read; answer ``on_positions_read``/``on_read_failed``."""

    account: str
    trigger: str  # connect | interval | an OKX code (59300)


@dataclass(frozen=True, slots=True)
class FetchInstrument:
    """Read one instrument (listed after start-up); answer ``on_instrument``."""

    account: str
    inst_id: str


@dataclass(frozen=True, slots=True)
class SyncClock:
    """Re-measure the account's offset to OKX's clock (after 50102 on a margin call)."""

    account: str


@dataclass(frozen=True, slots=True)
class WriteMaintenance:
    """Record a maintenance seen on ``orders`` (source ``fill``); answer
    ``on_maintenance_written`` or ``on_maintenance_failed``. Until then it counts in memory."""

    record: RecordMaintenance


@dataclass(frozen=True, slots=True)
class RecoverFills:
    """Read the account's trade history for maintenances missed while away and record them;
    answer ``on_fills_recovered`` or ``on_fills_recovery_failed``."""

    account: str
    positions: tuple[Position, ...]


@dataclass(frozen=True, slots=True)
class Log:
    """One catalogued event (docs/events.md)."""

    level: str
    event: str
    fields: dict[str, Any] = field(default_factory=dict)


Command = (
    SetTimer
    | CancelTimer
    | WriteIntent
    | SendMarginCall
    | WriteResult
    | CheckReduce
    | ResolveOutcome
    | ReadBills
    | ReadPositions
    | FetchInstrument
    | SyncClock
    | WriteMaintenance
    | RecoverFills
    | Log
)


class Out:
    """Collects the commands of one core input; ``info("event", ...)`` queues a :class:`Log`."""

    __slots__ = ("commands",)

    def __init__(self) -> None:
        self.commands: list[Command] = []

    def add(self, command: Command) -> None:
        self.commands.append(command)

    def debug(self, event: str, **fields: Any) -> None:
        self.commands.append(Log("debug", event, fields))

    def info(self, event: str, **fields: Any) -> None:
        self.commands.append(Log("info", event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        self.commands.append(Log("warning", event, fields))

    def error(self, event: str, **fields: Any) -> None:
        self.commands.append(Log("error", event, fields))


# -- the log fields the core's events share, spelled one way for every event ---------------


def opt_str(value: Decimal | None) -> str | None:
    """A money field of an event: the Decimal's string, or None when it is not known."""
    return None if value is None else str(value)


def pos_fields(key: PositionKey) -> dict[str, str]:
    """The position an event is about, in OKX's names."""
    return {"account": key[0], "instId": key[1], "posSide": key[2]}
