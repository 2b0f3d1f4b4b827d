"""Pauses on the dashboard, in headless chromium: the account badge with its reason and a
paused position's status (skipped without chromium, like the other browser tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reactor.status.metrics import Metrics
from reactor.status.model import AccountStatus, StatusSnapshot
from reactor.status.server import StatusServer
from tests.status.cdp import Browser, find_chromium
from tests.status.snapshots import MutableSource, position

pytestmark = pytest.mark.browser

READ = """(() => {
  const sec = n => document.querySelector(`section.account[data-account="${n}"]`);
  const badges = n => [...sec(n).querySelectorAll("h3 .badge")].map(b => b.textContent);
  const row = document.querySelector('tr.position[data-account="b"][data-inst="CRO-USDT-SWAP"]');
  return {a: badges("a"), b: badges("b"), status: row.dataset.status,
          cell: row.querySelector("td.status").textContent,
          reason: row.querySelector("td.reason").textContent,
          color: getComputedStyle(row.querySelector("td.status")).color,
          badge: getComputedStyle(sec("a").querySelector("h3 .badge.paused")).backgroundColor};
})()"""


async def test_paused_account_and_position_on_the_page(tmp_path: Path) -> None:
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium not found: `apt-get install chromium` enables the browser test")
    a = AccountStatus(
        "a",
        "sub",
        True,
        True,
        True,
        None,
        (position("a", "ETH-USDT-SWAP", "long", status="paused", reason="paused: desk hedge"),),
        "desk hedge",
    )
    paused_row = position("b", "CRO-USDT-SWAP", "long", status="paused", reason="paused: manual")
    b = AccountStatus("b", "sub", True, True, True, None, (paused_row,))
    server = StatusServer(MutableSource(StatusSnapshot((a, b), 0, 0)), Metrics(), port=0)
    url = await server.start()
    try:
        async with Browser(exe) as br:
            await br.goto(url)
            await br.wait_for("window.lastSnapshot !== undefined")
            page = await br.eval(READ)
            assert "paused: desk hedge" in page["a"]
            assert not any(x.startswith("paused") for x in page["b"])
            assert (page["status"], page["cell"], page["reason"]) == (
                "paused",
                "paused",
                "paused: manual",
            )
            assert page["color"] == "rgb(29, 78, 216)"
            assert page["badge"] == "rgb(219, 234, 254)"
            await br.screenshot(tmp_path / "paused.png")
            if out := os.environ.get("PAUSED_SCREENSHOT"):
                (tmp_path / "paused.png").replace(out)
    finally:
        await server.stop()
