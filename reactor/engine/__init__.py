"""The margin engine: a sans-I/O core (:mod:`.core`) driven by an asyncio shell (:mod:`.shell`).

``from reactor.engine import Engine`` is the face the app, the benchmark and tests use.

:class:`EngineCore` takes inputs, each with the time ``now`` (engine clock), and returns
:mod:`commands <reactor.engine.commands>`:

- stream: ``on_connected``, ``on_snapshot`` (``cur_page``), ``on_update``, ``on_disconnected``,
  ``on_stopped``; ledger: ``on_counts_changed``; time: ``on_timer``;
- answers to its own commands: ``on_intent_written`` / ``on_intent_failed`` (WriteIntent),
  ``on_call_done`` (SendMarginCall, with an :class:`Outcome`), ``on_result_written`` /
  ``on_result_failed`` (WriteResult), ``on_resolved`` / ``on_resolve_failed`` (ResolveOutcome),
  ``on_positions_read`` / ``on_read_failed`` (ReadPositions), ``on_instrument``
  (FetchInstrument), ``on_reduce_checked`` / ``on_reduce_check_failed`` (CheckReduce: OKX's
  ``estAvailTrans``), ``on_bills_read`` / ``on_bills_failed`` (ReadBills: foreign transfers),
  ``on_task_failed`` (any task);
- ``recover`` at start-up, ``view(now)`` for the status page.

Commands: SetTimer / CancelTimer, WriteIntent -> SendMarginCall (never the other way round),
WriteResult, ResolveOutcome, ReadPositions, ReadBills, FetchInstrument, CheckReduce, SyncClock,
Log. The core's parts (plain state in, values out; see :mod:`.core`): :mod:`.timing`,
:mod:`.gates`, :mod:`.calls`, :mod:`.episodes`, :mod:`.reconcile`, :mod:`.restart`,
:mod:`.counts`, :mod:`.maintenance_fills`, :mod:`.bills` (which call a margin-transfer bill
belongs to), :mod:`.foreign` and :mod:`.foreign_fence` (the hold against a second controller).
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
