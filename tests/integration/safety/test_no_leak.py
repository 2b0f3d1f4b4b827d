"""No credential (API key, secret key, passphrase, signature) in any output: log lines,
stderr, the journal, the status page, metrics - through every error path we can reach."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import structlog
import yaml
from websockets.asyncio.server import ServerConnection, serve

from reactor import log as logging_setup
from reactor.okx.credentials import Credentials
from reactor.okx.endpoints import MARGIN_BALANCE
from reactor.okx.pacing import ConnectPacer
from reactor.okx.signing import ws_login_sign
from reactor.okx.ws import PrivateSession
from reactor.redaction import redact, redact_text
from tests.engine.harness import LogCapture, SimAdmin, wait_for, write_config
from tests.integration.faults.common import FAST, cro, scenario
from tests.integration.faults.procs import credentials_env, journal, start_reactor, start_sim

W = "Wu666666"
API_KEY = "AK7e4c1f0a-9b2d-4c3e-8f6a-1d2c3b4a5e6f"
SECRET = "SKf00dbabe51c0ffee0ddba11deadbeef"
PASSPHRASE = "PPhrase-Zq8x-Wv"
CREDS = Credentials(API_KEY, SECRET, PASSPHRASE)


def _login_echo(ts: str | None = None) -> tuple[str, str]:
    """OKX's 60012 answer to a login it could not parse: it quotes the request back."""
    ts = ts or str(int(time.time()))
    sign = ws_login_sign(SECRET, ts)
    request = json.dumps(
        {
            "op": "login",
            "args": [{"apiKey": API_KEY, "passphrase": PASSPHRASE, "timestamp": ts, "sign": sign}],
        },
        separators=(",", ":"),
    )
    return f"Illegal request: {request}", sign


def _assert_clean(text: str, *extra: str) -> None:
    for secret in (API_KEY, SECRET, PASSPHRASE, *extra):
        assert secret not in text, f"{secret[:6]}... leaked"
    for part in (API_KEY[:20], PASSPHRASE[:10], SECRET[:16]):  # no prefix of one either
        assert part not in text


# --- the scrubbers --------------------------------------------------------------------------


def test_redact_text_masks_values_and_secret_fields() -> None:
    echo, sign = _login_echo()
    for text in (
        echo,
        json.dumps({"event": "error", "code": "60012", "msg": echo}),  # escaped quotes
        repr({"OK-ACCESS-SIGN": sign, "OK-ACCESS-PASSPHRASE": PASSPHRASE}),
        f"headers ok-access-key={API_KEY}&ok-access-sign={sign}",
        echo[:120],  # cut in the middle of a value, as previews are
    ):
        _assert_clean(redact_text(text), sign)
    assert redact_text("design: 3, signal=ok, margin: 10.5") == "design: 3, signal=ok, margin: 10.5"
    nested = redact({"args": [{"sign": "abc", "apiKey": "x"}], "msg": echo})
    assert nested["args"][0] == {"sign": "***", "apiKey": "***"}
    _assert_clean(json.dumps(nested), sign)


def test_every_log_line_is_scrubbed_including_tracebacks_and_stdlib(capsys) -> None:
    capture = LogCapture()
    logging_setup.configure("debug", "json", stream=capture)  # type: ignore[arg-type]
    log = logging_setup.get_logger("t")
    echo, sign = _login_echo()
    log.warning("ws.error", msg=echo, nested={"frame": echo, "list": [echo]}, sign=sign)
    try:
        raise RuntimeError(f"boom with {PASSPHRASE} and {echo}")
    except RuntimeError:
        log.exception("reactor.task.failed")
    log.info("x", error=httpx.ConnectError(f"refused, headers {{'OK-ACCESS-KEY': '{API_KEY}'}}"))
    logging.getLogger("asyncio").error("Task exception was never retrieved: %s", echo)
    text = "\n".join(capture.lines)
    assert "ws.error" in text and "reactor.task.failed" in text and "RuntimeError" in text
    _assert_clean(text, sign)
    _assert_clean(capsys.readouterr().err, sign)


# --- WebSocket: an echoing login error -------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.stopped: list[str] = []

    def on_connected(self, account: str) -> None: ...
    def on_snapshot(self, account: str, positions: Any, **_: Any) -> None: ...
    def on_update(self, account: str, positions: Any) -> None: ...
    def on_disconnected(self, account: str, reason: str) -> None: ...

    def on_stopped(self, account: str, reason: str) -> None:
        self.stopped.append(reason)


async def _echoing_session(code: str, event: str) -> tuple[list[dict[str, Any]], Recorder, str]:
    """A WebSocket peer answering every login with ``code`` and the request quoted back."""
    signs: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            login = json.loads(frame)["args"][0]
            signs.append(login["sign"])
            msg = "Illegal request: " + str(frame) if code == "60012" else f"Login failed: {frame}"
            await ws.send(json.dumps({"event": event, "code": code, "msg": msg, "connId": "c1"}))

    rec = Recorder()
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        session = PrivateSession(
            "A", f"ws://127.0.0.1:{port}", CREDS, rec, pacer=ConnectPacer(),
            backoff_initial_s=0.01, backoff_max_s=0.02,
        )  # fmt: skip
        with structlog.testing.capture_logs() as logs:
            task = asyncio.create_task(session.run())
            await wait_for(lambda: len(signs) >= 2 or rec.stopped, timeout_s=10)
            await session.stop()
            await asyncio.wait_for(task, 5)
    return logs, rec, signs[0]


async def test_ws_login_error_echo_60012_is_scrubbed() -> None:
    logs, rec, sign = await _echoing_session("60012", "error")
    assert rec.stopped == []  # 60012 is not a credentials problem: retried
    failed = [e for e in logs if e["event"] == "ws.login.failed"]
    assert failed and failed[0]["code"] == "60012" and "Illegal request" in failed[0]["msg"]
    _assert_clean(json.dumps(logs, default=str), sign)  # before: key, passphrase, sign


async def test_ws_auth_failure_with_echo_stops_without_leaking_into_the_reason() -> None:
    logs, rec, sign = await _echoing_session("60009", "login")
    assert len(rec.stopped) == 1
    _assert_clean(rec.stopped[0] + json.dumps(logs, default=str), sign)


# --- the whole process: logs, stderr, journal, status page, metrics ------------------------


def _account() -> dict[str, Any]:
    return {
        "name": W,
        "apiKey": API_KEY,
        "secretKey": SECRET,
        "passphrase": PASSPHRASE,
        "balance": "1000",
        "positions": [cro()],
    }


async def test_no_secret_in_any_output_of_the_process(tmp_path: Path) -> None:
    scen = scenario(_account())
    sim, url = await start_sim(scen, tmp_path)
    admin = SimAdmin(url)
    cfg_path = write_config(tmp_path, url, [{"name": W}], **FAST)
    raw = yaml.safe_load(cfg_path.read_text())
    raw["status"] = {"enabled": True, "host": "127.0.0.1", "port": 0}
    cfg_path.write_text(yaml.safe_dump(raw))
    path = MARGIN_BALANCE
    for code in ("50111", "50113"):  # auth errors on the margin call
        await admin.fault(kind="rest_error", account=W, path=path, code=code)
    reactor = await start_reactor(cfg_path, credentials_env(scen), tmp_path)
    echo, sign = _login_echo()
    try:
        ready = await reactor.wait_event("status.ready")
        await reactor.wait_event("ws.connected")
        # An echoed login inside error frames, as a server error and as an unknown event.
        frames = [
            {"event": "error", "code": "60012", "msg": echo, "connId": "x"},
            {"event": "weird", "code": "60012", "msg": echo},
            {"arg": {"channel": "positions"}, "data": [{"sign": sign, "apiKey": API_KEY}]},
        ]
        for frame in frames:
            await admin.fault(kind="raw_frame", account=W, frame=json.dumps(frame))
        await reactor.wait_event("margin.adjust.failed")
        await asyncio.sleep(1.0)
        async with httpx.AsyncClient(base_url=ready["url"]) as http:
            pages = [(await http.get(p)).text for p in ("/", "/api/status", "/metrics", "/healthz")]
    finally:
        await reactor.terminate()
        await sim.terminate()
        await admin.aclose()
    stdout = "\n".join(json.dumps(line) for line in reactor.lines)
    stderr = (tmp_path / "reactor.err").read_text()
    rows = json.dumps(journal(cfg_path))
    assert "ws.error" in stdout and "ws.frame.invalid" in stdout and "50111" in stdout
    for name, text in (("stdout", stdout), ("stderr", stderr), ("journal", rows)):
        print(f"\nFAULT-METRIC no-leak {name}: {len(text)} bytes checked")
        _assert_clean(text, sign)
    for page in pages:
        _assert_clean(page, sign)


def test_check_config_with_a_broken_credentials_file_quotes_nothing(tmp_path: Path) -> None:
    creds = tmp_path / "creds.yaml"
    creds.write_text(
        f"{W}: {{api_key: {API_KEY}, secret_key: {SECRET}, passphrase: [{PASSPHRASE}\n"
    )
    creds.chmod(0o600)
    cfg = {
        "venue": {"kind": "demo"},
        "credentials_file": str(creds),
        "accounts": [{"name": W}],
        "targets": [{"min_count": 0, "target": "10", "band": ["9.5", "10.5"]}],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    done = subprocess.run(
        [sys.executable, "-m", "reactor", "check-config", "--config", str(tmp_path / "c.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    _assert_clean(done.stdout + done.stderr)
