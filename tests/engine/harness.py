"""Run the real reactor (app.start/stop) against a simulator over real sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reactor import app
from reactor import log as logging_setup
from reactor.config import Config

TARGETS = [
    {"min_count": 0, "target": "10", "band": ["9.5", "10.5"]},
    {"min_count": 2, "target": "20", "band": ["19", "21"]},
    {"min_count": 3, "target": "30", "band": ["28.5", "31.5"]},
]


class LogCapture:
    """Collects the reactor's JSON log lines so tests can assert on events."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.extend(t for t in text.splitlines() if t.strip())
        return len(text)

    def flush(self) -> None:
        pass

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = [json.loads(line) for line in self.lines]
        return [e for e in out if name is None or e["event"] == name]


def write_config(
    tmp_path: Path,
    sim_url: str,
    accounts: list[dict[str, Any]],
    **timing: Any,
) -> Path:
    raw = {
        "venue": {
            "kind": "sim",
            "rest_url": sim_url,
            "ws_private_url": sim_url.replace("http://", "ws://") + "/ws/v5/private",
        },
        "state_dir": str(tmp_path / "state"),
        "accounts": accounts,
        "targets": TARGETS,
        "policy": {"buffer": "1.5", "min_action": "0.1"},
        "timing": {
            "debounce_ms": 50,
            "cooldown_s": 1,
            "reconcile_interval_s": 30,
            "request_timeout_s": 2,
            "ledger_poll_ms": 50,
            **timing,
        },
        "status": {"enabled": False, "port": 0},
        "log": {"format": "json", "level": "debug"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def set_credentials(monkeypatch: pytest.MonkeyPatch, scenario: dict[str, Any]) -> None:
    from reactor.config import AccountConfig

    for acc in scenario["accounts"]:
        prefix = AccountConfig(name=acc["name"]).env_prefix
        monkeypatch.setenv(f"{prefix}_API_KEY", acc["apiKey"])
        monkeypatch.setenv(f"{prefix}_SECRET_KEY", acc["secretKey"])
        monkeypatch.setenv(f"{prefix}_PASSPHRASE", acc["passphrase"])


@asynccontextmanager
async def running(cfg: Config, *, dry_run: bool = False) -> AsyncIterator[tuple[Any, LogCapture]]:
    capture = LogCapture()
    logging_setup.configure("debug", "json", stream=capture)  # type: ignore[arg-type]
    rt = await app.start(cfg, dry_run=dry_run)
    try:
        yield rt, capture
    except BaseException:
        print("\n".join(capture.lines[-80:]))  # shown by pytest on failure
        raise
    finally:
        await app.stop(rt)


async def wait_for(
    predicate: Callable[[], Any], timeout_s: float = 10.0, interval_s: float = 0.05
) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


class SimAdmin:
    """The simulator's /sim/ admin API."""

    def __init__(self, url: str) -> None:
        self.client = httpx.AsyncClient(base_url=url, timeout=10)

    async def state(self) -> dict[str, Any]:
        r = await self.client.get("/sim/state")
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    async def position(self, account: str, inst_id: str, pos_side: str) -> dict[str, Any] | None:
        state = await self.state()
        for acc in state["accounts"]:
            if acc["name"] != account:
                continue
            for p in acc["positions"]:
                if p["instId"] == inst_id and p["posSide"] == pos_side:
                    return p  # type: ignore[no-any-return]
        return None

    async def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        r = await self.client.get("/sim/requests")
        r.raise_for_status()
        items: list[dict[str, Any]] = r.json()
        return [i for i in items if path is None or i["path"].startswith(path)]

    async def margin_calls(self) -> list[dict[str, Any]]:
        return await self.requests("/api/v5/account/position/margin-balance")

    async def mark_price(self, inst_id: str, px: str) -> None:
        r = await self.client.post("/sim/mark-price", json={"instId": inst_id, "markPx": px})
        r.raise_for_status()

    async def fault(self, **body: Any) -> None:
        r = await self.client.post("/sim/faults", json=body)
        r.raise_for_status()

    async def set_position(self, **body: Any) -> None:
        r = await self.client.post("/sim/positions", json=body)
        r.raise_for_status()

    async def aclose(self) -> None:
        await self.client.aclose()
