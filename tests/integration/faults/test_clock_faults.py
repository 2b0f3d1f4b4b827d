"""Over real sockets: the reactor's wall clock steps +1 h while it runs (issue 21 item 5).

An injected wall clock stands in for libfaketime (the simulator runs in this process and
must keep real time): the reactor's REST clients (signed requests, the offset measured after
OKX's 50102), its ledger (the journal's local times) and the engine shell's wall-clock reads
all see the stepped clock; monotonic time (asyncio's timers) goes on undisturbed, as with
libfaketime's ``DONT_FAKE_MONOTONIC``. Before the fix the reactor matched its own transfer
made before the step to its bill with the new offset (-1 h), read it as someone else's
(``margin.foreign_transfer``) and held the instrument; now the journal row carries its send
time on OKX's clock.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from reactor.engine import journal_writes, shell
from reactor.okx import rest
from reactor.okx.clock import ExchangeClock
from reactor.store import db
from tests.engine.harness import running, wait_for
from tests.integration.faults.common import account, cro, in_band, scenario, setup

W = "Wu666666"
CRO_KEY = (W, "CRO-USDT-SWAP", "long")
STEP_S = 3600.0


async def test_own_transfers_stay_own_after_the_wall_clock_steps_an_hour(
    tmp_path, monkeypatch, sim_factory
):
    step = [0.0]

    def wall() -> float:
        return time.time() + step[0]

    for cls in (rest.OkxRestClient, db.Database):
        monkeypatch.setattr(cls, "__init__", _with_clock(cls.__init__, wall))
    # The process's one reading of OKX's clock (service/accounts.py) reads the stepped clock too.
    monkeypatch.setattr(
        ExchangeClock, "__init__", _with_clock(ExchangeClock.__init__, wall, "local")
    )
    for module in (shell, journal_writes):
        monkeypatch.setattr(module, "time", SimpleNamespace(time=wall, monotonic=time.monotonic))
    _, admin, cfg, tap = await setup(
        tmp_path,
        monkeypatch,
        sim_factory,
        scenario(account(W, 1, [cro()])),
        reconcile_interval_s=1,
    )
    async with running(cfg) as (rt, logs):
        await wait_for(lambda: logs.events("margin.adjust.ok"), timeout_s=20)
        step[0] = STEP_S  # the host clock jumps before any bills read saw the transfer
        await wait_for(
            lambda: any(e["offset_s"] < -3000 for e in logs.events("rest.clock.synced")),
            timeout_s=20,
        )
        await asyncio.sleep(3.5)  # interval reconciles: bills read, open rows settled
        assert logs.events("margin.foreign_transfer") == []
        assert logs.events("margin.position.held_foreign") == []
        # A later displacement is corrected at once, not held.
        await admin.set_position(
            account=W,
            instId="CRO-USDT-SWAP",
            posSide="long",
            pos="108",
            avgPx="0.0905",
            lever="10",
            margin="20.30",
        )
        await wait_for(lambda: in_band(tap.margin(*CRO_KEY)), timeout_s=20)
        await asyncio.sleep(2.5)  # its bill read after the step too
        journal = rt.ledger.journal()
    assert logs.events("margin.foreign_transfer") == []
    assert len(journal) >= 2 and all(e.status == "ok" and e.bill_id for e in journal)
    # The row written after the step: local time an hour fast, OKX's time right.
    late, first = journal[0], journal[-1]
    assert late.sent_okx_ms is not None and first.sent_okx_ms is not None
    assert late.sent_ms - late.sent_okx_ms > 3_500_000
    assert abs(first.sent_ms - first.sent_okx_ms) < 5_000
    tap.assert_no_double_application(logs)
    tap.assert_conserved()


def _with_clock(init: Any, wall: Any, name: str = "clock") -> Any:
    def stepped(self: Any, *args: Any, **kw: Any) -> None:
        if name == "clock" or not args:  # ExchangeClock(local) may get it positionally
            kw.setdefault(name, wall)
        init(self, *args, **kw)

    return stepped
