"""``reactor sim`` and ``reactor run`` as real processes, for kill -9 and restart tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from reactor.testing import credentials_env

__all__ = ["Proc", "credentials_env", "journal", "start_reactor", "start_sim"]


class Proc:
    """A child process whose stdout JSON lines are collected as they arrive."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.lines: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, name: str, *args: str, env: dict[str, str] | None = None, stderr: Path
    ) -> Proc:
        with stderr.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "reactor",
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env={**os.environ, **(env or {})},
            )
        return cls(proc, name)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(line))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.lines if e.get("event") == name]

    async def wait_event(self, name: str, timeout_s: float = 15.0, n: int = 1) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while len(self.events(name)) < n:
            if self.proc.returncode is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode} before {name}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {name} within {timeout_s}s")
            await asyncio.sleep(0.02)
        return self.events(name)[n - 1]

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        await self._reader

    async def terminate(self, timeout_s: float = 15.0) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(self.proc.wait(), timeout_s)
        await self._reader
        return rc


async def start_sim(scenario: dict[str, Any], tmp_path: Path, port: int = 0) -> tuple[Proc, str]:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario))
    sim = await Proc.start(
        "sim", "sim", "--scenario", str(path), "--port", str(port), stderr=tmp_path / "sim.err"
    )
    ready = await sim.wait_event("sim.ready")
    return sim, str(ready["url"])


async def start_reactor(cfg_path: Path, env: dict[str, str], tmp_path: Path) -> Proc:
    return await Proc.start(
        "reactor", "run", "--config", str(cfg_path), env=env, stderr=tmp_path / "reactor.err"
    )


def journal(cfg_path: Path) -> list[dict[str, Any]]:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "reactor", "journal", "--json", "--config", str(cfg_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
