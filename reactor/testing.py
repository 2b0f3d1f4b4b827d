"""Test support: run the real reactor against the simulator, over real sockets.

One supported module for the project's tests, its benchmarks and anyone who wants to test
against the simulator: the desk's target table, a config writer, credentials in the
environment, the simulator's ``/sim/`` admin client, signed raw requests, the reactor started
in-process (``app.start``/``app.stop``, with :class:`reactor.service.app.StartHooks` as the
seams) and polling waits. Nothing here mocks the exchange; pytest is not needed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from reactor import log as logging_setup
from reactor.config import AccountConfig, Config
from reactor.okx.endpoints import MARGIN_BALANCE, POSITIONS
from reactor.okx.signing import iso_timestamp, rest_sign
from reactor.service import app

__all__ = [
    "BAND_HI",
    "BAND_LO",
    "MARGIN_BALANCE",
    "POSITIONS",
    "TARGETS",
    "TEST_TIMING",
    "LogCapture",
    "SimAdmin",
    "admin",
    "credentials_env",
    "running",
    "signed",
    "wait_for",
    "wait_until",
    "write_config",
]

# The desk's targets (docs/spec/domain.md): count 0-1 -> 10 (9.5-10.5), 2 -> 20 (19-21), 3+ -> 30.
TARGETS: list[dict[str, Any]] = [
    {"min_count": 0, "target": "10", "band": ["9.5", "10.5"]},
    {"min_count": 2, "target": "20", "band": ["19", "21"]},
    {"min_count": 3, "target": "30", "band": ["28.5", "31.5"]},
]
BAND_LO, BAND_HI = Decimal("9.5"), Decimal("10.5")  # count 0-1

# Short timings so that tests resolve in well under a second (production defaults are slower).
TEST_TIMING: dict[str, Any] = {
    "debounce_ms": 50,
    "cooldown_s": 1,
    "reconcile_interval_s": 30,
    "request_timeout_s": 2,
    "ledger_poll_ms": 50,
}


def write_config(
    directory: Path,
    rest_url: str,
    accounts: list[dict[str, Any]],
    *,
    ws_url: str | None = None,
    defaults: Mapping[str, Any] = TEST_TIMING,
    policy: Mapping[str, Any] | None = None,
    maintenance: Mapping[str, Any] | None = None,
    log_level: str = "debug",
    **timing: Any,
) -> Path:
    """``directory/config.yaml`` for a simulator at ``rest_url`` (state under ``directory``).

    ``accounts`` are config entries (``{"name": ...}``); credentials come from the environment
    (:func:`credentials_env`). ``timing`` overrides ``defaults``.
    """
    raw = {
        "venue": {
            "kind": "sim",
            "rest_url": rest_url,
            "ws_private_url": ws_url or rest_url.replace("http://", "ws://") + "/ws/v5/private",
        },
        "state_dir": str(directory / "state"),
        "accounts": accounts,
        "targets": TARGETS,
        "policy": {"buffer": "1.5", "min_action": "0.1", **(policy or {})},
        "timing": {**defaults, **timing},
        "status": {"enabled": False, "port": 0},
        "log": {"format": "json", "level": log_level},
    }
    if maintenance is not None:
        raw["maintenance"] = dict(maintenance)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def credentials_env(scenario: Mapping[str, Any]) -> dict[str, str]:
    """The environment variables that carry each scenario account's credentials."""
    env = {}
    for acc in scenario["accounts"]:
        prefix = AccountConfig(name=acc["name"]).env_prefix
        env[f"{prefix}_API_KEY"] = acc["apiKey"]
        env[f"{prefix}_SECRET_KEY"] = acc["secretKey"]
        env[f"{prefix}_PASSPHRASE"] = acc["passphrase"]
    return env


class LogCapture:
    """Collects the reactor's JSON log lines so that tests can assert on events."""

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


@asynccontextmanager
async def running(
    cfg: Config,
    *,
    dry_run: bool | None = None,
    hooks: app.StartHooks | None = None,
    log_level: str = "debug",
    log_stream: IO[str] | None = None,
    tune_gc: bool = False,
) -> AsyncIterator[tuple[app.Runtime, LogCapture]]:
    """The real reactor in this event loop; JSON logs go to the yielded capture (or to
    ``log_stream``, e.g. /dev/null for benchmarks). ``dry_run`` None: the config's key.
    ``tune_gc`` does what ``reactor run`` does after start-up."""
    capture = LogCapture()
    logging_setup.configure(log_level, "json", stream=log_stream or capture)  # type: ignore[arg-type]
    rt = await app.start(cfg, dry_run=dry_run, hooks=hooks)
    if tune_gc:
        app.tune_gc()
    try:
        yield rt, capture
    except BaseException:
        print("\n".join(capture.lines[-80:]))  # shown by pytest on failure
        raise
    finally:
        await app.stop(rt)


Predicate = Callable[[], Any]


async def _check(predicate: Predicate) -> Any:
    result = predicate()
    if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
        result = await result
    return result


async def wait_until(predicate: Predicate, timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``predicate`` (plain or async) until it is truthy; False if ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await _check(predicate):
            return True
        await asyncio.sleep(interval_s)
    return bool(await _check(predicate))


async def wait_for(predicate: Predicate, timeout_s: float = 10.0, interval_s: float = 0.05) -> Any:
    """Poll ``predicate`` until it is truthy and return its value; AssertionError on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await _check(predicate)
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


class SimAdmin:
    """The simulator's ``/sim/`` admin API."""

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
        return await self.requests(MARGIN_BALANCE)

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


async def admin(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One admin call: GET ``path`` (no body) or POST ``body`` as JSON; the decoded answer."""
    async with httpx.AsyncClient(base_url=url) as client:
        r = await (client.get(path) if body is None else client.post(path, json=body))
        r.raise_for_status()
        return r.json()


async def signed(
    url: str,
    method: str,
    path: str,
    body: str = "",
    *,
    key: str,
    secret: str,
    passphrase: str,
    ts: str | None = None,
    drop: str | None = None,
    sign: str | None = None,
    timeout: float = 5.0,
    simulated: bool = True,
) -> httpx.Response:
    """A raw signed OKX v5 request (to test the exact answers): ``drop`` leaves out one
    header, ``sign``/``ts`` override the signature and timestamp; ``simulated`` sends
    ``x-simulated-trading: 1`` (scenario keys are demo keys unless the scenario says not)."""
    ts = ts or iso_timestamp(time.time())
    headers = {
        "OK-ACCESS-KEY": key,
        "OK-ACCESS-SIGN": sign or rest_sign(secret, ts, method, path, body),
        "OK-ACCESS-TIMESTAMP": ts,
        "OK-ACCESS-PASSPHRASE": passphrase,
        "Content-Type": "application/json",
    }
    if simulated:
        headers["x-simulated-trading"] = "1"
    if drop:
        del headers[drop]
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        return await client.request(method, path, content=body.encode(), headers=headers)
