"""Applying a config reload to a running reactor (SIGHUP): load, check and plan
(:mod:`reactor.service.reload_plan`), then stop, start, add and remove accounts without
touching the other accounts' connections."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from reactor.config import Config, ConfigError, load_config, resolve_credentials
from reactor.engine import AccountState, Role
from reactor.log import error_text, get_logger
from reactor.okx.credentials import Credentials
from reactor.service.accounts import embedded_credentials, rest_client, start_session
from reactor.service.reload_plan import plan_reload, reload_problem
from reactor.service.runtime import Runtime
from reactor.service.systemd import SystemdNotifier
from reactor.store.state_dir import write_reload_result

log = get_logger("reactor.service.reload")


async def reload_loop(
    rt: Runtime,
    path: Path | None,
    wake: asyncio.Event,
    notifier: SystemdNotifier | None = None,
    status: Callable[[], str] = lambda: "",
) -> None:
    """One reload per SIGHUP (several signals during a reload fold into one more). Under
    systemd each one is ``RELOADING=1`` then ``READY=1``, with ``STATUS=reload refused: ...``
    when it was refused (``status()``: the rest of the line); each outcome is also written to
    the state dir for ``reactor reload``, which makes ``systemctl reload`` fail on a refusal."""
    seq = 0
    while True:
        await wake.wait()
        wake.clear()
        if notifier is not None:
            notifier.reloading()
        if path is None:
            rt.reload_refused = "no config file to reload from"
            log.error("reactor.reload.refused", error=rt.reload_refused)
        else:
            try:
                await reload(rt, path)
            except Exception as exc:  # a bug in a reload must not end the service
                rt.reload_refused = f"reload failed: {error_text(exc)}"
                log.exception("reactor.task.error", task="reload", error=error_text(exc))
        if notifier is not None:
            notifier.reloaded(status(), rt.reload_refused)
        seq += 1
        _record(rt, seq)
        rt.status_changed.set()


def _record(rt: Runtime, seq: int) -> None:
    result: dict[str, object] = {
        "pid": os.getpid(),
        "seq": seq,
        "at_ms": int(time.time() * 1000),
        "applied": rt.reload_refused is None,
        "error": rt.reload_refused,
    }
    try:
        write_reload_result(rt.cfg.state_dir, result)
    except OSError as exc:  # the reload itself stands; only ``reactor reload`` cannot see it
        log.error("reactor.task.error", task="reload result", error=error_text(exc))


def _credentials(new: Config, names: list[str]) -> dict[str, Credentials]:
    if not names:
        return {}
    if new.venue.embedded:
        from reactor.sim.scenario import load_scenario

        assert new.venue.scenario is not None
        every = embedded_credentials(new, load_scenario(new.venue.scenario))
    else:
        every = resolve_credentials(new)  # the credentials file is read again, once
    return {n: every[n] for n in names}


async def reload(rt: Runtime, path: Path) -> bool:
    """Apply the config at ``path``: accounts added, removed, enabled or disabled, without
    touching the others' connections. A config that does not load, changes anything but
    ``accounts``, or lacks credentials for an account to start is refused
    (``reactor.reload.refused``) and the running one stays. True when applied."""
    old = rt.cfg
    try:
        new = load_config(path)
        problem = reload_problem(old, new)
        if problem is not None:
            raise ConfigError(f"{path}: {problem}")
        plan = plan_reload(old, new)
        creds = _credentials(new, plan.start)
    except ConfigError as exc:
        rt.reload_refused = str(exc)
        log.error("reactor.reload.refused", config=str(path), error=str(exc)[:500])
        return False
    rt.reload_refused = None
    for name in plan.stop:
        session = rt.sessions.pop(name, None)
        if session is not None:
            await session.stop()
        client = rt.clients.get(name)  # leaves the running clients with the account
        rt.engine.on_account_disabled(name, removed=plan.is_removed(name))
        if client is not None:
            rt.retired_clients.append(client)
    for acc in new.accounts:
        if not acc.enabled and acc.name not in rt.engine.accounts:
            rt.engine.on_account_enabled(
                AccountState(acc.name, Role(acc.role), None, enabled=False)
            )
    rt.cfg = new
    roles = {a.name: a.role for a in new.accounts}
    for name in plan.start:
        client = rest_client(
            new, rt.rest_url, name, creds[name], rt.hooks, rt.exchange_clock, rt.sign_gate
        )
        rt.engine.on_account_enabled(AccountState(name, Role(roles[name]), client, enabled=True))
        start_session(rt, name, creds[name])
    log.info(
        "reactor.reloaded",
        config=str(path),
        started=plan.start,
        stopped=plan.stop,
        added=plan.added,
        removed=plan.removed,
        accounts=len(new.enabled_accounts()),
    )
    rt.status_changed.set()
    return True
