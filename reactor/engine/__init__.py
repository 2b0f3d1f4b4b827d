"""The margin engine: a sans-I/O core (:mod:`.core`) driven by an asyncio shell (:mod:`.shell`).

``from reactor.engine import Engine`` is the face the app, the benchmark and tests use.
"""

from reactor.engine.core import EngineCore
from reactor.engine.margin_call import Outcome, OutcomeKind
from reactor.engine.shell import Engine
from reactor.engine.state import (
    AccountState,
    EngineObserver,
    EngineSettings,
    EngineView,
    MarginClient,
    PositionControl,
)

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
]
