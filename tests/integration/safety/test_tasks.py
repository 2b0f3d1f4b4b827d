"""Every spawned task's exception is an event; a failing loop pass does not end the loop."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import structlog

from reactor.engine import AccountState, Role
from reactor.service import app, loops, runtime


async def test_a_failing_spawned_task_is_logged_when_it_ends() -> None:
    rt: Any = app.Runtime.__new__(app.Runtime)
    rt.tasks = []

    async def broken() -> None:
        raise RuntimeError("bug in a loop")

    with structlog.testing.capture_logs() as logs:
        task = rt.spawn("reconcile", broken())
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
    (event,) = [e for e in logs if e["event"] == "reactor.task.failed"]
    assert event["task"] == "reconcile" and "RuntimeError: bug in a loop" in event["error"]


async def test_never_retrieved_task_exceptions_become_events() -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(runtime.on_loop_exception)
    try:
        with structlog.testing.capture_logs() as logs:

            async def orphan() -> None:
                raise ValueError("nobody awaits me")

            task = asyncio.ensure_future(orphan())
            await asyncio.sleep(0.01)
            del task
            gc.collect()  # the never-retrieved exception is reported when the task is freed
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    failed = [e for e in logs if e["event"] == "reactor.task.failed"]
    assert failed and "ValueError: nobody awaits me" in failed[0]["error"]


class _Engine:
    def __init__(self) -> None:
        self.calls = 0
        self.accounts = {"A": AccountState("A", Role.SUB, object())}  # type: ignore[arg-type]

    async def reconcile_account(self, name: str) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("one bad pass")


async def test_reconcile_loop_survives_a_failing_pass() -> None:
    rt: Any = app.Runtime.__new__(app.Runtime)
    rt.engine = _Engine()
    rt.cfg = type("C", (), {"timing": type("T", (), {"reconcile_interval_s": 0.001})()})()
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(loops.reconcile_loop(rt))
        while rt.engine.calls < 3:
            await asyncio.sleep(0.005)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    errors = [e for e in logs if e["event"] == "reactor.task.error"]
    assert len(errors) == 1 and errors[0]["task"] == "reconcile"
