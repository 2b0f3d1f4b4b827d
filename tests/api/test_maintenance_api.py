"""POST /api/maintenance over a real socket: token, validation, idempotency with fills."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from reactor.api.maintenance import BadRequest, MaintenanceApi, bearer_ok, parse_request
from reactor.store import Ledger, MaintenanceRecord, SqliteLedger

TOKEN = "s3cret-token-for-tests"
T0 = 1_700_000_000_000
BODY = {"account": "sub1", "instId": "CRO-USDT-SWAP", "posSide": "long", "ordId": "777"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Served:
    def __init__(self, ledger: Ledger, url: str, seen: list[MaintenanceRecord]) -> None:
        self.ledger, self.url, self.seen = ledger, url, seen


async def serve(
    ledger: Ledger, token: str | None, seen: list[MaintenanceRecord] | None = None
) -> tuple[web.AppRunner, str]:
    api = MaintenanceApi(
        ledger, token, {"sub1", "sub2"}, on_recorded=None if seen is None else seen.append
    )
    app = web.Application()
    api.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    ledger = SqliteLedger(tmp_path / "reactor.sqlite")
    seen: list[MaintenanceRecord] = []
    runner, url = await serve(ledger, TOKEN, seen)
    try:
        yield Served(ledger, url, seen)
    finally:
        await runner.cleanup()
        ledger.close()


async def post(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as c:
        if isinstance(body, bytes):
            return await c.post("/api/maintenance", content=body, headers=headers or {})
        return await c.post("/api/maintenance", json=body, headers=headers or {})


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
    ],
)
async def test_missing_or_wrong_token_is_refused(served: Served, headers: dict[str, str]) -> None:
    with capture_logs() as logs:
        r = await post(served.url, BODY, headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert TOKEN not in r.text
    assert served.ledger.list_maintenance() == [] and served.seen == []
    [entry] = [e for e in logs if e["event"] == "maintenance.api.refused"]
    assert entry["reason"] == "missing or wrong token" and TOKEN not in str(entry)


async def test_records_once_with_the_ord_id_as_key(served: Served) -> None:
    with capture_logs() as logs:
        r = await post(served.url, {**BODY, "cTime": str(T0)}, AUTH)
    assert r.status_code == 201
    assert r.json()["recorded"] is True and r.json()["key"] == "777"
    [rec] = served.ledger.list_maintenance()
    assert (rec.source, rec.key, rec.ord_id, rec.c_time) == ("api", "777", "777", T0)
    assert served.seen == [rec]
    assert served.ledger.count("sub1", "CRO-USDT-SWAP", "long", T0) == 1
    assert any(e["event"] == "maintenance.recorded" and e["source"] == "api" for e in logs)
    # A retry, or the same order under another key: one maintenance.
    r = await post(served.url, {**BODY, "cTime": str(T0)}, AUTH)
    assert r.status_code == 200 and r.json() == {"recorded": False, "duplicate": True, "key": "777"}
    r = await post(served.url, {**BODY, "key": "strategy-42"}, AUTH)
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert served.ledger.count("sub1", "CRO-USDT-SWAP", "long", T0) == 1 and len(served.seen) == 1


async def test_fill_already_recorded_is_a_duplicate(served: Served) -> None:
    served.ledger.record("sub1", "CRO-USDT-SWAP", "long", "777", source="fill", ord_id="777")
    r = await post(served.url, BODY, AUTH)
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert [m.source for m in served.ledger.list_maintenance()] == ["fill"]


async def test_key_without_ord_id(served: Served) -> None:
    body = {k: v for k, v in BODY.items() if k != "ordId"} | {"key": "manual-1"}
    r = await post(served.url, body, AUTH)
    assert r.status_code == 201
    [rec] = served.ledger.list_maintenance()
    assert (rec.key, rec.ord_id, rec.c_time) == ("manual-1", None, None)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        ({**BODY, "posSide": "up"}, "posSide"),
        ({k: v for k, v in BODY.items() if k != "ordId"}, "ordId"),
        ({**BODY, "instId": ""}, "instId"),
        ({**BODY, "cTime": "-5"}, "cTime"),
        ({**BODY, "extra": 1}, "extra"),
        (b"{" + b" " * 5000 + b"}", "larger"),
    ],
)
async def test_bad_bodies(served: Served, body: Any, needle: str) -> None:
    r = await post(served.url, body, AUTH)
    assert r.status_code == 400 and needle in r.json()["error"]
    assert served.ledger.list_maintenance() == []


async def test_unknown_account(served: Served) -> None:
    r = await post(served.url, {**BODY, "account": "main"}, AUTH)
    assert r.status_code == 404 and served.ledger.list_maintenance() == []


async def test_without_a_token_the_api_is_closed(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "reactor.sqlite")
    runner, url = await serve(ledger, None)
    try:
        for headers in ({}, {"Authorization": "Bearer"}, AUTH):
            r = await post(url, BODY, headers)
            assert r.status_code == 503 and "no token" in r.json()["error"]
        assert ledger.list_maintenance() == []
    finally:
        await runner.cleanup()
        ledger.close()


async def test_ledger_down_is_503(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "reactor.sqlite")
    runner, url = await serve(ledger, TOKEN)
    ledger.close()  # the file is gone from under the API
    try:
        r = await post(url, BODY, AUTH)
        assert r.status_code == 503 and "ledger unavailable" in r.json()["error"]
    finally:
        await runner.cleanup()


def test_bearer_ok() -> None:
    assert bearer_ok(f"Bearer {TOKEN}", TOKEN)
    assert bearer_ok(f"bearer {TOKEN}", TOKEN)
    assert not bearer_ok(None, TOKEN)
    assert not bearer_ok("Bearer ", "")
    assert not bearer_ok(f"Bearer {TOKEN}x", TOKEN)


def test_parse_request_strips_and_defaults() -> None:
    req = parse_request(b'{"account":" sub1 ","instId":"A-USDT-SWAP","posSide":"net","key":"k"}')
    assert (req.account, req.idempotency_key, req.ord_id) == ("sub1", "k", None)
    with pytest.raises(BadRequest, match="account"):
        parse_request(b'{"instId":"A","posSide":"net","key":"k"}')


async def test_accounts_may_come_from_a_callable(tmp_path: Path) -> None:
    """A config reload adds an account: the API asks for the managed set per request."""
    ledger = SqliteLedger(tmp_path / "reactor.sqlite")
    managed = {"sub1"}
    api = MaintenanceApi(ledger, TOKEN, lambda: managed)
    app = web.Application()
    api.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        body = {**BODY, "account": "sub3"}
        assert (await post(url, body, AUTH)).status_code == 404
        managed.add("sub3")
        assert (await post(url, body, AUTH)).status_code == 201
    finally:
        await runner.cleanup()
        ledger.close()
