"""Drives an :class:`EngineCore` on a fake clock: no loop, no sockets, no sleeps.

Timers are a dict the driver fires in time order as the test advances the clock; the journal is
a list (it can be made to fail); margin calls, re-reads and fetches wait in lists until the test
answers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from reactor.engine.calls import OK, Outcome, OutcomeKind
from reactor.engine.commands import (
    CancelTimer,
    CheckReduce,
    Command,
    FetchInstrument,
    Log,
    ReadBills,
    ReadPositions,
    ResolveOutcome,
    SendMarginCall,
    SetTimer,
    SyncClock,
    WriteIntent,
    WriteResult,
)
from reactor.engine.core import EngineCore
from reactor.engine.state import AccountState, EngineSettings, StorageError
from reactor.okx.errors import classify
from reactor.okx.models import Position, PositionKey
from tests.domain.factories import CFG, D, position

CRO = "CRO-USDT-SWAP"
DOGE = "DOGE-USDT-SWAP"
CT_VALS = {CRO: D("10"), DOGE: D("1000")}
KEY = ("sub1", CRO, "long", "isolated")


def settings(**kw: Any) -> EngineSettings:
    base: dict[str, Any] = {"policy": CFG, "debounce_s": 0.5, "cooldown_s": 5.0}
    base.update(kw)
    return EngineSettings(**base)


def rejected(code: str, msg: str = "") -> Outcome:
    return Outcome(OutcomeKind.REJECTED, code, classify(code), msg or f"error {code}")


UNKNOWN = Outcome(OutcomeKind.UNKNOWN, "50004", None, "Endpoint request timeout")
NOT_SENT = Outcome(OutcomeKind.NOT_SENT, "not_sent", None, "ConnectError")


class FakeCounts:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], int] = {}
        self.fail: str | None = None

    def count(self, account: str, inst_id: str, pos_side: str, c_time: int) -> int:
        if self.fail:
            raise StorageError(self.fail)
        return self.counts.get((account, inst_id, pos_side), 0)


@dataclass
class Driver:
    core: EngineCore
    counts: FakeCounts
    now: float = 0.0
    timers: dict[PositionKey, float] = field(default_factory=dict)
    intents: list[WriteIntent] = field(default_factory=list)
    intent_ids: dict[int, int] = field(default_factory=dict)  # call -> journal id
    results: dict[int, WriteResult] = field(default_factory=dict)
    sent: list[SendMarginCall] = field(default_factory=list)  # awaiting an answer
    all_sent: list[SendMarginCall] = field(default_factory=list)
    answered: list[tuple[SendMarginCall, Outcome]] = field(default_factory=list)
    resolves: list[ResolveOutcome] = field(default_factory=list)
    reads: list[ReadPositions] = field(default_factory=list)
    fetches: list[FetchInstrument] = field(default_factory=list)
    checks: list[CheckReduce] = field(default_factory=list)
    clock_syncs: list[SyncClock] = field(default_factory=list)
    logs: list[Log] = field(default_factory=list)
    history: list[Command] = field(default_factory=list)
    journal_error: str | None = None  # every journal write fails with this while set
    # Answer every bills read at once with "nothing foreign" (what the shell says when the
    # bills hold only our own transfers); off: reads wait in ``bill_reads``.
    auto_bills: bool = True
    bill_reads: list[ReadBills] = field(default_factory=list)

    # -- plumbing ------------------------------------------------------------------------

    def feed(self, commands: list[Command]) -> None:
        queue = list(commands)
        while queue:
            cmd = queue.pop(0)
            self.history.append(cmd)
            queue.extend(self._execute(cmd))

    def _execute(self, cmd: Command) -> list[Command]:
        core, now = self.core, self.now
        if isinstance(cmd, SetTimer):
            self.timers[cmd.key] = cmd.at
        elif isinstance(cmd, CancelTimer):
            self.timers.pop(cmd.key, None)
        elif isinstance(cmd, WriteIntent):
            if self.journal_error:
                return core.on_intent_failed(cmd.call, self.journal_error, now=now)
            self.intents.append(cmd)
            self.intent_ids[cmd.call] = len(self.intents)
            return core.on_intent_written(cmd.call, len(self.intents), now=now)
        elif isinstance(cmd, WriteResult):
            if self.journal_error:
                return core.on_result_failed(cmd, self.journal_error, now=now)
            self.results[cmd.journal_id] = cmd
            return core.on_result_written(cmd.journal_id, now=now)
        elif isinstance(cmd, SendMarginCall):
            self.sent.append(cmd)
            self.all_sent.append(cmd)
        elif isinstance(cmd, ResolveOutcome):
            self.resolves.append(cmd)
        elif isinstance(cmd, ReadPositions):
            self.reads.append(cmd)
        elif isinstance(cmd, FetchInstrument):
            self.fetches.append(cmd)
        elif isinstance(cmd, CheckReduce):
            self.checks.append(cmd)
        elif isinstance(cmd, ReadBills):
            if self.auto_bills:
                return core.on_bills_read(cmd.account, [], cmd.trigger, now=now)
            self.bill_reads.append(cmd)
        elif isinstance(cmd, SyncClock):
            self.clock_syncs.append(cmd)
        elif isinstance(cmd, Log):
            self.logs.append(cmd)
        return []

    def run_due(self) -> None:
        """Fire every timer due at ``now`` (timers set while firing included)."""
        while True:
            due = [(at, k) for k, at in self.timers.items() if at <= self.now]
            if not due:
                return
            _, key = min(due)
            del self.timers[key]
            self.feed(self.core.on_timer(key, now=self.now))

    def advance(self, seconds: float) -> None:
        """Move the clock, firing each timer at its own time."""
        end = self.now + seconds
        while True:
            pending = [at for at in self.timers.values() if self.now < at <= end]
            if not pending:
                break
            self.now = min(pending)
            self.run_due()
        self.now = end
        self.run_due()

    # -- inputs --------------------------------------------------------------------------

    def snapshot(self, *positions: Position, account: str = "sub1") -> None:
        self.feed(self.core.on_connected(account, now=self.now))
        self.feed(self.core.on_snapshot(account, list(positions), last_page=True, now=self.now))
        self.run_due()

    def push(self, *positions: Position, account: str = "sub1") -> None:
        self.feed(self.core.on_update(account, list(positions), now=self.now))
        self.run_due()

    def answer(self, outcome: Outcome = OK, index: int = 0) -> SendMarginCall:
        cmd = self.sent.pop(index)
        self.answered.append((cmd, outcome))
        self.feed(self.core.on_call_done(cmd.call, outcome, now=self.now))
        self.run_due()
        return cmd

    def resolve(
        self, *positions: Position, bill_applied: bool | None = None, bill_id: str | None = None
    ) -> None:
        cmd = self.resolves.pop(0)
        self.feed(
            self.core.on_resolved(
                cmd.key, list(positions), now=self.now, bill_applied=bill_applied, bill_id=bill_id
            )
        )
        self.run_due()

    # -- queries -------------------------------------------------------------------------

    def events(self, name: str) -> list[dict[str, Any]]:
        return [log.fields for log in self.logs if log.event == name]

    def levels(self, name: str) -> list[str]:
        return [log.level for log in self.logs if log.event == name]

    def control(self, key: PositionKey = KEY) -> Any:
        return self.core.control(key)


def driver(
    *,
    accounts: tuple[str, ...] = ("sub1",),
    ct_vals: dict[str, Decimal] | None = None,
    rand: float = 1.0,
    **kw: Any,
) -> Driver:
    counts = FakeCounts()
    core = EngineCore(
        settings(**kw),
        {name: AccountState(name, "sub") for name in accounts},
        CT_VALS if ct_vals is None else ct_vals,
        counts,
        rand=lambda: rand,
    )
    return Driver(core, counts)


def cro(**kw: Any) -> Position:
    """The CRO seed position: margin 20.29 -> one reduce of 10.03."""
    return position(**kw)


def doge(**kw: Any) -> Position:
    base: dict[str, Any] = {
        "inst_id": DOGE,
        "pos_side": "short",
        "pos": D("3"),
        "avg_px": D("0.16"),
        "mark_px": D("0.16"),
        "lever": D("50"),
        "margin": D("25"),
        "mmr": D("1.92"),
        "upl": D("0"),
    }
    base.update(kw)
    return position(**base)
