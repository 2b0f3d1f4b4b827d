"""The dashboard rendered by headless chromium, checked against the simulator's state.

Skipped when chromium is absent (``apt-get install chromium`` enables it; ``.ci/run`` does).
``docs/status-page.png`` comes from ``test_status_page_scale.py`` (``UPDATE_SCREENSHOT=1``).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from reactor.okx.models import parse_position
from reactor.status.metrics import Metrics
from reactor.status.model import AccountStatus, HaStatus, PositionStatus, StatusSnapshot
from reactor.status.server import StatusServer
from tests.paths import REPO

from .cdp import Browser, find_chromium
from .snapshots import MutableSource

pytestmark = pytest.mark.browser

DOCS = REPO / "docs"

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


READ_NEW_PARTS = """(() => {
  const q = s => document.querySelector(s);
  const row = (acc, inst) => q(`tr.position[data-account="${acc}"][data-inst="${inst}"]`);
  const cro = row('sub-a', 'CRO-USDT-SWAP'), sol = row('sub-b', 'SOL-USDT-SWAP');
  const svg = cro.querySelector('td.chart svg.chart');
  const band = svg && svg.querySelector('rect.band');
  const line = svg && svg.querySelector('polyline.margin');
  const pts = line ? line.getAttribute('points').split(' ').map(p => p.split(',').map(Number))
                   : [];
  return {
    venue: q('#venue').textContent, venueClass: q('#venue').className,
    dryRunShown: !q('#dry-run').hidden,
    states: q('#sub-states').textContent,
    stopped: [...document.querySelectorAll('#stopped-list li')].map(
      li => [li.dataset.account, li.textContent]),
    subAlert: q('#card-sub').classList.contains('alert'),
    weighting: q('#pnl-weighting').textContent, weightingTitle: q('#pnl-weighting').title,
    croStatus: cro.dataset.status, croLast: cro.querySelector('td.last').textContent,
    croLastMs: cro.querySelector('td.last').dataset.ms,
    solLast: sol.querySelector('td.last').textContent,
    solChart: sol.querySelector('td.chart svg') !== null,
    points: pts,
    bandTop: band ? Number(band.getAttribute('y')) : null,
    bandBottom: band ? Number(band.getAttribute('y')) + Number(band.getAttribute('height')) : null,
    badge: q('section.account[data-account="sub-c"] h3 .badge.down').textContent,
  };
})()"""


async def test_status_page_venue_stopped_accounts_last_action_and_chart(
    sim_factory: Any, tmp_path: Path
) -> None:
    """The parts an operator asked for: venue and dry run in the header, stopped accounts with
    their reason in the totals, the last action per position, a chart of margin against its
    band, and how the average profit rate is weighted."""
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium not found: `apt-get install chromium` enables the browser test")
    sim = await sim_factory(SCENARIO, price_walk=False)
    async with httpx.AsyncClient() as c:
        state = (await c.get(sim.url + "/sim/state")).json()
    base = snapshot_from_sim_state(state, expected=3)
    now = base.generated_ms
    hour = 3_600_000
    accounts = []
    for a in base.accounts:
        rows = []
        for p in a.positions:
            if p.inst_id == "CRO-USDT-SWAP":
                # 31.2 six hours ago, reduced by 10.91 an hour ago... and it is 20.29 now:
                # a dry run (nothing was sent since), so out of band it is not "ok".
                p = replace(
                    p,
                    status="dry_run",
                    reason="dry run: would adjust",
                    last_action="reduce",
                    last_amount=Decimal("10.91"),
                    last_result="ok",
                    last_action_ms=now - hour,
                    history=(
                        (now - 6 * hour, Decimal("31.2")),
                        (now - hour, Decimal("31.2")),
                        (now - hour, Decimal("20.29")),
                        (now, Decimal("20.29")),
                    ),
                )
            rows.append(p)
        accounts.append(replace(a, positions=tuple(rows)))
    stopped = AccountStatus("sub-c", "sub", True, False, False, "login failed 60024", ())
    snap = replace(base, accounts=(*accounts, stopped), venue="demo", dry_run=True)
    server = StatusServer(MutableSource(snap), Metrics(), port=0)
    url = await server.start()
    try:
        async with Browser(exe) as b:
            await b.goto(url)
            await b.wait_for("window.lastSnapshot !== undefined")
            page = await b.eval(READ_NEW_PARTS)
            assert (page["venue"], page["venueClass"]) == ("demo", "tag demo")
            assert page["dryRunShown"] is True
            assert page["states"] == "2 live, 1 stopped"  # sub-accounts only
            assert page["stopped"] == [["sub-c", "sub-c: login failed 60024"]]
            assert page["subAlert"] is True
            assert page["badge"] == "stopped: login failed 60024"
            assert page["weighting"] == "(margin-weighted)"
            assert "total uPnL / total margin" in page["weightingTitle"]
            assert page["croStatus"] == "dry_run"
            assert page["croLast"].startswith("reduce 10.91 ok ")
            assert int(page["croLastMs"]) == now - hour
            assert page["solLast"] == "-" and page["solChart"] is False
            # The chart: four points, left to right; the band is drawn; margin sits above it
            # (smaller y is higher) all along, as 20.29 and 31.2 are above 10.5.
            xs = [x for x, _ in page["points"]]
            assert len(xs) == 4 and xs == sorted(xs)
            assert all(y < page["bandTop"] for _, y in page["points"])
            assert page["bandTop"] < page["bandBottom"]
            # The higher margin six hours ago is drawn higher than today's.
            assert page["points"][0][1] < page["points"][-1][1]
            shot = tmp_path / "status-page.png"
            await b.screenshot(shot)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        await server.stop()


async def test_status_page_shows_the_ha_role_epoch_and_holder() -> None:
    """HA (issue 17): the header tells leader from standby, with the epoch and the holder; the
    tag follows a takeover on refresh, and stays hidden without HA."""
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium not found: `apt-get install chromium` enables the browser test")
    plain = StatusSnapshot(accounts=(), main_expected_positions=0, generated_ms=1_700_000_000_000)
    standby = replace(plain, ha=HaStatus("shard:a", "B", "standby", 1, "A"))
    source = MutableSource(standby)
    server = StatusServer(source, Metrics(), port=0)
    url = await server.start()
    read = "(() => { const h = document.querySelector('#ha');"
    read += " return [h.hidden, h.dataset.role || null, h.textContent]; })()"
    try:
        async with Browser(exe) as b:
            await b.goto(url + "?refresh=100")
            await b.wait_for("window.lastSnapshot !== undefined")
            assert await b.eval(read) == [False, "standby", "shard:a: standby · epoch 1 · holder A"]
            source.snapshot = replace(plain, ha=HaStatus("shard:a", "B", "leader", 2, "B"))
            await b.wait_for("document.querySelector('#ha').dataset.role === 'leader'")
            assert await b.eval(read) == [False, "leader", "shard:a: leader · epoch 2 · holder B"]
            source.snapshot = plain
            await b.wait_for("document.querySelector('#ha').hidden")
    finally:
        await server.stop()
