"""What a config reload (SIGHUP) may change, decided without I/O: old config vs new config ->
the accounts to start, stop, add and remove, or the reason the new config is refused.

Only ``accounts`` may change in a running process (enable, disable, add, remove); an account's
role may not, and a config with no enabled account is refused. Applying the plan (sessions,
clients, the engine) is :mod:`reactor.service.reload`.
"""

from __future__ import annotations

from dataclasses import dataclass

from reactor.config import Config

RELOADABLE = frozenset({"accounts"})


@dataclass(frozen=True)
class ReloadPlan:
    """What applying a new config does to the running accounts (names only)."""

    start: list[str]  # enabled now and not before, in the new config's order
    stop: list[str]  # enabled before and not now, sorted
    added: list[str]  # in the new config and not in the old one, sorted
    removed: list[str]  # in the old config and not in the new one, sorted

    def is_removed(self, name: str) -> bool:
        return name in self.removed


def reload_problem(old: Config, new: Config) -> str | None:
    """Why ``new`` cannot replace ``old`` in the running process, or None."""
    before, after = old.model_dump(), new.model_dump()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    fixed = [k for k in changed if k not in RELOADABLE]
    if fixed:
        return f"a reload changes accounts only; restart to change {', '.join(fixed)}"
    if not new.enabled_accounts():
        return "accounts: every account is disabled; nothing to run"
    for acc in new.accounts:
        was = next((a for a in old.accounts if a.name == acc.name), None)
        if was is not None and was.role != acc.role:
            return f"accounts: {acc.name}: role changed; restart to change an account's role"
    return None


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """The account changes from ``old`` to ``new`` (call after :func:`reload_problem`)."""
    was = {a.name for a in old.enabled_accounts()}
    now = [a.name for a in new.enabled_accounts()]
    old_names = {a.name for a in old.accounts}
    new_names = {a.name for a in new.accounts}
    return ReloadPlan(
        start=[n for n in now if n not in was],
        stop=sorted(was - set(now)),
        added=sorted(new_names - old_names),
        removed=sorted(old_names - new_names),
    )
