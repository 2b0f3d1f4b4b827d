"""The engine stands below the status view and its core does no I/O (imports say so)."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "reactor" / "engine"
IO_MODULES = {"asyncio", "sqlite3", "httpx", "aiohttp", "websockets", "socket", "time"}


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_engine_never_imports_the_status_view() -> None:
    for path in ENGINE.glob("*.py"):
        assert not any(m.startswith("reactor.status") for m in _imports(path)), path.name


# The parts the core is made of: plain state in, values (or commands on an ``Out``) back.
PARTS = (
    "bills",
    "calls",
    "commands",
    "counts",
    "episodes",
    "fields",
    "foreign",
    "foreign_fence",
    "gates",
    "guard",
    "health",
    "instruments",
    "maintenance_fills",
    "reactions",
    "reconcile",
    "restart",
    "state",
    "timing",
    "view",
)


def test_pure_parts_do_no_io() -> None:
    for name in ("core", *PARTS):
        found = {m.split(".")[0] for m in _imports(ENGINE / f"{name}.py")} & IO_MODULES
        assert not found, (name, found)


def test_parts_never_call_up_into_the_coordinator() -> None:
    """The parts take plain state and return values; importing the core (or the package face,
    which imports it) from one would close a cycle."""
    up = {"reactor.engine", "reactor.engine.core", "reactor.engine.shell"}
    for name in PARTS:
        found = _imports(ENGINE / f"{name}.py") & up
        assert not found, (name, found)
