"""Issue 21 item 3: OKX's code table walked through every endpoint the engine calls
(margin-balance, the ``estAvailTrans`` read, bills, positions, instruments), each code raised
as the REST client raises it (:func:`envelope_error`). One behaviour per class everywhere:
credentials/permission stop the account; transient and rate limit back off and retry, never
held until the position changes; ambiguous re-reads; a rejection holds a call until the
position changes; clock resyncs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from reactor.engine import AccountState, Engine
from reactor.okx.errors import REST_CODES, ErrorClass, Kind, envelope_error
from reactor.store import SqliteLedger
from tests.domain.factories import D

from .core_driver import CRO, KEY, cro, settings
from .test_shell import FakeClient, until

# One code of every class in the table, and the codes issue 21 names.
NAMED = {"50001": 503, "50061": 200, "50011": 429, "50113": 401, "50004": 400, "50102": 401}
CODES = dict(NAMED)
for _cls in ErrorClass:
    for _code, _entry in REST_CODES.items():
        if _entry.cls is _cls and _code not in CODES:
            CODES[_code] = _entry.http
            break

ENDPOINTS = ("margin-balance", "estAvailTrans", "bills", "positions", "instruments")


class CountingClient(FakeClient):
    def __init__(self) -> None:
        super().__init__()
        self.syncs = 0
        self.reads: dict[str, int] = {}

    async def sync_clock(self) -> float:
        self.syncs += 1
        return 0.0


def _fail(client: CountingClient, endpoint: str, exc: Exception, times: int) -> None:
    """``endpoint`` answers ``exc`` ``times`` times, then as usual."""
    names = {
        "margin-balance": "margin_balance",
        "estAvailTrans": "adjust_leverage_info",
        "bills": "get_bills",
        "positions": "get_positions",
        "instruments": "get_instruments",
    }
    name = names[endpoint]
    real = getattr(client, name)
    left = {"n": times}

    async def answer(*args: Any, **kw: Any) -> Any:
        client.reads[endpoint] = client.reads.get(endpoint, 0) + 1
        if left["n"] > 0:
            left["n"] -= 1
            raise exc
        return await real(*args, **kw)

    setattr(client, name, answer)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("code", sorted(CODES))
async def test_one_behaviour_per_class_on_every_endpoint(
    tmp_path: Path, endpoint: str, code: str
) -> None:
    http = CODES[code]
    exc = envelope_error("walk", code, "walked", http)
    kind = REST_CODES[code].cls.kind
    client = CountingClient()
    _fail(client, endpoint, exc, times=1)
    engine = Engine(
        settings(
            debounce_s=0.0,
            cooldown_s=0.05,
            retry_max_s=0.2,
            pre_reduce_check=endpoint == "estAvailTrans",
            bill_settle_s=0.0,
        ),
        {"sub1": AccountState("sub1", "sub", client)},
        {} if endpoint == "instruments" else {CRO: D("10")},
        SqliteLedger(tmp_path / "l.sqlite"),
    )
    account = engine.accounts["sub1"]
    with capture_logs() as logs:
        engine.on_connected("sub1")
        engine.on_snapshot("sub1", [cro()], last_page=True)
        if endpoint == "bills":
            await engine.read_bills("sub1", "interval")
        elif endpoint == "positions":
            await engine.reconcile_account("sub1", trigger="interval")
        await until(lambda: client.reads.get(endpoint, 0) >= 1)
        if kind in (Kind.CREDENTIALS, Kind.PERMISSION):
            await until(lambda: account.stopped_reason is not None)
            await asyncio.sleep(0.3)
            if endpoint in ("margin-balance", "estAvailTrans"):
                assert not client.calls  # the refused call's own read or call: nothing moved
                assert client.reads[endpoint] == 1
            else:  # a read beside the correction, which may have gone first: none after it
                stop = next(i for i, e in enumerate(logs) if e["event"] == "account.stopped")
                assert not [e for e in logs[stop:] if e["event"] == "margin.adjust.sent"]
            assert sum(e["event"] == "account.stopped" for e in logs) == 1
        elif kind is Kind.CLOCK:
            await until(lambda: client.syncs >= 2 if endpoint == "bills" else client.syncs >= 1)
        elif endpoint in ("bills", "positions"):
            # An account-wide read: retried by the next read; the correction goes on.
            await until(lambda: bool(client.calls))
        else:
            # Transient, rate limit, ambiguous, rejection on a read: retried with back-off.
            # On the call: a rejection holds until the position changes; the others call again.
            if endpoint == "margin-balance" and kind is Kind.REJECTION:
                # Never the same call again blindly: held until the position changes, or
                # what the finer class says (59301 halves the step, 51008 waits for
                # balance, a position gone re-reads the account).
                control = engine.core.control(KEY)
                await until(
                    lambda: (
                        control.hold_until_change == code
                        or control.balance_wait
                        or control.step_cap is not None
                        or any(e.get("trigger") == code for e in logs)
                    )
                )
                await asyncio.sleep(0.3)
                amounts = [c[3] for c in client.calls]
                assert len(amounts) == len(set(amounts))  # no repeat of the refused amount
            else:
                await until(lambda: client.reads[endpoint] >= 2, rounds=5000)
                await until(
                    lambda: engine.ledger.journal(1) and engine.ledger.journal(1)[0].status == "ok",
                    rounds=5000,
                )
        if kind is Kind.AMBIGUOUS and endpoint == "margin-balance":
            assert any(e["event"] == "margin.adjust.resolved" for e in logs)
        if kind not in (Kind.CREDENTIALS, Kind.PERMISSION):
            assert account.stopped_reason is None
            control = engine.core.control(KEY)
            if endpoint != "margin-balance" or kind is not Kind.REJECTION:
                assert control is None or control.hold_until_change is None
    await engine.drain(1.0)
