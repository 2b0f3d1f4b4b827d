"""The reload decision without I/O: old config vs new -> the account changes, or the refusal."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reactor.config import Config
from reactor.service.reload_plan import plan_reload, reload_problem

TARGETS = [{"min_count": 0, "target": "10", "band": ["9.5", "10.5"]}]


def cfg(*accounts: dict[str, Any], **extra: Any) -> Config:
    raw = {"venue": {"kind": "demo"}, "accounts": list(accounts), "targets": TARGETS}
    return Config.model_validate(raw | extra)


def test_accounts_started_stopped_added_removed() -> None:
    old = cfg({"name": "A"}, {"name": "B"}, {"name": "C", "enabled": False}, {"name": "D"})
    new = cfg({"name": "E"}, {"name": "C"}, {"name": "B", "enabled": False}, {"name": "A"})
    assert reload_problem(old, new) is None
    plan = plan_reload(old, new)
    assert plan.start == ["E", "C"]  # in the new config's order
    assert plan.stop == ["B", "D"]
    assert plan.added == ["E"]
    assert plan.removed == ["D"]
    assert plan.is_removed("D") and not plan.is_removed("B")


def test_same_config_changes_nothing() -> None:
    old = cfg({"name": "A"}, {"name": "B", "role": "main"})
    plan = plan_reload(old, old)
    assert reload_problem(old, old) is None
    assert (plan.start, plan.stop, plan.added, plan.removed) == ([], [], [], [])


def test_anything_but_accounts_is_refused_naming_the_sections() -> None:
    old = cfg({"name": "A"})
    new = cfg({"name": "B"}, dry_run=True, timing={"debounce_ms": 5})
    assert reload_problem(old, new) == (
        "a reload changes accounts only; restart to change dry_run, timing"
    )


def test_role_change_is_refused() -> None:
    old = cfg({"name": "A"}, {"name": "M", "role": "main"})
    new = cfg({"name": "A"}, {"name": "M"})
    assert reload_problem(old, new) == (
        "accounts: M: role changed; restart to change an account's role"
    )


def test_every_account_disabled_is_refused() -> None:
    old = cfg({"name": "A"})
    new = cfg({"name": "A", "enabled": False})
    assert reload_problem(old, new) == "accounts: every account is disabled; nothing to run"


NAMES = st.sampled_from(["A", "B", "C", "D", "E"])
ACCOUNTS = st.dictionaries(NAMES, st.booleans(), min_size=1)


@given(ACCOUNTS, ACCOUNTS)
def test_plan_turns_the_old_enabled_set_into_the_new(
    before: dict[str, bool], after: dict[str, bool]
) -> None:
    old = cfg(*({"name": n, "enabled": e} for n, e in before.items()))
    new = cfg(*({"name": n, "enabled": e} for n, e in after.items()))
    plan = plan_reload(old, new)
    running = {n for n, e in before.items() if e}
    assert not set(plan.start) & running
    assert set(plan.stop) <= running
    assert (running - set(plan.stop)) | set(plan.start) == {n for n, e in after.items() if e}
    assert set(plan.added) == set(after) - set(before)
    assert set(plan.removed) == set(before) - set(after)
