"""The dashboard rendered by headless chromium, checked against the simulator's state.

Skipped when chromium is absent (``apt-get install chromium`` enables it; ``.ci/run`` does).
``UPDATE_SCREENSHOT=1`` also writes the screenshot to ``docs/status-page.png``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from reactor.okx.models import parse_position
from reactor.status.metrics import Metrics
from reactor.status.model import AccountStatus, PositionStatus, StatusSnapshot
from reactor.status.server import StatusServer

from .cdp import Browser, find_chromium
from .snapshots import MutableSource

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs"

SCENARIO: dict[str, Any] = {
    "instruments": [
        {"instId": "BTC-USDT-SWAP", "ctVal": "0.01", "markPx": "64000", "lotSz": "1"},
        {"instId": "ETH-USDT-SWAP", "ctVal": "0.1", "markPx": "3100", "lotSz": "1"},
        {"instId": "SOL-USDT-SWAP", "ctVal": "1", "markPx": "140", "lotSz": "1"},
        {"instId": "CRO-USDT-SWAP", "ctVal": "10", "markPx": "0.0950", "lotSz": "1"},
    ],
    "accounts": [
        {
            "name": "main",
            "main": True,
            "apiKey": "k-main",
            "secretKey": "s-main",
            "passphrase": "p-main",
            "balance": "5000",
            "positions": [
                {"instId": "BTC-USDT-SWAP", "posSide": "long", "pos": "2", "avgPx": "63000",
                 "lever": "10", "margin": "130"},
                {"instId": "ETH-USDT-SWAP", "posSide": "long", "pos": "5", "avgPx": "3000",
                 "lever": "10", "margin": "160"},
                {"instId": "SOL-USDT-SWAP", "posSide": "short", "pos": "3", "avgPx": "150",
                 "lever": "10", "margin": "45"},
            ],
        },
        {
            "name": "sub-a",
            "apiKey": "k-a",
            "secretKey": "s-a",
            "passphrase": "p-a",
            "balance": "1000",
            "positions": [
                {"instId": "CRO-USDT-SWAP", "posSide": "long", "pos": "108", "avgPx": "0.0905",
                 "lever": "10", "margin": "20.29"},
                {"instId": "ETH-USDT-SWAP", "posSide": "short", "pos": "1", "avgPx": "3080",
                 "lever": "50", "margin": "10"},
            ],
        },
        {
            "name": "sub-b",
            "apiKey": "k-b",
            "secretKey": "s-b",
            "passphrase": "p-b",
            "balance": "1000",
            "positions": [
                {"instId": "SOL-USDT-SWAP", "posSide": "long", "pos": "1", "avgPx": "141",
                 "lever": "20", "margin": "9.8"},
            ],
        },
    ],
}  # fmt: skip


def snapshot_from_sim_state(state: dict[str, Any], expected: int) -> StatusSnapshot:
    """What the engine would show for the simulator's book, with no maintenances recorded."""
    accounts = []
    for a in state["accounts"]:
        role = "main" if a["main"] else "sub"
        rows = []
        for raw in a["positions"]:
            p = parse_position(a["name"], raw)
            managed = role == "sub" and p.mgn_mode == "isolated"
            target, lo, hi = (Decimal(10), Decimal("9.5"), Decimal("10.5"))
            margin = p.margin
            status = "unmanaged"
            if managed:
                status = "ok" if margin is not None and lo <= margin <= hi else "adjusting"
            rate = None
            if margin and p.upl is not None:
                rate = (p.upl / margin).quantize(Decimal("0.0001"))
            rows.append(
                PositionStatus(
                    account=a["name"],
                    role=role,
                    inst_id=p.inst_id,
                    pos_side=p.pos_side,
                    pos=p.pos,
                    margin=margin,
                    target=target if managed else None,
                    band_lo=lo if managed else None,
                    band_hi=hi if managed else None,
                    count=0,
                    upl=p.upl,
                    profit_rate=rate,
                    status=status,
                    reason="" if status != "adjusting" else "margin outside band",
                )
            )
        accounts.append(AccountStatus(a["name"], role, True, True, True, None, tuple(rows)))
    return StatusSnapshot(tuple(accounts), expected, 1_700_000_000_000)


def money(s: str) -> str:
    d = Decimal(s)
    return ("+" if d > 0 else "") + f"{d:.2f}"


def pct(s: str) -> str:
    return f"{Decimal(s) * 100:.2f} %"


READ_PAGE = """(() => {
  const t = id => document.getElementById(id).textContent;
  return {
    mainAlert: document.getElementById('card-main').classList.contains('alert'),
    main: [t('main-total'), t('main-expected'), t('main-long'), t('main-short')],
    sub: [t('sub-accounts'), t('sub-positions')],
    pnl: [t('pnl-upl'), t('pnl-rate')],
    health: t('health'),
    sections: [...document.querySelectorAll('section.account')].map(s => s.dataset.account),
    rows: [...document.querySelectorAll('tr.position')].map(r => ({
      account: r.dataset.account, inst: r.dataset.inst, side: r.dataset.side,
      status: r.dataset.status,
      margin: r.querySelector('td.margin').textContent,
      band: r.querySelector('td.band').textContent,
      count: r.querySelector('td.count').textContent,
      rate: r.querySelector('td.rate').textContent,
      upl: r.querySelector('td.upl').textContent,
    })),
  };
})()"""


async def test_status_page_in_chromium(sim_factory: Any, tmp_path: Path) -> None:
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium not found: `apt-get install chromium` enables the browser test")

    sim = await sim_factory(SCENARIO, price_walk=False)
    async with httpx.AsyncClient() as c:
        state = (await c.get(sim.url + "/sim/state")).json()
    snap = snapshot_from_sim_state(state, expected=4)
    source = MutableSource(snap)
    server = StatusServer(source, Metrics(), port=0)
    url = await server.start()
    try:
        async with Browser(exe) as b:
            await b.goto(url + "?refresh=200")
            await b.wait_for("window.lastSnapshot !== undefined")
            page = await b.eval(READ_PAGE)

            assert page["mainAlert"] is True  # 3 main positions, 4 expected
            assert page["main"] == ["3", "4", "2", "1"]
            assert page["sub"] == ["2", "3"]
            assert page["pnl"] == [
                money(format(snap.total_upl, "f")),
                pct(str(snap.avg_profit_rate)),
            ]
            assert page["health"] == "healthy"
            assert page["sections"] == ["main", "sub-a", "sub-b"]

            expected_rows = [
                {
                    "account": p.account,
                    "inst": p.inst_id,
                    "side": p.pos_side,
                    "status": p.status,
                    "margin": format(p.margin, "f"),
                    "band": "-" if p.band_lo is None else f"{p.band_lo} - {p.band_hi}",
                    "count": str(p.count),
                    "rate": pct(str(p.profit_rate)),
                    "upl": money(format(p.upl, "f")),
                }
                for a in snap.accounts
                for p in a.positions
            ]
            assert page["rows"] == expected_rows
            # the sim's own view agrees: every sim position is a row
            sim_keys = {
                (a["name"], p["instId"], p["posSide"]) for a in state["accounts"]
                for p in a["positions"]
            }  # fmt: skip
            assert {(r["account"], r["inst"], r["side"]) for r in page["rows"]} == sim_keys
            statuses = {(r["account"], r["inst"]): r["status"] for r in page["rows"]}
            assert statuses[("sub-a", "CRO-USDT-SWAP")] == "adjusting"  # 20.29 > 10.5
            assert statuses[("sub-b", "SOL-USDT-SWAP")] == "ok"

            shot = tmp_path / "status-page.png"
            await b.screenshot(shot)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            if os.environ.get("UPDATE_SCREENSHOT") == "1":
                (DOCS / "status-page.png").write_bytes(shot.read_bytes())

            # The page refreshes itself: fewer expected positions and a dropped account show up.
            down = replace(snap.accounts[2], connected=False)
            source.snapshot = replace(
                snap, main_expected_positions=3, accounts=(*snap.accounts[:2], down)
            )
            await b.wait_for("!document.getElementById('card-main').classList.contains('alert')")
            page = await b.eval(READ_PAGE)
            assert page["main"][1] == "3"
            assert page["health"] == "unhealthy: sub-b: not connected"
    finally:
        await server.stop()
