"""The simulator over TLS: https and wss on one port, trusted through the CA file it writes.

python-okx 0.4.4's ``WsPrivateAsync`` always builds an SSL context
(``okx/websocket/WebSocketFactory.py``: ``ssl.create_default_context()`` plus certifi), so it
only reaches the simulator when the simulator speaks TLS. ``SSL_CERT_FILE`` (honoured by
``ssl.create_default_context()`` and by httpx) makes it trust the simulator's CA; the SDK
itself is used unchanged.
"""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import okx.Trade as Trade
import pytest
import websockets
from okx.websocket.WsPrivateAsync import WsPrivateAsync
from okx.websocket.WsUtils import initLoginParams

from reactor.sim.tls import TlsError, make_tls, remove_tls
from tests.conftest import SCENARIOS, SimFactory
from tests.paths import FIXTURES
from tests.sim.helpers import KEY, PASSPHRASE, SECRET

CRO = "CRO-USDT-SWAP"

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


def test_certificates_verify_for_loopback_names(tmp_path: Path) -> None:
    material = make_tls(tmp_path / "tls")
    assert not (tmp_path / "tls" / "ca.key").exists()  # nothing more can be signed
    assert material.key_file.stat().st_mode & 0o077 == 0
    ctx = material.client_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    # The chain is checked for real in the socket tests below; here: a CA, one cert it signed.
    assert material.ca_file.read_text().count("BEGIN CERTIFICATE") == 1
    assert material.cert_file.read_text().count("BEGIN CERTIFICATE") == 1
    remove_tls(material)
    assert not (tmp_path / "tls").exists()


async def test_https_and_wss_on_one_port(sim_factory: SimFactory) -> None:
    sim = await sim_factory(SCENARIOS / "cro.yaml", price_walk=False, tls=True)
    assert sim.url.startswith("https://127.0.0.1:")
    assert sim.ws_url == "wss" + sim.url[5:] + "/ws/v5/private"
    assert sim.ca_file is not None and sim.ca_file.is_file()
    ctx = ssl.create_default_context(cafile=str(sim.ca_file))
    async with httpx.AsyncClient(base_url=sim.url, verify=ctx) as client:
        r = await client.get("/api/v5/public/time")
        assert r.status_code == 200 and r.json()["code"] == "0"
    # Without the CA the certificate is not trusted: it really is TLS with our own CA.
    async with httpx.AsyncClient(base_url=sim.url) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/api/v5/public/time")
    async with websockets.connect(sim.ws_url, ssl=ctx) as ws:
        await ws.send(initLoginParams(False, KEY, PASSPHRASE, SECRET))
        login = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert (login["event"], login["code"]) == ("login", "0")
    ca_file = sim.ca_file
    await sim.stop()
    assert not ca_file.exists()  # a fresh CA per run, removed with the simulator


async def test_python_okx_ws_client_unchanged_receives_orders_push(
    sim_factory: SimFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = await sim_factory(SCENARIOS / "cro.yaml", price_walk=False, tls=True)
    assert sim.ca_file is not None
    # The one thing a python-okx user does: trust the simulator's CA (read by OpenSSL's
    # default verify paths in create_default_context(), and by httpx at client creation).
    monkeypatch.setenv("SSL_CERT_FILE", str(sim.ca_file))
    frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    client = WsPrivateAsync(apiKey=KEY, passphrase=PASSPHRASE, secretKey=SECRET, url=sim.ws_url)
    await client.start()
    assert client.websocket is not None, "python-okx could not connect over wss"
    try:
        args = [
            {"channel": "orders", "instType": "SWAP", "instId": CRO},
            {"channel": "positions", "instType": "SWAP"},
        ]
        # subscribe() logs in, waits 5 s (python-okx's own pause), then subscribes.
        await client.subscribe(args, lambda text: frames.put_nowait(json.loads(text)))
        seen = await _until(frames, lambda m: m.get("event") == "login")
        assert seen["code"] == "0"
        for channel in ("orders", "positions"):
            await _until(
                frames, lambda m, c=channel: m.get("event") == "subscribe" and _channel(m) == c
            )

        trade = Trade.TradeAPI(KEY, SECRET, PASSPHRASE, False, "1", domain=sim.url, debug=False)
        res = await asyncio.to_thread(
            trade.place_order,
            CRO,
            "isolated",
            "buy",
            "market",
            "10",
            clOrdId="tls1",
            tag="maint",
            posSide="long",
        )
        assert res["code"] == "0", res
        ord_id = res["data"][0]["ordId"]

        push = await _until(frames, lambda m: _channel(m) == "orders" and "data" in m)
        [order] = push["data"]
        real = json.loads((FIXTURES / "ws_orders_nt.json").read_text())["data"][0]
        assert set(order) == set(real)  # OKX's field set (a captured SWAP market fill)
        assert (order["ordId"], order["clOrdId"], order["tag"]) == (ord_id, "tls1", "maint")
        assert (order["state"], order["fillSz"], order["accFillSz"]) == ("filled", "10", "10")
        assert Decimal(order["fillPx"]) == Decimal("0.095") and Decimal(order["fee"]) < 0
        event = await _until(
            frames,
            lambda m: _channel(m) == "positions" and m.get("eventType") == "event_update",
        )
        [pos] = event["data"]
        assert (pos["posSide"], pos["pos"], pos["tradeId"]) == ("long", "118", order["tradeId"])
    finally:
        await client.stop()


def test_cli_tls_names_the_ca_file_and_removes_it() -> None:
    demo = str(SCENARIOS / "demo.yaml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "reactor.sim", "--scenario", demo, "--tls", "--no-desk"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "sim.ready" and ready["url"].startswith("https://127.0.0.1:")
        assert ready["ws_url"].startswith("wss://127.0.0.1:")
        ca_file = Path(ready["ca_file"])
        ctx = ssl.create_default_context(cafile=str(ca_file))
        state = httpx.get(ready["url"] + "/sim/state", verify=ctx, timeout=5).json()
        assert len(state["accounts"]) == 5
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert not ca_file.exists()
        assert proc.stderr is not None
        started = next(line for line in proc.stderr.read().splitlines() if "sim.started" in line)
        assert json.loads(started)["desk"] is False  # --no-desk
    finally:
        proc.kill()
        proc.communicate()


def _channel(msg: dict[str, Any]) -> str | None:
    arg = msg.get("arg")
    return arg.get("channel") if isinstance(arg, dict) else None


async def _until(queue: asyncio.Queue[dict[str, Any]], pred: Any) -> dict[str, Any]:
    while True:
        msg = await asyncio.wait_for(queue.get(), 15)
        if pred(msg):
            return msg


def test_no_openssl_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no openssl on PATH
    with pytest.raises(TlsError, match="openssl command"):
        make_tls(tmp_path / "tls")
