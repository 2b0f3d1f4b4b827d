"""The probe's I/O shell: REST through :class:`OkxRestClient` with a recording httpx transport,
the private WebSocket through ``websockets`` with the reactor's own login frame, and the files.

Everything the venue says is recorded before anything looks at it; the steps and the facts
live in :mod:`reactor.probe.script` and :mod:`reactor.probe.facts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from reactor.config import AccountConfig, Config, ConfigError, load_credentials
from reactor.log import error_text
from reactor.okx.bills import BILL_TYPE_FUNDING as FUNDING_BILL_TYPE
from reactor.okx.credentials import Credentials
from reactor.okx.endpoints import ADJUST_LEVERAGE_INFO
from reactor.okx.errors import AmbiguousOutcome, OkxError, RequestNotSent
from reactor.okx.models import PayloadError, parse_instrument
from reactor.okx.rest import OkxRestClient
from reactor.okx.ws_protocol import LoginFailed, LoginOk, PrivateChannelProtocol, Subscribed
from reactor.okx.ws_protocol import SubscribeFailed as WsSubscribeFailed
from reactor.probe.facts import extract_facts, find_event_push
from reactor.probe.fixtures import fixture_payloads, readme
from reactor.probe.record import FileSink, Recorder, Redactor
from reactor.probe.script import (
    AMBIGUOUS,
    NOT_SENT,
    CallResult,
    ProbeOptions,
    ProbeScript,
    ScriptOutcome,
    Unavailable,
)
from reactor.probe.summary import summary_lines

FRAMES_FILE = "frames.jsonl"
FACTS_FILE = "facts.json"
SOURCE_FILE = "source.json"
README_FILE = "README.md"
MAX_FRAME_BYTES = 16 * 1024 * 1024
_DROP_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class ProbeFailed(Exception):
    """The probe could not run (no connection, login refused); nothing was moved by it."""


# -- REST ------------------------------------------------------------------------------------


class RecordingTransport(httpx.AsyncBaseTransport):
    """Records each request (method, path with query, body; never headers, which carry the
    key, passphrase and signature) and each answer (status, body) around a real transport."""

    def __init__(self, recorder: Recorder, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._rec = recorder
        self._inner = inner or httpx.AsyncHTTPTransport(verify=ssl.create_default_context())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        rid = self._rec.http_id()
        method = request.method
        path = request.url.raw_path.decode("ascii", "replace")
        try:
            body = request.content.decode("utf-8", "replace")
        except httpx.RequestNotRead:
            body = ""
        self._rec.add("http_request", id=rid, method=method, path=path, body=body)
        try:
            resp = await self._inner.handle_async_request(request)
            try:
                content = await resp.aread()
            finally:
                await resp.aclose()
        except Exception as exc:
            self._rec.add(
                "http_error",
                id=rid,
                method=method,
                path=path,
                error=error_text(exc),
            )
            raise
        self._rec.add(
            "http_response",
            id=rid,
            method=method,
            path=path,
            status=resp.status_code,
            body=content.decode("utf-8", "replace"),
        )
        headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in _DROP_HEADERS]
        extensions: dict[str, Any] = {
            k: resp.extensions[k] for k in ("http_version", "reason_phrase") if k in resp.extensions
        }
        return httpx.Response(
            resp.status_code,
            headers=headers,
            content=content,
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class ProbeRestClient(OkxRestClient):
    """The reactor's REST client plus the two reads only the probe needs (DOC-TA limits)."""

    async def get_adjust_leverage_info(
        self, inst_id: str, pos_side: str, lever: str
    ) -> list[dict[str, Any]]:
        # DOC-TA "Get leverage estimated info": posSide only in long/short mode.
        params: dict[str, str | None] = {
            "instType": "SWAP",
            "mgnMode": "isolated",
            "lever": lever,
            "instId": inst_id,
            "posSide": None if pos_side == "net" else pos_side,
        }
        return await self._get(ADJUST_LEVERAGE_INFO, params)


# -- WebSocket -------------------------------------------------------------------------------


class WsLink:
    """The private ``positions`` stream, every frame recorded. No pings while observing
    (docs/spec/okx-fidelity.md §9.1 asks whether a connection lives 60 s without them)."""

    def __init__(
        self,
        url: str,
        account: str,
        credentials: Credentials,
        recorder: Recorder,
        *,
        headers: dict[str, str] | None,
        clock: Callable[[], float],
        ping_after_s: float = 20.0,
        ready_timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self._account = account
        self._creds = credentials
        self._rec = recorder
        self._headers = headers
        self._clock = clock
        self._ping_after_s = ping_after_s
        self._ready_timeout_s = ready_timeout_s
        self.pinging = False
        self.conn_no = 0
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._frames = asyncio.Condition()
        self._last_tx = 0.0
        self._state = "new"
        self._failure = ""

    @property
    def open(self) -> bool:
        return self._ws is not None and self._state == "subscribed"

    async def connect(self) -> None:
        """Connect, log in, subscribe ``positions`` without ``extraParams``; ProbeFailed if not."""
        await self.close()
        self.conn_no += 1
        n = self.conn_no
        try:
            ws = await connect(
                self.url,
                additional_headers=self._headers,
                open_timeout=self._ready_timeout_s,
                ping_interval=None,  # OKX heartbeats with text "ping"; none while observing
                close_timeout=2,
                max_size=MAX_FRAME_BYTES,
                proxy=None,
            )
        except Exception as exc:
            self._rec.add("ws_error", conn=n, error=error_text(exc))
            raise ProbeFailed(f"cannot connect to {self.url}: {type(exc).__name__}") from None
        self._rec.add("ws_open", conn=n, url=self.url)
        self._ws = ws
        self._state = "connecting"
        proto = PrivateChannelProtocol(self._account, self._creds, clock=self._clock)
        self._tasks = [
            asyncio.create_task(self._read(ws, proto, n)),
            asyncio.create_task(self._keepalive(ws, n)),
        ]
        await self._send(ws, n, proto.login_frame())
        await self._until({"logged_in"})
        await self._send(ws, n, proto.subscribe_frame())
        await self._until({"subscribed"})

    async def _until(self, states: set[str]) -> None:
        async def reached() -> None:
            async with self._frames:
                await self._frames.wait_for(lambda: self._state in states | {"failed", "closed"})

        try:
            await asyncio.wait_for(reached(), self._ready_timeout_s)
        except TimeoutError:
            raise ProbeFailed(
                f"no answer to {self._state} within {self._ready_timeout_s} s"
            ) from None
        if self._state not in states:
            raise ProbeFailed(self._failure or f"connection {self._state}")

    async def _send(self, ws: ClientConnection, n: int, text: str) -> None:
        self._rec.ws_out(n, text)  # the login frame is recorded redacted
        self._last_tx = time.monotonic()
        await ws.send(text)

    async def _read(self, ws: ClientConnection, proto: PrivateChannelProtocol, n: int) -> None:
        try:
            async for frame in ws:
                text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
                self._rec.ws_in(n, text)
                for event in proto.receive(text):
                    if isinstance(event, LoginOk):
                        self._state = "logged_in"
                    elif isinstance(event, Subscribed):
                        self._state = "subscribed"
                    elif isinstance(event, LoginFailed | WsSubscribeFailed):
                        self._state = "failed"
                        self._failure = f"refused: {event.code} {event.msg[:200]}"
                await self._notify()
            code, reason = ws.close_code, ws.close_reason
            had_frame = ws.protocol.close_rcvd is not None
        except ConnectionClosed as exc:
            had_frame = exc.rcvd is not None
            # RFC 6455 7.1.5: closed without a close frame is reported as 1006 (ISS-TG90)
            code = exc.rcvd.code if exc.rcvd else 1006
            reason = exc.rcvd.reason if exc.rcvd else ""
        self._rec.add("ws_closed", conn=n, code=code, reason=reason, close_frame=had_frame)
        if self._state != "failed":
            self._state = "closed"
        await self._notify()

    async def _notify(self) -> None:
        async with self._frames:
            self._frames.notify_all()

    async def _keepalive(self, ws: ClientConnection, n: int) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.pinging and time.monotonic() - self._last_tx >= self._ping_after_s:
                try:
                    await self._send(ws, n, "ping")
                except ConnectionClosed:
                    return

    async def wait_push(self, inst_id: str, pos_side: str, after_ms: int, timeout_s: float) -> bool:
        def seen() -> bool:
            return find_event_push(self._rec.records, inst_id, pos_side, after_ms) is not None

        async def arrived() -> None:
            async with self._frames:
                await self._frames.wait_for(lambda: seen() or self._state == "closed")

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived(), timeout_s)
        return seen()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        self._ws = None


# -- the venue the script talks to -----------------------------------------------------------


class SocketVenue:
    """:class:`reactor.probe.script.Venue` over real sockets."""

    def __init__(self, rest: ProbeRestClient, link: WsLink, recorder: Recorder) -> None:
        self._rest = rest
        self._link = link
        self._rec = recorder
        self._ct_vals: dict[str, Decimal] | None = None

    def now_ms(self) -> int:
        return self._rec.now_ms()

    def step(self, name: str, phase: str, **fields: Any) -> None:
        self._rec.step(name, phase, **fields)

    async def positions(self) -> list[dict[str, Any]] | Unavailable:
        try:
            return await self._rest.get_positions("SWAP")
        except OkxError as exc:
            return Unavailable(exc.code, exc.msg)

    async def position(self, inst_id: str, pos_side: str) -> dict[str, Any] | None:
        for raw in await self._rest.get_positions("SWAP", inst_id):
            if raw.get("posSide") == pos_side and raw.get("mgnMode") == "isolated":
                return raw
        return None

    async def ct_val(self, inst_id: str) -> Decimal | None:
        if self._ct_vals is None:
            self._ct_vals = {}
            for raw in await self._rest.get_instruments("SWAP"):
                with contextlib.suppress(PayloadError):
                    inst = parse_instrument(raw)
                    self._ct_vals[inst.inst_id] = inst.ct_val
        return self._ct_vals.get(inst_id)

    async def margin_balance(
        self, inst_id: str, pos_side: str, action: str, amt: Decimal
    ) -> CallResult:
        try:
            await self._rest.margin_balance(inst_id, pos_side, action, amt)
        except OkxError as exc:
            return CallResult(exc.code, exc.msg)
        except AmbiguousOutcome as exc:
            return CallResult(AMBIGUOUS, exc.reason)
        except RequestNotSent as exc:
            return CallResult(NOT_SENT, str(exc))
        return CallResult("0")

    async def _answer(self, call: Any) -> list[dict[str, Any]] | Unavailable:
        try:
            data: list[dict[str, Any]] = await call
        except OkxError as exc:
            return Unavailable(exc.code, exc.msg)
        except (AmbiguousOutcome, RequestNotSent) as exc:
            return Unavailable("no_answer", str(exc))
        return data

    async def bills(
        self, inst_id: str, sub_type: str, begin_ms: int
    ) -> list[dict[str, Any]] | Unavailable:
        # The reactor's own bills read (type 6, isolated SWAP, limit 100): the same request.
        return await self._answer(
            self._rest.get_bills(inst_id, sub_type=sub_type, begin_ms=begin_ms)
        )

    async def funding_bills(
        self, inst_id: str, begin_ms: int
    ) -> list[dict[str, Any]] | Unavailable:
        # type 8 = funding fee (DOC-TA); every subType, newest first
        return await self._answer(
            self._rest.get_bills(inst_id, bill_type=FUNDING_BILL_TYPE, begin_ms=begin_ms)
        )

    async def adjust_leverage_info(
        self, inst_id: str, pos_side: str, lever: str
    ) -> list[dict[str, Any]] | Unavailable:
        return await self._answer(self._rest.get_adjust_leverage_info(inst_id, pos_side, lever))

    async def observe(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def resume(self) -> None:
        self._link.pinging = True
        if not self._link.open:
            await self._link.connect()

    async def wait_push(self, inst_id: str, pos_side: str, after_ms: int, timeout_s: float) -> bool:
        return await self._link.wait_push(inst_id, pos_side, after_ms, timeout_s)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# -- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeRun:
    outcome: ScriptOutcome | None
    facts: dict[str, Any]
    failure: str | None

    @property
    def exit_code(self) -> int:
        if self.failure is not None or self.outcome is None:
            return 1
        return 0 if self.outcome.clean and self.outcome.error is None else 1


def check_out_dir(out: Path) -> None:
    """``--out`` must be a new or empty folder: captures of two runs must not mix."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out: {out} exists and is not an empty folder")


def probe_account(cfg: Config, name: str) -> AccountConfig:
    for acc in cfg.accounts:
        if acc.name == name:
            if acc.role != "sub":
                raise ConfigError(f"--account: {name} is the main account; the probe moves margin")
            return acc
    raise ConfigError(f"--account: {name!r} is not an account in the config")


async def run_probe(
    cfg: Config,
    account: str,
    out: Path,
    opts: ProbeOptions,
    *,
    stdout: TextIO | None = None,
) -> ProbeRun:
    """Run the steps on ``account`` and write ``out``; ConfigError before anything is sent."""
    acc = probe_account(cfg, account)
    check_out_dir(out)
    sim: Any = None
    if cfg.venue.embedded:
        from reactor.service.accounts import embedded_credentials
        from reactor.sim.scenario import load_scenario
        from reactor.sim.server import Simulator

        assert cfg.venue.scenario is not None
        scenario = load_scenario(cfg.venue.scenario)
        one = cfg.model_copy(update={"accounts": [acc]})
        creds = embedded_credentials(one, scenario)[acc.name]
        # No simulated desk: its fills would move the margin the probe's undo accounts for.
        sim = Simulator(scenario, price_walk=cfg.venue.price_walk, desk=False)
        await sim.start("127.0.0.1", 0)
        rest_url, ws_url = sim.url, sim.ws_url
    else:
        creds = load_credentials(cfg, acc)
        rest_url, ws_url = cfg.venue.urls()
    out.mkdir(parents=True, exist_ok=True)
    sink = FileSink(out / FRAMES_FILE)
    recorder = Recorder(Redactor([creds.api_key, creds.secret_key, creds.passphrase]), sink=sink)
    simulated = cfg.venue.simulated_trading
    rest = ProbeRestClient(
        rest_url,
        creds,
        simulated=simulated,
        timeout_s=cfg.timing.request_timeout_s,
        transport=RecordingTransport(recorder),
        account=acc.name,
    )
    link = WsLink(
        ws_url,
        acc.name,
        creds,
        recorder,
        headers={"x-simulated-trading": "1"} if simulated else None,
        clock=rest.clock.now,
    )
    started = datetime.now(UTC).isoformat(timespec="seconds")
    outcome: ScriptOutcome | None = None
    failure: str | None = None
    interrupted = False
    try:
        try:
            await rest.sync_clock()
        except (OkxError, AmbiguousOutcome, RequestNotSent) as exc:
            raise ProbeFailed(f"cannot read {rest_url} public/time: {exc}") from None
        await link.connect()
        venue = SocketVenue(rest, link, recorder)
        outcome = await ProbeScript(venue, opts, cfg.policy_config(), acc.name).run()
    except ProbeFailed as exc:
        failure = str(exc)
        recorder.step("failed", "end", error=failure)
    except asyncio.CancelledError:  # Ctrl-C: the script has moved the margin back already
        interrupted = True
        failure = "interrupted"
        recorder.step("failed", "end", error=failure)
    finally:
        await link.close()
        await rest.aclose()
        sink.close()
        if sim is not None:
            await sim.stop()
    facts = extract_facts(recorder.records)
    facts["meta"] = {
        "venue": cfg.venue.kind,
        "rest_url": rest_url,
        "ws_url": ws_url,
        "account": acc.name,
        "started": started,
        "simulated_trading": simulated,  # x-simulated-trading: 1 sent
        "window_s": opts.window_s,
        "clock_offset_ms": round(rest.clock.offset_s * 1000),  # venue clock - ours
        "failure": failure,
    }
    _write_outputs(out, recorder, facts)
    stream = stdout or sys.stdout
    for line in summary_lines(facts):
        print(line, file=stream)
    if interrupted:  # the files are written; the cancellation goes on
        raise asyncio.CancelledError
    return ProbeRun(outcome, facts, failure)


def _write_outputs(out: Path, recorder: Recorder, facts: dict[str, Any]) -> None:
    redact = recorder.redactor
    facts = redact.scrub(facts)
    (out / FACTS_FILE).write_text(json.dumps(facts, indent=2, default=str) + "\n")
    meta = facts["meta"]
    source = {
        "source": "reactor probe",
        "venue": meta["venue"],
        "rest_url": meta["rest_url"],
        "ws_url": meta["ws_url"],
        "captured": meta["started"],
        "files": "frames.jsonl (every frame and answer), facts.json, one <what>.json per kind",
    }
    (out / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
    payloads = fixture_payloads(recorder.records)
    for name, payload in payloads.items():
        (out / name).write_text(json.dumps(redact.scrub(payload), indent=2) + "\n")
    where = f"`reactor probe` against {meta['venue']} ({meta['rest_url']}), {meta['started']}"
    (out / README_FILE).write_text(readme(list(payloads), where))
