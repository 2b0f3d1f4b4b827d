"""Shared benchmark plumbing: the simulator subprocess, the reactor under probes, statistics."""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml

from reactor import app
from reactor import log as logging_setup
from reactor.config import AccountConfig, Config, load_config
from reactor.okx import pacing
from reactor.okx import ws as ws_module
from reactor.okx.models import Position
from reactor.okx.ws_protocol import PrivateChannelProtocol, WsEvent

ROOT = Path(__file__).resolve().parent.parent
TARGETS = [
    {"min_count": 0, "target": "10", "band": ["9.5", "10.5"]},
    {"min_count": 2, "target": "20", "band": ["19", "21"]},
    {"min_count": 3, "target": "30", "band": ["28.5", "31.5"]},
]
BAND_LO, BAND_HI = Decimal("9.5"), Decimal("10.5")
MARGIN_PATH = "/api/v5/account/position/margin-balance"


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no data."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def dist_ms(values_s: list[float]) -> dict[str, Any]:
    """p50/p99/max in milliseconds (rounded to µs) and the sample count."""

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 3)

    return {
        "n": len(values_s),
        "p50_ms": ms(pct(values_s, 50)),
        "p99_ms": ms(pct(values_s, 99)),
        "max_ms": ms(max(values_s) if values_s else None),
    }


# ---------------------------------------------------------------------------- simulator process


class SimProcess:
    """``bench.simproc`` in a child process; ``control`` is an httpx client on its control API."""

    def __init__(self, proc: asyncio.subprocess.Process, info: dict[str, str]) -> None:
        self.proc = proc
        self.url = info["url"]
        self.ws_url = info["ws_url"]
        self.control = httpx.AsyncClient(base_url=info["control"], timeout=60)

    async def get(self, path: str) -> Any:
        r = await self.control.get(path)
        r.raise_for_status()
        return r.json()

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        r = await self.control.post(path, json=body)
        r.raise_for_status()
        return r.json()

    async def close(self) -> None:
        await self.control.aclose()
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@asynccontextmanager
async def sim_process(
    scenario: dict[str, Any], *, rate_limits: bool = True, stamp: bool = True
) -> AsyncIterator[SimProcess]:
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        path = Path(tmp) / "scenario.json"
        path.write_text(json.dumps(scenario))
        args = [sys.executable, "-m", "bench.simproc", str(path)]
        if not rate_limits:
            args.append("--no-rate-limits")
        if stamp:
            args.append("--stamp")
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT), limit=1 << 20
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        if not line:
            await proc.wait()
            raise RuntimeError(f"bench.simproc exited with {proc.returncode}")
        sim = SimProcess(proc, json.loads(line))
        try:
            yield sim
        finally:
            await sim.close()


# ------------------------------------------------------------------------------- scenarios


def account(n: int, positions: list[dict[str, Any]], balance: str = "1000000") -> dict[str, Any]:
    return {
        "name": f"sub{n:04d}",
        "apiKey": f"bench-key-{n}",
        "secretKey": f"bench-secret-{n}",
        "passphrase": f"bench-pass-{n}",
        "balance": balance,
        "positions": positions,
    }


# ------------------------------------------------------------------------------ the reactor


@dataclass
class Probe:
    """Timestamps taken around the reactor without touching engine.py or app.py.

    - frame received: when the session hands a text frame to the protocol (``receive``);
    - due: the first frame that showed a position out of band (count-0 band), per position;
    - sent: when httpx hands the margin-balance request to its transport.
    The simulator stamps each push with its send wall time (``simTs``).
    """

    frames: int = 0
    rx_perf: float = 0.0
    rx_wall: float = 0.0
    rx_sim_ts: float = 0.0
    due: dict[tuple[str, str, str], tuple[float, float, float]] = field(default_factory=dict)
    sends: list[dict[str, Any]] = field(default_factory=list)
    enabled: bool = True

    def on_frame(self, text: str) -> None:
        self.frames += 1
        self.rx_perf = time.perf_counter()
        self.rx_wall = time.time()
        i = text.rfind(',"simTs":', -40)
        self.rx_sim_ts = float(text[i + 9 : -1]) if i >= 0 else 0.0

    def on_positions(self, positions: list[Position]) -> None:
        if not self.enabled:
            return
        for p in positions:
            m = p.margin
            if m is None or p.pos == 0:
                continue
            key = p.key[:3]  # (account, instId, posSide): what the request body names
            if BAND_LO <= m <= BAND_HI:
                self.due.pop(key, None)
            elif key not in self.due:
                self.due[key] = (self.rx_perf, self.rx_wall, self.rx_sim_ts)

    def on_send(self, account: str, body: bytes) -> None:
        now = time.perf_counter()
        wall = time.time()
        raw = json.loads(body)
        key = (account, raw["instId"], raw["posSide"])
        due = self.due.pop(key, None)
        self.sends.append(
            {
                "account": account,
                "body": body.decode(),
                "wall": wall,
                "own_s": None if due is None else now - due[0],
                "in_s": None if due is None or not due[2] else due[1] - due[2],
                "sim_ts": None if due is None or not due[2] else due[2],
            }
        )


PROBE = Probe()


class _StampedProtocol(PrivateChannelProtocol):
    def receive(self, text: str) -> list[WsEvent]:
        PROBE.on_frame(text)
        return super().receive(text)


class _ProbeHandler:
    """Sits between a session and the engine; records when a position became due."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def on_update(self, account: str, positions: list[Position]) -> None:
        PROBE.on_positions(positions)
        self._inner.on_update(account, positions)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _ProbeTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, account: str) -> None:
        self._inner = inner
        self._account = account

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == MARGIN_PATH:
            PROBE.on_send(self._account, request.content)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def install_probes() -> None:
    """Stamp frames on arrival (class-level patch of the protocol the sessions build)."""
    setattr(ws_module, "PrivateChannelProtocol", _StampedProtocol)  # noqa: B010


def patch_connect_rate(rate: int) -> None:
    """Scaled start-up: app.start builds ``ConnectPacer()``; give it ``rate`` per second."""

    class _Pacer(pacing.ConnectPacer):
        def __init__(self) -> None:
            super().__init__(rate, 1.0)

    setattr(app, "ConnectPacer", _Pacer)  # noqa: B010


def write_config(
    state_dir: Path,
    sim: SimProcess,
    scenario: dict[str, Any],
    **timing: Any,
) -> Config:
    """A reactor config for ``scenario`` on ``sim``; credentials go to the environment."""
    names = [a["name"] for a in scenario["accounts"]]
    for acc in scenario["accounts"]:
        prefix = AccountConfig(name=acc["name"]).env_prefix
        os.environ[f"{prefix}_API_KEY"] = acc["apiKey"]
        os.environ[f"{prefix}_SECRET_KEY"] = acc["secretKey"]
        os.environ[f"{prefix}_PASSPHRASE"] = acc["passphrase"]
    raw = {
        "venue": {"kind": "sim", "rest_url": sim.url, "ws_private_url": sim.ws_url},
        "state_dir": str(state_dir / "state"),
        "accounts": [{"name": n} for n in names],
        "targets": TARGETS,
        "policy": {"buffer": "1.5", "min_action": "0.1"},
        "timing": timing,
        "status": {"enabled": False, "port": 0},
        "log": {"format": "json", "level": "info"},
    }
    path = state_dir / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@asynccontextmanager
async def reactor(cfg: Config, *, probes: bool = True) -> AsyncIterator[app.Runtime]:
    """The real reactor (app.start/stop), logging at info into /dev/null as in production."""
    with open(os.devnull, "w") as sink:
        logging_setup.configure("info", "json", stream=sink)
        PROBE.__init__()  # type: ignore[misc]
        rt = await app.start(cfg)
        app.tune_gc()  # as `reactor run` does
        if probes:
            for session in rt.sessions.values():
                session._handler = _ProbeHandler(session._handler)
            for name, client in rt.clients.items():
                inner = client._client._transport
                client._client._transport = _ProbeTransport(inner, name)
        try:
            yield rt
        finally:
            await app.stop(rt)


async def wait_until(pred: Any, timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(interval_s)
    return bool(pred())


def match_e2e(sends: list[dict[str, Any]], requests: list[dict[str, Any]]) -> list[float]:
    """Simulator push (simTs) -> simulator received the call, per probed send.

    A send matches the first request with the same account and body received after it left
    (the same body recurs across corrections, so order alone is not enough).
    """
    queues: dict[tuple[str, str], list[float]] = {}
    for r in requests:
        queues.setdefault((r["account"], r["body"]), []).append(r["time"])
    out = []
    for s in sorted(sends, key=lambda s: s["wall"]):
        q = queues.get((s["account"], s["body"]))
        while q and q[0] < s["wall"] - 0.005:
            q.pop(0)
        if not q:
            continue
        t = q.pop(0)
        if s["sim_ts"] is not None:
            out.append(t - s["sim_ts"])
    return out
