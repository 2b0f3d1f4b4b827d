"""The OKX client layer against the simulator over real sockets (REST and private WS)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
import structlog

from reactor.okx.credentials import Credentials
from reactor.okx.endpoints import MARGIN_BALANCE, POSITIONS
from reactor.okx.errors import AmbiguousOutcome, ErrorClass, OkxError, RequestNotSent
from reactor.okx.models import Position
from reactor.okx.pacing import ConnectPacer
from reactor.okx.rest import OkxRestClient
from reactor.okx.ws import PrivateSession
from reactor.sim.server import Simulator

CRO = "CRO-USDT-SWAP"
SCENARIO: dict[str, Any] = {
    "instruments": [{"instId": CRO, "ctVal": "10", "markPx": "0.0950", "mmrRate": "0.004"}],
    "accounts": [
        {
            "name": "A",
            "apiKey": "key-a",
            "secretKey": "secret-a",
            "passphrase": "pass-a",
            "balance": "1000",
            "positions": [
                {
                    "instId": CRO,
                    "posSide": "long",
                    "pos": "108",
                    "avgPx": "0.0905",
                    "lever": "10",
                    "margin": "20.29",
                },
            ],
        },
        {
            "name": "B",
            "apiKey": "key-b",
            "secretKey": "secret-b",
            "passphrase": "pass-b",
            "balance": "500",
            "positions": [],
        },
    ],
}
CREDS_A = Credentials("key-a", "secret-a", "pass-a")
CREDS_B = Credentials("key-b", "secret-b", "pass-b")


@pytest.fixture
async def sim(sim_factory: Callable[..., Any]) -> Simulator:
    sim: Simulator = await sim_factory(SCENARIO, price_walk=False)
    return sim


@pytest.fixture
async def rest_a(sim: Simulator) -> AsyncIterator[OkxRestClient]:
    async with OkxRestClient(sim.url, CREDS_A, simulated=True, account="A") as client:
        yield client


async def admin(sim: Simulator, method: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(base_url=sim.url) as c:
        r = await c.request(method, path, json=body)
        r.raise_for_status()
        return r.json()


async def sim_position(sim: Simulator, account: str) -> dict[str, str]:
    state = await admin(sim, "GET", "/sim/state")
    (acct,) = [a for a in state["accounts"] if a["name"] == account]
    (pos,) = acct["positions"]
    return dict(pos)


async def eventually(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.pages: list[int | None] = []

    def on_connected(self, account: str) -> None:
        self.calls.append(("connected", account))

    def on_snapshot(
        self, account: str, positions: list[Position], *, last_page: bool, cur_page: int | None
    ) -> None:
        self.calls.append(("snapshot", (positions, last_page)))
        self.pages.append(cur_page)

    def on_update(self, account: str, positions: list[Position]) -> None:
        self.calls.append(("update", positions))

    def on_disconnected(self, account: str, reason: str) -> None:
        self.calls.append(("disconnected", reason))

    def on_stopped(self, account: str, reason: str) -> None:
        self.calls.append(("stopped", reason))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.calls]

    def count(self, kind: str) -> int:
        return self.kinds().count(kind)

    def connections_with_snapshot(self) -> int:
        """Connections that delivered their subscribe snapshot. Counting snapshot calls would
        race the regular snapshots OKX also sends (every ~5 s by default, DOC-POS)."""
        kinds, n = self.kinds(), 0
        for i, kind in enumerate(kinds):
            if kind == "connected":
                rest = kinds[i + 1 :]
                upto = rest.index("connected") if "connected" in rest else len(rest)
                n += "snapshot" in rest[:upto]
        return n

    def last(self, kind: str) -> Any:
        return [v for k, v in self.calls if k == kind][-1]


async def add_margin(sim: Simulator, amt: str) -> None:
    """A position event through the real REST path (mark moves push nothing on OKX)."""
    async with OkxRestClient(sim.url, CREDS_A, simulated=True, account="A") as c:
        await c.margin_balance(CRO, "long", "add", Decimal(amt))


def session(sim: Simulator, handler: Recorder, creds: Credentials = CREDS_A, **kw: Any) -> Any:
    kw.setdefault("backoff_initial_s", 0.05)
    kw.setdefault("backoff_max_s", 0.2)
    name = "A" if creds.api_key == "key-a" else "B"
    return PrivateSession(name, sim.ws_url, creds, handler, pacer=ConnectPacer(), **kw)


# -- REST ---------------------------------------------------------------------------------


async def test_signed_calls_succeed(sim: Simulator, rest_a: OkxRestClient) -> None:
    (pos,) = await rest_a.get_positions()
    assert (pos["instId"], pos["posSide"], pos["margin"]) == (CRO, "long", "20.29")
    assert await rest_a.get_positions(inst_id=CRO)
    balance = await rest_a.get_balance()
    assert any(d["ccy"] == "USDT" for d in balance[0]["details"])
    instruments = await rest_a.get_instruments()
    assert {i["instId"]: i["ctVal"] for i in instruments}[CRO] == "10"
    assert await rest_a.server_time_ms() > 1_600_000_000_000
    offset = await rest_a.sync_clock()
    assert abs(offset) < 5
    out = await rest_a.margin_balance(CRO, "long", "reduce", Decimal("5.29"))
    assert out["instId"] == CRO and out["type"] == "reduce"
    assert Decimal((await sim_position(sim, "A"))["margin"]) == Decimal("15")
    reqs = await admin(sim, "GET", "/sim/requests")
    assert all(r["code"] == "0" and r["simulated"] for r in reqs)


async def test_rest_goes_direct_whatever_proxy_the_environment_names(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The REST client connects directly, as the WebSocket sessions do (``proxy=None``): a
    proxy in the environment (here one that refuses) is not used."""
    with monkeypatch.context() as env:  # only while the client runs: admin() uses httpx's
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            env.setenv(name, "http://127.0.0.1:9")
        async with OkxRestClient(sim.url, CREDS_A, simulated=True, account="A") as client:
            (pos,) = await client.get_positions()
            assert pos["instId"] == CRO
            await client.margin_balance(CRO, "long", "reduce", Decimal("0.29"))
            await client.margin_balance(CRO, "long", "reduce", Decimal("0.5"))  # its URL again
    reqs = await admin(sim, "GET", "/sim/requests")
    assert [r["code"] for r in reqs if r["path"].endswith("margin-balance")] == ["0", "0"]
    assert Decimal((await sim_position(sim, "A"))["margin"]) == Decimal("19.5")


async def test_over_large_reduce_raises_59301(sim: Simulator, rest_a: OkxRestClient) -> None:
    with pytest.raises(OkxError) as info:
        await rest_a.margin_balance(CRO, "long", "reduce", Decimal("20"))
    assert info.value.code == "59301"
    assert info.value.error_class is ErrorClass.REDUCE_TOO_LARGE
    assert (await sim_position(sim, "A"))["margin"] == "20.29"


async def test_wrong_passphrase_rest(sim: Simulator) -> None:
    async with OkxRestClient(
        sim.url, Credentials("key-a", "secret-a", "nope"), simulated=True
    ) as c:
        with pytest.raises(OkxError) as info:
            await c.get_positions()
    assert info.value.code == "50105" and info.value.error_class is ErrorClass.AUTH


async def test_rate_limiter_keeps_margin_calls_under_the_limit(
    sim: Simulator, rest_a: OkxRestClient
) -> None:
    calls = [rest_a.margin_balance(CRO, "long", "add", Decimal("0.01")) for _ in range(25)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    reqs = await admin(sim, "GET", "/sim/requests")
    margin = [r for r in reqs if r["path"] == MARGIN_BALANCE]
    assert len(margin) == 25
    assert {r["code"] for r in margin} == {"0"}
    assert Decimal((await sim_position(sim, "A"))["margin"]) == Decimal("20.54")


async def test_get_retries_through_50011_but_margin_call_does_not(
    sim: Simulator, rest_a: OkxRestClient
) -> None:
    fault = {"kind": "rest_error", "account": "A", "path": POSITIONS, "code": "50011", "count": 2}
    await admin(sim, "POST", "/sim/faults", fault)
    assert len(await rest_a.get_positions()) == 1
    fault = dict(fault, path=MARGIN_BALANCE, count=1)
    await admin(sim, "POST", "/sim/faults", fault)
    with pytest.raises(OkxError) as info:
        await rest_a.margin_balance(CRO, "long", "add", Decimal("1"))
    assert info.value.error_class is ErrorClass.RATE_LIMIT
    reqs = await admin(sim, "GET", "/sim/requests")
    assert [r["code"] for r in reqs] == ["50011", "50011", "0", "50011"]


@pytest.mark.parametrize("delay_s", [1.0, None])
async def test_late_or_missing_answer_is_ambiguous_but_applied(
    sim: Simulator, delay_s: float | None
) -> None:
    fault = {"kind": "rest_delay", "account": "A", "path": MARGIN_BALANCE, "delay_s": delay_s}
    await admin(sim, "POST", "/sim/faults", fault)
    async with OkxRestClient(sim.url, CREDS_A, simulated=True, timeout_s=0.3, account="A") as c:
        with pytest.raises(AmbiguousOutcome):
            await c.margin_balance(CRO, "long", "add", Decimal("1"))
    # The exchange applied it: exactly why the caller must re-read, never resend blindly.
    assert Decimal((await sim_position(sim, "A"))["margin"]) == Decimal("21.29")


async def test_connection_refused_is_request_not_sent() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with OkxRestClient(f"http://127.0.0.1:{port}", CREDS_A, get_retries=0) as c:
        with pytest.raises(RequestNotSent):
            await c.margin_balance(CRO, "long", "add", Decimal("1"))


# -- private WebSocket ----------------------------------------------------------------------


async def test_session_snapshot_update_drop_and_resnapshot(sim: Simulator) -> None:
    rec = Recorder()
    s = session(sim, rec)
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(s.run())
        await eventually(lambda: rec.connections_with_snapshot() == 1)
        positions, last_page = rec.last("snapshot")
        assert last_page is True and positions[0].margin == Decimal("20.29")
        assert s.connected and s.logged_in
        assert rec.kinds()[:2] == ["connected", "snapshot"]

        # A mark move alone pushes nothing (DOC-POS); the margin call is the event.
        await admin(sim, "POST", "/sim/mark-price", {"instId": CRO, "markPx": "0.0960"})
        await add_margin(sim, "1")
        await eventually(lambda: rec.count("update") >= 1)
        assert rec.count("update") == 1
        [p] = rec.last("update")
        assert (p.margin, p.mark_px) == (Decimal("21.29"), Decimal("0.0960"))

        # The position is closed while we are disconnected: the next snapshot must show it.
        await admin(sim, "POST", "/sim/faults", {"kind": "drop_ws", "account": "A"})
        await eventually(lambda: rec.count("disconnected") == 1)
        await eventually(lambda: rec.connections_with_snapshot() == 2)
        assert s.connect_count == 2
        await s.stop()
        await asyncio.wait_for(task, 5)
    events = [e["event"] for e in logs]
    assert events.count("ws.connected") == 2
    assert "ws.disconnected" in events and "ws.reconnect" in events
    reconnect = next(e for e in logs if e["event"] == "ws.reconnect")
    assert reconnect["attempt"] == 1 and reconnect["delay_s"] <= 0.2
    assert not s.connected
    assert_no_secrets(logs)


async def test_wrong_passphrase_stops_session_without_retries(sim: Simulator) -> None:
    rec = Recorder()
    s = session(sim, rec, Credentials("key-a", "secret-a", "wrong"))
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(s.run(), 5)  # returns by itself: no retry loop
    assert rec.kinds() == ["stopped"]
    assert "60024" in rec.last("stopped") and s.stopped_reason is not None
    events = [e["event"] for e in logs]
    assert events.count("ws.connecting") == 1
    assert "ws.reconnect" not in events
    failed = next(e for e in logs if e["event"] == "ws.login.failed")
    assert failed["log_level"] == "error" and failed["code"] == "60024"
    assert any(e["event"] == "account.stopped" for e in logs)
    assert_no_secrets(logs, "wrong")


async def test_one_bad_account_does_not_stop_the_others(sim: Simulator) -> None:
    pacer = ConnectPacer()
    good, bad = Recorder(), Recorder()
    sessions = [
        PrivateSession("A", sim.ws_url, CREDS_A, good, pacer=pacer),
        PrivateSession("B", sim.ws_url, Credentials("key-b", "bad", "pass-b"), bad, pacer=pacer),
    ]
    tasks = [asyncio.create_task(x.run()) for x in sessions]
    await eventually(lambda: good.connections_with_snapshot() == 1 and bad.count("stopped") == 1)
    assert "60007" in bad.last("stopped")
    # on_stopped comes before the session closes its socket: B's run() ends by itself soon
    # after (no stop() for it), A's goes on.
    await asyncio.wait_for(asyncio.shield(tasks[1]), 5)
    assert not tasks[0].done() and sessions[0].connected
    await sessions[0].stop()
    await asyncio.wait_for(tasks[0], 5)


async def test_garbage_frames_are_logged_and_skipped(sim: Simulator) -> None:
    rec = Recorder()
    s = session(sim, rec)
    blank = {
        "instId": CRO,
        "posSide": "long",
        "pos": "108",
        "mgnMode": "isolated",
        "markPx": "",
        "margin": "",
        "upl": "",
        "instType": "SWAP",
    }
    frames = [
        "this is not json" + "x" * 1000,
        '{"arg":{"channel":"orders"},"data":[]}',
        json.dumps({"arg": {"channel": "positions", "instType": "SWAP"},
                    "eventType": "event_update", "data": [{"pos": "bad"}, blank]}),
    ]  # fmt: skip
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(s.run())
        await eventually(lambda: rec.connections_with_snapshot() == 1)
        for frame in frames:
            fault = {"kind": "raw_frame", "account": "A", "frame": frame}
            await admin(sim, "POST", "/sim/faults", fault)
        await eventually(lambda: rec.count("update") == 1)
        (pos,) = rec.last("update")
        assert pos.margin is None and pos.mark_px is None
        await s.stop()
        await asyncio.wait_for(task, 5)
    invalid = [e for e in logs if e["event"] == "ws.frame.invalid"]
    assert [e["reason"].split(":")[0] for e in invalid] == ["not JSON", "unknown channel", "pos"]
    assert all(len(e["preview"]) <= 201 for e in invalid)
    assert s.connect_count == 1 and rec.count("disconnected") == 1


async def test_notice_64008_reconnects_at_once(sim: Simulator) -> None:
    rec = Recorder()
    s = session(sim, rec, backoff_initial_s=10, backoff_max_s=10)
    task = asyncio.create_task(s.run())
    await eventually(lambda: rec.connections_with_snapshot() == 1)
    with structlog.testing.capture_logs() as logs:
        await admin(sim, "POST", "/sim/faults", {"kind": "ws_notice", "account": "A"})
        await eventually(lambda: rec.connections_with_snapshot() == 2)
    await s.stop()
    await asyncio.wait_for(task, 5)
    notice = next(e for e in logs if e["event"] == "ws.notice")
    assert notice["code"] == "64008"
    reconnect = next(e for e in logs if e["event"] == "ws.reconnect")
    assert reconnect["delay_s"] == 0


async def test_silent_connection_is_detected_by_missing_pong(sim: Simulator) -> None:
    rec = Recorder()
    s = session(sim, rec, ping_interval_s=0.2, pong_timeout_s=0.2)
    task = asyncio.create_task(s.run())
    await eventually(lambda: rec.connections_with_snapshot() == 1)
    with structlog.testing.capture_logs() as logs:
        fault = {"kind": "ws_silent", "account": "A", "seconds": 0.6}
        await admin(sim, "POST", "/sim/faults", fault)
        await eventually(lambda: rec.count("disconnected") >= 1)
        await eventually(lambda: rec.connections_with_snapshot() == 2)
    await s.stop()
    await asyncio.wait_for(task, 5)
    events = [e["event"] for e in logs]
    assert "ws.pong.timeout" in events
    assert rec.calls[-1][0] == "disconnected"


async def test_stop_while_backing_off_returns_promptly(sim: Simulator) -> None:
    rec = Recorder()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = PrivateSession(
        "A", f"ws://127.0.0.1:{port}/ws/v5/private", CREDS_A, rec, pacer=ConnectPacer(),
        backoff_initial_s=30, backoff_max_s=30,
    )  # fmt: skip
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(s.run())
        await eventually(lambda: any(e["event"] == "ws.reconnect" for e in logs))
        await s.stop()
        await asyncio.wait_for(task, 2)
    assert rec.calls == []


def assert_no_secrets(logs: list[dict[str, Any]], *extra: str) -> None:
    text = json.dumps(logs, default=str)
    for secret in ("secret-a", "pass-a", *extra):
        assert secret not in text


async def test_expired_login_timestamp_is_retried_with_backoff_and_never_stops(
    sim: Simulator,
) -> None:
    rec = Recorder()
    s = session(sim, rec, clock=lambda: time.time() - 120)  # no way to re-sync: keeps trying
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(s.run())
        await eventually(lambda: sum(e["event"] == "ws.login.failed" for e in logs) >= 3)
        await s.stop()
        await asyncio.wait_for(task, 5)
    failed = [e for e in logs if e["event"] == "ws.login.failed"]
    assert all((e["code"], e["retry"]) == ("60006", True) for e in failed)
    assert "stopped" not in rec.kinds() and s.stopped_reason is None


async def test_a_second_clock_step_resyncs_again_and_logs_in(sim: Simulator) -> None:
    step = {"s": -120.0}

    def stepping() -> float:
        return time.time() + step["s"]

    rec = Recorder()
    async with OkxRestClient(sim.url, CREDS_A, clock=stepping) as rest:
        s = session(sim, rec, clock=rest.clock, resync_clock=rest.sync_clock)
        task = asyncio.create_task(s.run())
        await eventually(lambda: rec.connections_with_snapshot() == 1)
        step["s"] = 400.0  # the host clock steps again, the other way
        await admin(sim, "POST", "/sim/faults", {"kind": "drop_ws", "account": "A"})
        await eventually(lambda: rec.connections_with_snapshot() == 2)  # before: it stopped
        await s.stop()
        await asyncio.wait_for(task, 5)
    assert "stopped" not in rec.kinds() and s.connect_count == 2


class Buggy(Recorder):
    def on_update(self, account: str, positions: list[Position]) -> None:
        super().on_update(account, positions)
        raise RuntimeError("handler bug")


async def test_handler_bug_does_not_drop_the_connection(sim: Simulator) -> None:
    rec = Buggy()
    s = session(sim, rec)
    task = asyncio.create_task(s.run())
    await eventually(lambda: rec.connections_with_snapshot() == 1)
    with structlog.testing.capture_logs() as logs:
        for n in (1, 2):  # one push each: the second call starts after the first push came
            await add_margin(sim, "1")
            await eventually(lambda n=n: rec.count("update") == n)
    assert s.connected and s.connect_count == 1
    assert [e["callback"] for e in logs if e["event"] == "ws.handler.error"] == ["on_update"] * 2
    await s.stop()
    await asyncio.wait_for(task, 5)


async def test_expired_login_timestamp_resyncs_clock_and_logs_in(sim: Simulator) -> None:
    def skewed() -> float:
        return time.time() - 120

    rec = Recorder()
    async with OkxRestClient(sim.url, CREDS_A, clock=skewed) as rest:
        s = session(sim, rec, clock=rest.clock, resync_clock=rest.sync_clock)
        task = asyncio.create_task(s.run())
        await eventually(lambda: rec.connections_with_snapshot() == 1)
        await s.stop()
        await asyncio.wait_for(task, 5)
    assert "stopped" not in rec.kinds()


# -- the faithful push model -----------------------------------------------------------------

TWO_POSITIONS: dict[str, Any] = {
    **SCENARIO,
    "accounts": [
        {
            **SCENARIO["accounts"][0],
            "positions": [
                *SCENARIO["accounts"][0]["positions"],
                {
                    "instId": CRO,
                    "posSide": "short",
                    "pos": "10",
                    "avgPx": "0.0905",
                    "lever": "10",
                    "margin": "2",
                },
            ],
        }
    ],
}


async def test_snapshot_without_event_type_makes_the_account_fresh(
    sim_factory: Callable[..., Any],
) -> None:
    """Against the simulator's legacy switch (no eventType/curPage/lastPage, CCXT-21565) the
    first push is the snapshot: the session is ready and does not loop on "not ready"."""
    sim = await sim_factory(SCENARIO, legacy_push_fields=True)
    rec = Recorder()
    s = session(sim, rec, ping_interval_s=0.3, pong_timeout_s=0.3)
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(s.run())
        await eventually(lambda: rec.connections_with_snapshot() == 1)
        positions, last_page = rec.last("snapshot")
        assert last_page is True and positions[0].margin == Decimal("20.29")
        await add_margin(sim, "1")
        await eventually(lambda: rec.count("update") == 1)
        await asyncio.sleep(1.0)  # > ready_by (ping + pong timeout): still the same connection
        await s.stop()
        await asyncio.wait_for(task, 5)
    assert s.connect_count == 1
    assert not [e for e in logs if e["event"] == "ws.reconnect"]


async def test_cur_page_reaches_the_handler(sim_factory: Callable[..., Any]) -> None:
    sim = await sim_factory(TWO_POSITIONS, page_size=1)
    rec = Recorder()
    s = session(sim, rec)
    task = asyncio.create_task(s.run())
    await eventually(lambda: rec.count("snapshot") == 2)
    pages = [v for k, v in rec.calls if k == "snapshot"]
    assert [(len(p), last) for p, last in pages] == [(1, False), (1, True)]
    assert rec.pages[:2] == [1, 2]
    await s.stop()
    await asyncio.wait_for(task, 5)


@pytest.mark.parametrize(("ping_interval_s", "survives"), [(0.2, True), (30.0, False)])
async def test_pinging_when_nothing_was_sent_survives_a_strict_server(
    sim_factory: Callable[..., Any], ping_interval_s: float, survives: bool
) -> None:
    """A server that closes clients that sent nothing for N s (the quiet-close fault) while
    regular snapshots flow: the reactor pings on send-idleness too, so it is never closed. With
    a ping interval above N (the old receive-only rule) the same server drops it."""
    sim = await sim_factory(SCENARIO, time_scale=0.02)  # a snapshot every 100 ms
    fault = {"kind": "ws_quiet_close", "account": "A", "seconds": 0.5}
    await admin(sim, "POST", "/sim/faults", fault)
    rec = Recorder()
    s = session(sim, rec, ping_interval_s=ping_interval_s, pong_timeout_s=1.0)
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(s.run())
        await eventually(lambda: rec.count("snapshot") >= 1)
        await asyncio.sleep(1.5)  # three quiet-close periods
        await s.stop()
        await asyncio.wait_for(task, 5)
    reconnects = [e for e in logs if e["event"] == "ws.reconnect"]
    assert (reconnects == [] and s.connect_count == 1) is survives


@pytest.mark.parametrize(("body", "applied"), [("html", False), ("json", True)])
async def test_gateway_5xx_reaches_the_client_as_an_error(
    sim: Simulator, rest_a: OkxRestClient, body: str, applied: bool
) -> None:
    """docs/spec/okx-fidelity.md §7.9: OKX's gateway answers 5xx with an HTML page or a JSON body
    whose ``code`` is a number. With ``applied`` the backend acted before the gateway gave up (a
    504 is then ambiguous for the caller)."""
    fault = {
        "kind": "rest_gateway",
        "account": "A",
        "path": MARGIN_BALANCE,
        "status": 504,
        "body": body,
        "applied": applied,
    }
    await admin(sim, "POST", "/sim/faults", fault)
    with pytest.raises(OkxError) as info:
        await rest_a.margin_balance(CRO, "long", "add", Decimal("1"))
    assert info.value.code == "504" and info.value.http_status == 504
    margin = Decimal((await sim_position(sim, "A"))["margin"])
    assert margin == (Decimal("21.29") if applied else Decimal("20.29"))
    # A GET behind a 503 answers once the gateway recovers (the client retries GETs).
    fault = {"kind": "rest_gateway", "account": "A", "path": POSITIONS, "status": 503}
    await admin(sim, "POST", "/sim/faults", fault)
    assert len(await rest_a.get_positions()) == 1
