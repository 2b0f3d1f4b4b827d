"""Counts from fills, end to end: the real reactor against the simulator over real sockets.

The fill race: a tagged maintenance buy adds contracts and margin and moves the count
from 1 to 2 (target 10 -> 20). OKX pushes the fill on ``positions`` and on ``orders`` in either
order; the simulator's ``ws_channel_delay`` fault (added for this test) picks the order. In
every ordering the margin must end at the new target with at most one margin call.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reactor.config import load_config
from reactor.service.app import LEDGER_FILE
from reactor.store import SqliteLedger
from tests.engine.harness import TARGETS, SimAdmin, running, set_credentials, wait_for
from tests.sim.helpers import signed

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

CRO = "CRO-USDT-SWAP"
ACCOUNT = "Wu666666"
KEYS = {"apiKey": "key-1", "secretKey": "secret-1", "passphrase": "pass-1"}
TOKEN = "test-api-token-0123456789"


def scenario() -> dict[str, Any]:
    # Count 1 (target 10): margin 10 on 108 contracts at 20x, mark = avgPx (no loss).
    return {
        # The reactor's floor is the simulator's lenient reduce rule (as in the engine's e2e
        # tests): the untagged case then needs one reduce, not a 59301 halving sequence.
        "mechanics": {"reduce_rule": {"im_basis": "mark", "fee_reserve": False}},
        "instruments": [{"instId": CRO, "ctVal": "10", "markPx": "0.0950", "mmrRate": "0.004"}],
        "accounts": [
            {
                "name": ACCOUNT,
                **KEYS,
                "balance": "1000",
                "positions": [
                    {
                        "instId": CRO,
                        "posSide": "long",
                        "pos": "108",
                        "avgPx": "0.0950",
                        "lever": "20",
                        "margin": "10",
                    }
                ],
            }
        ],
    }


def config(tmp_path: Path, sim_url: str, **maintenance: Any) -> Path:
    raw = {
        "venue": {
            "kind": "sim",
            "rest_url": sim_url,
            "ws_private_url": sim_url.replace("http://", "ws://") + "/ws/v5/private",
        },
        "state_dir": str(tmp_path / "state"),
        "accounts": [{"name": ACCOUNT}],
        "targets": TARGETS,
        "timing": {
            "debounce_ms": 50,
            "cooldown_s": 1,
            "reconcile_interval_s": 30,
            "request_timeout_s": 2,
            "ledger_poll_ms": 50,
        },
        "status": {"enabled": True, "port": 0},
        "log": {"format": "json", "level": "debug"},
        "maintenance": {"detect": {"tag": "maint"}, "grace_ms": 300, **maintenance},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def buy(sim_url: str, sz: str, tag: str = "maint", cl_ord_id: str = "") -> str:
    body = {
        "instId": CRO,
        "tdMode": "isolated",
        "side": "buy",
        "posSide": "long",
        "ordType": "market",
        "sz": sz,
        "tag": tag,
        "clOrdId": cl_ord_id,
    }
    r = await signed(
        sim_url,
        "POST",
        "/api/v5/trade/order",
        json.dumps(body),
        key=KEYS["apiKey"],
        secret=KEYS["secretKey"],
        passphrase=KEYS["passphrase"],
    )
    out = r.json()
    assert out["code"] == "0", out
    return str(out["data"][0]["ordId"])


async def margin(admin: SimAdmin) -> Decimal:
    p = await admin.position(ACCOUNT, CRO, "long")
    assert p is not None
    return Decimal(p["margin"])


async def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim_factory: Any, **kw: Any):
    sim = await sim_factory(scenario(), price_walk=False, time_scale=0.1)
    set_credentials(monkeypatch, {"accounts": [{"name": ACCOUNT, **KEYS}]})
    monkeypatch.setenv("REACTOR_API_TOKEN", TOKEN)
    admin = SimAdmin(sim.url)
    p = await admin.position(ACCOUNT, CRO, "long")
    assert p is not None
    with SqliteLedger(tmp_path / "state" / LEDGER_FILE) as led:  # the position's first maintenance
        led.record(ACCOUNT, CRO, "long", "first", source="cli", c_time=int(p["cTime"]))
    cfg = load_config(config(tmp_path, sim.url, **kw))
    return sim, admin, cfg


async def settled(admin: SimAdmin, seconds: float = 1.5) -> None:
    await asyncio.sleep(seconds)  # room for a (wrong) second call to show up


@pytest.mark.parametrize(
    ("delayed", "label"),
    [("orders", "position push first"), ("positions", "order push first"), (None, "together")],
)
async def test_tagged_maintenance_ends_at_the_new_target_in_one_call(
    tmp_path, monkeypatch, sim_factory, delayed, label
):
    sim, admin, cfg = await start(tmp_path, monkeypatch, sim_factory)
    async with running(cfg) as (rt, logs):
        await wait_for(lambda: logs.events("book.snapshot"))
        await wait_for(lambda: logs.events("maintenance.recovery.done"))
        await settled(admin, 0.5)
        assert await admin.margin_calls() == []  # 10 is in band for count 1
        if delayed is not None:
            await admin.fault(
                kind="ws_channel_delay", account=ACCOUNT, channel=delayed, seconds=0.15
            )
        ord_id = await buy(sim.url, "108")
        await wait_for(lambda: logs.events("maintenance.recorded"))
        await wait_for(lambda: _near(admin, "20"), timeout_s=10)
        await settled(admin)
        calls = await admin.margin_calls()
        assert len(calls) <= 1, (label, calls)
        assert Decimal("19") <= await margin(admin) <= Decimal("21")
        [rec] = logs.events("maintenance.recorded")
        assert (rec["source"], rec["key"]) == ("fill", ord_id)
        with SqliteLedger(tmp_path / "state" / LEDGER_FILE) as led:
            assert led.sources(ACCOUNT, CRO, "long", int(rec["cTime"])) == {"cli": 1, "fill": 1}
        assert logs.events("maintenance.gate.expired") == []
        # /api/status shows the count and where its records came from.
        async with httpx.AsyncClient(base_url=rt.status_url) as c:
            status = (await c.get("/api/status")).json()
        [pos] = status["accounts"][0]["positions"]
        assert (pos["count"], pos["sources"]) == (2, {"cli": 1, "fill": 1})
        # ... and the position they count for: its OKX cTime (issue 20 item 13)
        assert pos["cTime"] == int(rec["cTime"]) > 0


async def _near(admin: SimAdmin, target: str) -> bool:
    return abs(await margin(admin) - Decimal(target)) <= Decimal("1")


async def test_untagged_buy_is_a_plain_fill_corrected_to_the_current_target(
    tmp_path, monkeypatch, sim_factory
):
    sim, admin, cfg = await start(tmp_path, monkeypatch, sim_factory)
    async with running(cfg) as (_, logs):
        await wait_for(lambda: logs.events("maintenance.recovery.done"))
        await buy(sim.url, "108", tag="")
        await wait_for(lambda: admin.margin_calls())
        await settled(admin)
        [call] = await admin.margin_calls()
        assert json.loads(call["body"])["type"] == "reduce"
        assert Decimal("9.5") <= await margin(admin) <= Decimal("10.5")
        assert logs.events("maintenance.recorded") == []


async def test_fill_during_a_disconnect_is_recovered_on_reconnect(
    tmp_path, monkeypatch, sim_factory
):
    sim, admin, cfg = await start(tmp_path, monkeypatch, sim_factory)
    async with running(cfg) as (_, logs):
        await wait_for(lambda: logs.events("maintenance.recovery.done"))
        await admin.fault(kind="ws_silent", account=ACCOUNT, seconds=1.0)
        await admin.fault(kind="drop_ws", account=ACCOUNT)
        await wait_for(lambda: logs.events("ws.disconnected"))
        ord_id = await buy(sim.url, "108")  # no push reaches the reactor
        await wait_for(lambda: len(logs.events("maintenance.recovery.done")) >= 2, timeout_s=15)
        rec = next(e for e in logs.events("maintenance.recorded") if e["key"] == ord_id)
        assert rec["source"] == "backfill"
        await wait_for(lambda: _near(admin, "20"), timeout_s=10)
        await settled(admin)
        assert len(await admin.margin_calls()) <= 1
        assert Decimal("19") <= await margin(admin) <= Decimal("21")


async def test_the_same_fill_seen_twice_counts_once(tmp_path, monkeypatch, sim_factory):
    sim, admin, cfg = await start(tmp_path, monkeypatch, sim_factory)
    async with running(cfg) as (rt, logs):
        await wait_for(lambda: logs.events("maintenance.recovery.done"))
        ord_id = await buy(sim.url, "108")
        await wait_for(lambda: logs.events("maintenance.recorded"))
        # The same order again: from the API (a strategy that also reports), then from history
        # after a reconnect.
        async with httpx.AsyncClient(base_url=rt.status_url) as c:
            r = await c.post(
                "/api/maintenance",
                json={"account": ACCOUNT, "instId": CRO, "posSide": "long", "ordId": ord_id},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
        assert r.status_code == 200 and r.json()["duplicate"] is True
        await admin.fault(kind="drop_ws", account=ACCOUNT)
        await wait_for(lambda: len(logs.events("maintenance.recovery.done")) >= 2, timeout_s=15)
        with SqliteLedger(tmp_path / "state" / LEDGER_FILE) as led:
            assert led.recorded_ord_ids(ACCOUNT) == {ord_id}
            assert [r.source for r in led.list_maintenance()] == ["cli", "fill"]


async def test_the_api_refuses_a_missing_or_wrong_token(tmp_path, monkeypatch, sim_factory):
    _, _, cfg = await start(tmp_path, monkeypatch, sim_factory)
    body = {"account": ACCOUNT, "instId": CRO, "posSide": "long", "ordId": "1"}
    async with running(cfg) as (rt, logs):
        async with httpx.AsyncClient(base_url=rt.status_url) as c:
            missing = await c.post("/api/maintenance", json=body)
            wrong = await c.post(
                "/api/maintenance", json=body, headers={"Authorization": "Bearer nope"}
            )
            right = await c.post(
                "/api/maintenance", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
            )
        assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 201)
        assert TOKEN not in "\n".join(logs.lines)


async def test_the_api_makes_the_clis_checks(tmp_path, monkeypatch, sim_factory):
    """Issue 20 item 8: an instrument OKX does not list is 404, a side with no open position
    409 (both were 201); the open position's cTime is recorded, as ``maintenance record`` does."""
    _, admin, cfg = await start(tmp_path, monkeypatch, sim_factory)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"account": ACCOUNT, "instId": CRO, "posSide": "long"}
    async with running(cfg) as (rt, logs):
        async with httpx.AsyncClient(base_url=rt.status_url) as c:
            unlisted = await c.post(
                "/api/maintenance",
                json={**body, "instId": "NOPE-USDT-SWAP", "key": "a"},
                headers=auth,
            )
            no_short = await c.post(
                "/api/maintenance", json={**body, "posSide": "short", "key": "b"}, headers=auth
            )
            ok = await c.post("/api/maintenance", json={**body, "key": "c"}, headers=auth)
            again = await c.post("/api/maintenance", json={**body, "key": "c"}, headers=auth)
        assert unlisted.status_code == 404 and "NOPE-USDT-SWAP" in unlisted.json()["error"]
        assert no_short.status_code == 409 and "no open position" in no_short.json()["error"]
        assert (ok.status_code, again.status_code) == (201, 200)
        refused = [e["reason"] for e in logs.events("maintenance.api.refused")]
        assert len(refused) == 2
    p = await admin.position(ACCOUNT, CRO, "long")
    assert p is not None
    with SqliteLedger(tmp_path / "state" / LEDGER_FILE) as led:
        assert [(r.key, r.c_time) for r in led.list_maintenance()] == [
            ("first", int(p["cTime"])),
            ("c", int(p["cTime"])),
        ]


@pytest.mark.parametrize("late_ms", [100, 300, 500])
async def test_records_only_a_record_posted_after_its_fill_moves_the_target_once(
    tmp_path, monkeypatch, sim_factory, late_ms
):
    """Without ``maintenance.detect`` a strategy posts its record to the local API after the
    fill. The grown position waits for it (or the grace): one call to the new target, never
    corrected to the old one first and back (20 -> 10 -> 20)."""
    sim, admin, cfg = await start(tmp_path, monkeypatch, sim_factory, detect=None)
    async with running(cfg) as (rt, logs):
        await wait_for(lambda: logs.events("book.snapshot"))
        await settled(admin, 0.5)
        assert await admin.margin_calls() == []  # count 1, margin 10: in band
        ord_id = await buy(sim.url, "108", tag="")
        await asyncio.sleep(late_ms / 1000)
        async with httpx.AsyncClient(base_url=rt.status_url) as c:
            r = await c.post(
                "/api/maintenance",
                json={"account": ACCOUNT, "instId": CRO, "posSide": "long", "ordId": ord_id},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
        assert r.status_code == 201, r.text
        await wait_for(lambda: _near(admin, "20"), timeout_s=10)
        await settled(admin)
        calls = await admin.margin_calls()
        assert [json.loads(c["body"])["type"] for c in calls] == ["add"]
        assert Decimal("19") <= await margin(admin) <= Decimal("21")


async def test_records_only_a_grown_position_waits_record_grace_ms(
    tmp_path, monkeypatch, sim_factory
):
    """Without ``detect`` (counts from records only) a position that grew waits
    ``maintenance.record_grace_ms`` for the record its strategy posts after the fill."""
    sim, admin, cfg = await start(tmp_path, monkeypatch, sim_factory, record_grace_ms=1500)
    records_only = cfg.maintenance.model_copy(update={"detect": None})
    cfg = cfg.model_copy(update={"maintenance": records_only})
    async with running(cfg) as (rt, logs):
        assert rt.engine.core.settings.record_grace_s == 1.5
        await wait_for(lambda: logs.events("book.snapshot"))
        await settled(admin, 0.5)
        assert await admin.margin_calls() == []
        bought = time.monotonic()
        await buy(sim.url, "108", tag="")
        await wait_for(lambda: admin.margin_calls(), timeout_s=10)
        assert time.monotonic() - bought >= 1.4  # it waited for a record that never came
