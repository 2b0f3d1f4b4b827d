"""The second fence against a second controller: two ``reactor run`` processes on the
same account with different state dirs (the state-dir lock cannot see each other) and different
maintenance counts (targets 10 and 20) play tug of war. The OKX bills show each one the other's
transfers; after ``foreign_transfer_limit`` of them one side holds the position and says so.

Subprocesses against a ``reactor sim`` process, real sockets. The USDT moved is printed as a
FAULT-METRIC line (``pytest -s``)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.engine.harness import SimAdmin, write_config
from tests.integration.faults.common import FAST, account, cro, scenario
from tests.integration.faults.procs import credentials_env, start_reactor, start_sim

W = "Wu666666"


def _config(base: Path, url: str, limit: int) -> Path:
    base.mkdir()
    path = write_config(base, url, [{"name": W}], **{**FAST, "reconcile_interval_s": 1})
    raw = yaml.safe_load(path.read_text())
    raw["policy"].update({"foreign_transfer_limit": limit, "foreign_transfer_window_s": 60})
    raw["log"]["level"] = "info"
    raw["status"] = {"enabled": True, "host": "127.0.0.1", "port": 0}
    path.write_text(yaml.safe_dump(raw))
    return path


def _record_maintenance(cfg: Path, c_time: str, env: dict[str, str], key: str) -> None:
    argv = ["maintenance", "record", "--config", str(cfg), "--account", W]
    argv += ["--inst-id", "CRO-USDT-SWAP", "--pos-side", "long", "--key", key, "--c-time", c_time]
    subprocess.run(
        [sys.executable, "-m", "reactor", *argv],
        check=True,
        capture_output=True,
        env=env,
        timeout=30,
    )


def _moved(calls: list[dict[str, Any]]) -> tuple[int, Decimal]:
    ok = [c for c in calls if c["code"] == "0"]
    return len(ok), sum((Decimal(json.loads(c["body"])["amt"]) for c in ok), Decimal(0))


async def _tug_of_war(
    tmp_path: Path, limit: int, until: Callable[[Any, Any, list[dict[str, Any]]], bool]
) -> tuple[Any, ...]:
    """Run both controllers until ``until(a, b, calls)`` holds (at most 60 s: two reactor
    processes and a simulator start slowly on a loaded machine), then 2 s more."""
    import os

    scen = scenario(account(W, 1, [cro()]))
    sim, url = await start_sim(scen, tmp_path)
    admin = SimAdmin(url)
    env = {**os.environ, **credentials_env(scen)}
    cfg_a = _config(tmp_path / "a", url, limit)  # count 0: target 10
    cfg_b = _config(tmp_path / "b", url, limit)  # count 2: target 20
    position = await admin.position(W, "CRO-USDT-SWAP", "long")
    assert position is not None
    for key in ("m1", "m2"):
        _record_maintenance(cfg_b, position["cTime"], env, key)
    a = b = None
    try:
        a = await start_reactor(cfg_a, env, tmp_path / "a")
        b = await start_reactor(cfg_b, env, tmp_path / "b")
        deadline = asyncio.get_running_loop().time() + 60
        calls = await admin.margin_calls()
        while not until(a, b, calls) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
            calls = await admin.margin_calls()
        settled = len(calls)
        await asyncio.sleep(2.0)  # nothing more once a side holds
        later = await admin.margin_calls()
        margin = Decimal((await admin.position(W, "CRO-USDT-SWAP", "long"))["margin"])
        health = {}
        async with httpx.AsyncClient() as http:
            for p in (a, b):
                url = (await p.wait_event("status.ready"))["url"]
                r = await http.get(f"{url.rstrip('/')}/healthz")
                health[p] = (r.status_code, r.text)
    finally:
        for p in (a, b):
            if p is not None:
                await p.terminate()
        await sim.terminate()
        await admin.aclose()
    assert a is not None and b is not None
    return a, b, calls, settled, later, margin, health


async def test_two_controllers_stop_fighting_after_a_few_transfers(tmp_path):
    def held(a: Any, b: Any, _calls: list[dict[str, Any]]) -> bool:
        return bool(
            a.events("margin.position.held_foreign") or b.events("margin.position.held_foreign")
        )

    a, b, _, settled, later, margin, health = await _tug_of_war(tmp_path, limit=2, until=held)
    n, moved = _moved(later)
    print(
        f"\nFAULT-METRIC two controllers, fence on: {n} transfers, {moved} USDT moved,"
        f" margin {margin}"
    )
    held = a.events("margin.position.held_foreign") + b.events("margin.position.held_foreign")
    assert held, "neither side held the position"
    assert held[0]["instId"] == "CRO-USDT-SWAP" and held[0]["foreign_transfers"] >= 2
    foreign = a.events("margin.foreign_transfer") + b.events("margin.foreign_transfer")
    assert all(f["billId"] and Decimal(f["amount"]) > 0 for f in foreign)
    assert n <= 4, [json.loads(c["body"]) for c in later]
    assert len(later) == settled  # quiet after the hold
    # The side that holds says so on /healthz (503, the position named).
    holder = a if a.events("margin.position.held_foreign") else b
    code, text = health[holder]
    assert code == 503 and "CRO-USDT-SWAP" in text and "held" in text, text
    assert Decimal("9.5") <= margin <= Decimal("21")


async def test_without_the_fence_the_controllers_fight(tmp_path):
    """The same two processes with the limit out of reach (the behaviour before the fence):
    they keep undoing each other's transfers."""

    def fought(_a: Any, _b: Any, calls: list[dict[str, Any]]) -> bool:
        n, moved = _moved(calls)
        return n >= 10 and moved >= 100

    _, _, _, _, later, _, _ = await _tug_of_war(tmp_path, limit=100, until=fought)
    n, moved = _moved(later)
    print(f"\nFAULT-METRIC two controllers, fence off: {n} transfers, {moved} USDT moved")
    assert n >= 10 and moved >= 100
