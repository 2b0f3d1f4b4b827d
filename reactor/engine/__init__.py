"""The margin engine: a sans-I/O core (:mod:`.core`) driven by an asyncio shell (:mod:`.shell`).

``from reactor.engine import Engine`` is the face the app, the benchmark and tests use.

:class:`EngineCore` takes inputs, each with the time ``now`` (engine clock), and returns
:mod:`commands <reactor.engine.commands>`:

- stream: ``on_connected``, ``on_snapshot`` (``cur_page``), ``on_update``, ``on_disconnected``,
  ``on_stopped``, ``on_orders`` (the ``orders`` channel: maintenance fills); time: ``on_timer``;
- ledger and operator: ``on_counts_changed``, ``on_paused``; config reloads:
  ``on_account_enabled``, ``on_account_disabled``;
- answers to its own commands: ``on_intent_written`` / ``on_intent_failed`` (WriteIntent),
  ``on_call_done`` (SendMarginCall, with an :class:`Outcome`), ``on_result_written`` /
  ``on_result_failed`` (WriteResult), ``on_resolved`` / ``on_resolve_failed`` (ResolveOutcome),
  ``on_positions_read`` / ``on_read_failed`` (ReadPositions), ``on_instrument``
  (FetchInstrument), ``on_reduce_checked`` / ``on_reduce_check_failed`` /
  ``on_reduce_check_empty`` (CheckReduce: OKX's ``estAvailTrans``), ``on_bills_read`` /
  ``on_bills_failed`` (ReadBills: foreign transfers),
  ``on_maintenance_written`` / ``on_maintenance_failed`` (WriteMaintenance),
  ``on_fills_recovered`` / ``on_fills_recovery_failed`` (RecoverFills), ``on_task_failed``
  (any task);
- ``recover`` at start-up, ``view(now)`` for the status page; ``bill_window`` (the bills reads'
  cursor, kept by the core, read by the shell).

Commands: SetTimer / CancelTimer, WriteIntent -> SendMarginCall (never the other way round),
WriteResult, WriteMaintenance, ResolveOutcome, ReadPositions, ReadBills, RecoverFills,
FetchInstrument, CheckReduce, SyncClock, Log. The core routes each input to the part of its
feature with one :class:`~reactor.engine.timing.Ctx` (plain state in, values or commands on the
Ctx out); the parts never call back into the core: :mod:`.commands`, :mod:`.state`,
:mod:`.view`, :mod:`.timing` (when to evaluate, back-off, the standing gates, pauses),
:mod:`.calls` (one margin call's life: start through the guard, pre-reduce check, intent,
outcome, reaction; a bad key or a missing right stops the account), :mod:`.guard` (the runaway
guard), :mod:`.foreign` (bills: attribution, the read window, the fence against a second
controller), :mod:`.fills` (counts from fills, recovery's answers), :mod:`.reconcile` (REST
re-reads, resolutions, calls unanswered at a restart), :mod:`.health` (journal writes, internal
errors), :mod:`.instruments`, :mod:`.episodes`. The shell's I/O per feature:
:mod:`.bill_reads` (ReadBills, the bill lookup of ResolveOutcome), :mod:`.fill_recovery`
(RecoverFills, the ledger as the count source), :mod:`.call_sends` (SendMarginCall,
CheckReduce, SyncClock), :mod:`.position_reads` (ReadPositions, the re-read of
ResolveOutcome), :mod:`.instrument_reads` (FetchInstrument) and :mod:`.journal_writes`
(WriteIntent, WriteResult, WriteMaintenance, the calls a restart left unanswered).
"""

from reactor.engine.calls import Outcome, OutcomeKind
from reactor.engine.core import EngineCore
from reactor.engine.shell import Engine
from reactor.engine.state import (
    AccountState,
    EngineObserver,
    EngineSettings,
    MarginClient,
    PositionControl,
    Role,
    Status,
)
from reactor.engine.view import EngineView

__all__ = [
    "AccountState",
    "Engine",
    "EngineCore",
    "EngineObserver",
    "EngineSettings",
    "EngineView",
    "MarginClient",
    "Outcome",
    "OutcomeKind",
    "PositionControl",
    "Role",
    "Status",
]
