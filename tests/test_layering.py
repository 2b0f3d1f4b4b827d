"""The package's layers, checked on its imports: every module imports only its own layer or
the layers below it (so there is no cycle between folders), the engine stands below the status
view, and its core does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.paths import REPO

ENGINE = REPO / "reactor" / "engine"
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
    "calls",
    "commands",
    "episodes",
    "fills",
    "foreign",
    "guard",
    "health",
    "instruments",
    "reconcile",
    "state",
    "timing",
    "view",
)


# The shell and its I/O per feature: the only engine modules that await (or write the ledger).
SHELL_IO = (
    "shell",
    "bill_reads",
    "call_sends",
    "fill_recovery",
    "instrument_reads",
    "journal_settle",
    "journal_writes",
    "position_reads",
    "timers",
)


def test_every_engine_module_is_the_core_a_part_or_shell_io() -> None:
    found = {p.stem for p in ENGINE.glob("*.py")} - {"__init__"}
    assert found == {"core", *PARTS, *SHELL_IO}


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


# From the bottom up. A module may import its own unit and any unit listed before it.
LAYERS = (
    ("reactor.redaction", "reactor.log", "reactor.fdlimit", "reactor.limits", "reactor.backoff"),
    ("reactor.okx",),
    ("reactor.domain",),
    ("reactor.config",),
    ("reactor.store",),
    ("reactor.engine",),
    ("reactor.api",),
    ("reactor.status",),
    ("reactor.sim",),
    ("reactor.service",),
    ("reactor.probe",),
    ("reactor.cli",),
    ("reactor.testing", "reactor.__main__"),
)
RANK = {unit: i for i, units in enumerate(LAYERS) for unit in units}
PACKAGE = REPO / "reactor"


def _unit(module: str) -> str | None:
    parts = module.split(".")
    for n in (2, 1):
        if ".".join(parts[:n]) in RANK:
            return ".".join(parts[:n])
    return None


def _own_imports(path: Path) -> set[str]:
    """Absolute names of the ``reactor`` modules (or names in them) that ``path`` imports."""
    out: set[str] = set()
    module = ".".join(path.relative_to(REPO).with_suffix("").parts)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("reactor"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            if name == "reactor":  # from reactor import log
                out.update(f"reactor.{a.name}" for a in node.names)
            elif name.startswith("reactor."):
                out.add(name)
    return out


def test_every_module_belongs_to_a_layer() -> None:
    unplaced = [
        str(p.relative_to(REPO))
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" or p.parent != PACKAGE
        if _unit(".".join(p.relative_to(REPO).with_suffix("").parts)) is None
    ]
    assert unplaced == []


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = []
    for path in PACKAGE.rglob("*.py"):
        here = _unit(".".join(path.relative_to(REPO).with_suffix("").parts))
        if here is None:
            continue
        for name in _own_imports(path):
            there = _unit(name)
            if there is not None and RANK[there] > RANK[here]:
                upward.append(f"{path.relative_to(REPO)} imports {name}")
    assert upward == []


def test_layers_see_only_what_they_need() -> None:
    """The venue adapter knows nothing of the application (its config, storage or engine)."""
    for path in (PACKAGE / "okx").glob("*.py"):
        found = {n for n in _own_imports(path) if RANK[_unit(n) or "reactor.okx"] > 1}
        assert not found, (path.name, found)
