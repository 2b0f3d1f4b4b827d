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


def test_pure_parts_do_no_io() -> None:
    for name in ("core", "timing", "guard", "reactions", "reconcile", "health", "view", "state"):
        found = {m.split(".")[0] for m in _imports(ENGINE / f"{name}.py")} & IO_MODULES
        assert not found, (name, found)
