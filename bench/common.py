"""Shared benchmark plumbing: the simulator subprocess, the reactor under probes, statistics."""

from __future__ import annotations

import asyncio
import json
import math
import os
import ssl
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from reactor import testing
from reactor.config import Config, load_config
from reactor.okx import pacing
from reactor.okx.models import Position
from reactor.okx.ws import SessionHandler
from reactor.okx.ws_protocol import PrivateChannelProtocol, WsEvent
from reactor.service import app
from reactor.store import Intent
from reactor.testing import BAND_HI, BAND_LO, TARGETS, credentials_env, wait_until

__all__ = ["BAND_HI", "BAND_LO", "TARGETS", "wait_until"]

ROOT = Path(__file__).resolve().parent.parent
MARGIN_PATH = testing.MARGIN_BALANCE
BENCH_CONNECT_RATE = 50  # connections/s for the small latency and convergence books


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


async def lag_probe(samples: list[float], stop: asyncio.Event) -> None:
    """Event-loop lag: how late a 10 ms sleep wakes up."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(0.01)
        samples.append(max(0.0, loop.time() - t - 0.01))


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


def position(
    inst_id: str, pos_side: str = "long", *, lever: str = "20", margin: str = "10"
) -> dict[str, Any]:
    """One contract bought at 100: the position the latency, convergence, steady and burst
    books are made of (20x and margin 10: in the 10 USDT band)."""
    return {
        "instId": inst_id,
        "posSide": pos_side,
        "pos": "1",
        "avgPx": "100",
        "lever": lever,
        "margin": margin,
    }


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
    """Timestamps taken around the reactor through ``app.StartHooks`` (no engine changes).

    - frame received: when the session hands a text frame to the protocol (``receive``);
    - due: the first frame that showed a position out of band (count-0 band), per position;
    - sent: when httpx hands the margin-balance request to its transport.
    The simulator stamps each push with its send wall time (``simTs``).
    """

    frames: int = 0
    records: int = 0  # position records handed to the engine (snapshots and events)
    rx_perf: float = 0.0
    rx_wall: float = 0.0
    rx_sim_ts: float = 0.0
    due: dict[tuple[str, str, str], tuple[float, float, float, float]] = field(default_factory=dict)
    sends: list[dict[str, Any]] = field(default_factory=list)
    enabled: bool = True
    # Every REST GET per account: (path without query, started, ended) on perf_counter.
    gets: dict[str, list[tuple[str, float, float]]] = field(default_factory=dict)
    # The last journal intent write per position: (started, ended) on perf_counter.
    journal: dict[tuple[str, str, str], tuple[float, float]] = field(default_factory=dict)

    def on_frame(self, text: str) -> None:
        self.frames += 1
        self.rx_perf = time.perf_counter()
        self.rx_wall = time.time()
        i = text.rfind(',"simTs":', -40)
        self.rx_sim_ts = float(text[i + 9 : -1]) if i >= 0 else 0.0

    def on_positions(self, positions: list[Position]) -> None:
        self.records += len(positions)
        if not self.enabled:
            return
        handed = time.perf_counter()  # parsed: the engine gets the positions now
        for p in positions:
            m = p.margin
            if m is None or p.pos == 0:
                continue
            key = p.key[:3]  # (account, instId, posSide): what the request body names
            if BAND_LO <= m <= BAND_HI:
                self.due.pop(key, None)
            elif key not in self.due:
                self.due[key] = (self.rx_perf, self.rx_wall, self.rx_sim_ts, handed)

    def on_send(self, account: str, body: bytes) -> None:
        now = time.perf_counter()
        wall = time.time()
        raw = json.loads(body)
        key = (account, raw["instId"], raw["posSide"])
        due = self.due.pop(key, None)
        reads: dict[str, int] = {}
        reads_s = journal_s = None
        if due is not None:
            spans = []
            for path, t0, t1 in self.gets.get(account, ()):
                if t0 >= due[0] and t1 <= now:
                    reads[path] = reads.get(path, 0) + 1
                    spans.append((t0, t1))
            reads_s = _covered(spans)
            j = self.journal.pop(key, None)
            journal_s = j[1] - j[0] if j is not None and j[0] >= due[0] else 0.0
        self.sends.append(
            {
                "account": account,
                "body": body.decode(),
                "wall": wall,
                "own_s": None if due is None else now - due[0],
                "parse_s": None if due is None else due[3] - due[0],
                "engine_s": None if due is None else now - due[3],
                "journal_s": journal_s,
                "reads_s": reads_s,
                "reads": reads,
                "in_s": None if due is None or not due[2] else due[1] - due[2],
                "sim_ts": None if due is None or not due[2] else due[2],
            }
        )


def _covered(spans: list[tuple[float, float]]) -> float:
    """The time the union of ``spans`` covers (reads in parallel count once)."""
    total, end = 0.0, float("-inf")
    for t0, t1 in sorted(spans):
        if t1 <= end:
            continue
        total += t1 - max(t0, end)
        end = t1
    return total


PROBE = Probe()


def probe_journal(rt: app.Runtime) -> None:
    """Stamp the reactor's journal intent writes (the ledger instance of this run only): each
    intent of a batch gets the batch's commit."""
    ledger = rt.engine.ledger
    inner = ledger.journal_intents

    def journal_intents(intents: Sequence[Intent]) -> list[int]:
        t0 = time.perf_counter()
        try:
            return inner(intents)
        finally:
            t1 = time.perf_counter()
            for i in intents:
                PROBE.journal[(i.account, i.inst_id, i.pos_side)] = (t0, t1)

    ledger.journal_intents = journal_intents  # type: ignore[method-assign]


class StampedProtocol(PrivateChannelProtocol):
    """Stamps each text frame as the session hands it to the protocol."""

    def receive(self, text: str) -> list[WsEvent]:
        PROBE.on_frame(text)
        return super().receive(text)


class ProbeHandler:
    """Sits between a session and the engine; records when a position became due."""

    def __init__(self, inner: SessionHandler) -> None:
        self._inner = inner

    def on_update(self, account: str, positions: list[Position]) -> None:
        PROBE.on_positions(positions)
        self._inner.on_update(account, positions)

    def on_snapshot(
        self, account: str, positions: list[Position], *, last_page: bool, **kwargs: Any
    ) -> None:
        PROBE.on_positions(positions)
        self._inner.on_snapshot(account, positions, last_page=last_page, **kwargs)

    def on_connected(self, account: str) -> None:
        self._inner.on_connected(account)

    def on_disconnected(self, account: str, reason: str) -> None:
        self._inner.on_disconnected(account, reason)

    def on_stopped(self, account: str, reason: str) -> None:
        self._inner.on_stopped(account, reason)


# Each transport would otherwise build its own TLS context (~0.85 MB, ~20 ms): the reactor shares
# one (reactor.okx.rest), and so does the probe.
_SSL = ssl.create_default_context()


class ProbeTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, stamping when a margin-balance request is handed to it."""

    def __init__(self, account: str) -> None:
        self._inner = httpx.AsyncHTTPTransport(verify=_SSL)  # one context, as the reactor
        self._account = account

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == MARGIN_PATH:
            PROBE.on_send(self._account, request.content)
        if request.method != "GET":
            return await self._inner.handle_async_request(request)
        t0 = time.perf_counter()
        try:
            return await self._inner.handle_async_request(request)
        finally:
            gets = PROBE.gets.setdefault(self._account, [])
            gets.append((request.url.path, t0, time.perf_counter()))

    async def aclose(self) -> None:
        await self._inner.aclose()


def with_update_interval(
    base: type[PrivateChannelProtocol], interval_ms: int | None
) -> type[PrivateChannelProtocol]:
    """``base`` subscribing with ``extraParams`` ``updateInterval`` (DOC-POS: "2000", "3000",
    "4000" ms; without it OKX sends a regular snapshot about every 5 s). The reactor does not
    set it; the benchmark measures both."""
    if interval_ms is None:
        return base
    extra = json.dumps({"updateInterval": str(interval_ms)})

    class Subscribing(base):  # type: ignore[valid-type,misc]
        def subscribe_frame(self) -> str:
            super().subscribe_frame()  # the protocol's own bookkeeping
            arg = {"channel": "positions", "instType": "SWAP", "extraParams": extra}
            return json.dumps({"op": "subscribe", "args": [arg]}, separators=(",", ":"))

    return Subscribing


def start_hooks(
    *, connect_rate: int, probes: bool, update_interval_ms: int | None = None
) -> app.StartHooks:
    """The seams the benchmarks use: a scaled connection pacer (OKX allows 3 per second), the
    snapshot interval and, with ``probes``, frame stamps, due times and send stamps."""
    pacer = pacing.ConnectPacer(connect_rate, 1.0)
    if not probes:
        return app.StartHooks(
            pacer=pacer,
            protocol_class=with_update_interval(PrivateChannelProtocol, update_interval_ms),
        )
    return app.StartHooks(
        pacer=pacer,
        transport=ProbeTransport,
        session_handler=lambda _account, inner: ProbeHandler(inner),
        protocol_class=with_update_interval(StampedProtocol, update_interval_ms),
    )


def write_config(
    state_dir: Path,
    sim: SimProcess,
    scenario: dict[str, Any],
    *,
    maintenance: dict[str, Any] | None = None,
    **timing: Any,
) -> Config:
    """A reactor config for ``scenario`` on ``sim`` (production timing unless given);
    credentials go to the environment."""
    os.environ.update(credentials_env(scenario))
    path = testing.write_config(
        state_dir,
        sim.url,
        [{"name": a["name"]} for a in scenario["accounts"]],
        ws_url=sim.ws_url,
        defaults={},
        maintenance=maintenance,
        log_level="info",
        **timing,
    )
    return load_config(path)


@asynccontextmanager
async def reactor(
    cfg: Config,
    *,
    probes: bool = True,
    connect_rate: int = BENCH_CONNECT_RATE,
    update_interval_ms: int | None = None,
) -> AsyncIterator[app.Runtime]:
    """The real reactor (app.start/stop, GC tuned as ``reactor run`` does), logging at info
    into /dev/null as in production."""
    PROBE.__init__()  # type: ignore[misc]
    with open(os.devnull, "w") as sink:
        hooks = start_hooks(
            connect_rate=connect_rate, probes=probes, update_interval_ms=update_interval_ms
        )
        async with testing.running(
            cfg, hooks=hooks, log_level="info", log_stream=sink, tune_gc=True
        ) as (rt, _):
            yield rt


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
