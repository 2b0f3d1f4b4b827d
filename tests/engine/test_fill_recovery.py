"""Recovery of maintenance fills from OKX history, through OkxRestClient over MockTransport.

The simulator serves no order history yet; these tests pin the paging, the parsing of the
captured shapes and the ledger writes. The end-to-end "fill during a disconnect" test runs
against the simulator once it has orders (see docs/maintenance.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from reactor.domain.fills import DetectRule
from reactor.engine.fill_recovery import PAGE_LIMIT, recover_account
from reactor.okx.credentials import Credentials
from reactor.okx.errors import OkxError
from reactor.okx.rest import OkxRestClient
from reactor.store import Ledger, SqliteLedger
from tests.domain.factories import D, position
from tests.paths import FIXTURES

T0 = 1_700_000_000_000
NOW = T0 + 3_600_000
TAG = DetectRule(tag="maint")
CREDS = Credentials("key-1", "secret-1", "pass-1")


def order(ord_id: str, **kw: Any) -> dict[str, Any]:
    raw = {
        "instId": "CRO-USDT-SWAP",
        "instType": "SWAP",
        "ordId": ord_id,
        "clOrdId": "",
        "tag": "maint",
        "state": "filled",
        "side": "buy",
        "posSide": "long",
        "tdMode": "isolated",
        "fillSz": "10",
        "accFillSz": "10",
        "fillTime": str(T0 + 1_000),
        "cTime": str(T0 + 900),
        "uTime": str(T0 + 1_000),
    }
    raw.update(kw)
    return raw


def bill(bill_id: str, ord_id: str, **kw: Any) -> dict[str, Any]:
    raw = {
        "billId": bill_id,
        "type": "2",
        "subType": "3",
        "instId": "CRO-USDT-SWAP",
        "instType": "SWAP",
        "mgnMode": "isolated",
        "ordId": ord_id,
        "clOrdId": "",
        "tag": "maint",
        "sz": "5",
        "ts": str(T0 + 2_000),
    }
    raw.update(kw)
    return raw


class FakeOkx:
    """Serves orders-history / orders-pending / bills newest first, paged by ``after``."""

    def __init__(
        self,
        history: list[dict[str, Any]],
        pending: list[dict[str, Any]] | None = None,
        bills: list[dict[str, Any]] | None = None,
    ) -> None:
        self.tables = {
            "/api/v5/trade/orders-history": (history, "ordId"),
            "/api/v5/trade/orders-pending": (pending or [], "ordId"),
            "/api/v5/account/bills": (bills or [], "billId"),
        }
        self.requests: list[httpx.Request] = []
        self.fail_with: str | None = None

    def __call__(self, req: httpx.Request) -> httpx.Response:
        self.requests.append(req)
        if self.fail_with is not None:
            return httpx.Response(200, json={"code": self.fail_with, "msg": "nope", "data": []})
        rows, id_field = self.tables[req.url.path]
        after = req.url.params.get("after")
        limit = int(req.url.params.get("limit", "100"))
        start = 0
        if after:
            start = next(i for i, r in enumerate(rows) if r[id_field] == after) + 1
        return httpx.Response(
            200, json={"code": "0", "msg": "", "data": rows[start : start + limit]}
        )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with SqliteLedger(tmp_path / "reactor.sqlite") as led:
        yield led


def client(fake: FakeOkx) -> OkxRestClient:
    return OkxRestClient(
        "http://okx.test",
        CREDS,
        transport=httpx.MockTransport(fake),
        account="sub1",
        retry_backoff_s=0.001,
        get_retries=0,
    )


async def test_missed_fills_are_recorded_as_backfill(ledger: Ledger) -> None:
    ledger.record("sub1", "CRO-USDT-SWAP", "long", "seen", source="fill", ord_id="seen")
    fake = FakeOkx(
        history=[
            order("a"),
            order("seen"),
            order("plain", tag=""),
            order("old", fillTime=str(T0 - 5), cTime=str(T0 - 10)),  # before the position
            order("cross", tdMode="cross"),
        ],
        pending=[order("part", state="partially_filled", fillSz="3", accFillSz="3")],
        bills=[bill("b2", "viabill", sz="5"), bill("b1", "viabill", sz="2"), bill("b0", "a")],
    )
    with capture_logs() as logs:
        result = await recover_account(
            client(fake), ledger, "sub1", [position()], TAG, NOW, sources=("bills", "orders")
        )
    assert sorted(r.ord_id for r in result.recorded) == ["a", "part", "viabill"]
    assert result.affected == {("sub1", "CRO-USDT-SWAP", "long", "isolated")}
    assert result.complete and result.orders == 6 and result.bills == 3 and result.invalid == 0
    assert ledger.count("sub1", "CRO-USDT-SWAP", "long", T0) == 4
    assert ledger.sources("sub1", "CRO-USDT-SWAP", "long", T0) == {"fill": 1, "backfill": 3}
    by_key = {r.key: r for r in ledger.list_maintenance()}
    assert by_key["viabill"].c_time == T0 and by_key["viabill"].ord_id == "viabill"
    done = [e for e in logs if e["event"] == "maintenance.recovery.done"]
    assert done and done[0]["recorded"] == 3
    # Query parameters: SWAP, trade bills only, history from a day before the oldest cTime.
    hist = next(r for r in fake.requests if r.url.path.endswith("orders-history"))
    assert hist.url.params["instType"] == "SWAP"
    assert int(hist.url.params["begin"]) == T0 - 86_400_000
    bills_req = next(r for r in fake.requests if r.url.path.endswith("bills"))
    assert bills_req.url.params["type"] == "2" and int(bills_req.url.params["begin"]) == T0
    # Running it again records nothing twice.
    again = await recover_account(
        client(fake), ledger, "sub1", [position()], TAG, NOW, sources=("bills", "orders")
    )
    assert again.recorded == [] and ledger.count("sub1", "CRO-USDT-SWAP", "long", T0) == 4


async def test_voided_fill_is_not_revived(ledger: Ledger) -> None:
    ledger.record("sub1", "CRO-USDT-SWAP", "long", "a", source="fill", c_time=T0, ord_id="a")
    ledger.void("sub1", "a", actor="alice", reason="not a maintenance")
    fake = FakeOkx([order("a")], bills=[bill("b1", "a")])
    for sources in (("bills",), ("orders",)):
        result = await recover_account(
            client(fake), ledger, "sub1", [position()], TAG, NOW, sources=sources
        )
        assert result.recorded == []
    assert ledger.count("sub1", "CRO-USDT-SWAP", "long", T0) == 0


async def test_pages_through_history(ledger: Ledger) -> None:
    rows = [order(f"o{i:03d}", cTime=str(T0 + 10_000 - i)) for i in range(PAGE_LIMIT + 30)]
    fake = FakeOkx(rows)
    result = await recover_account(
        client(fake), ledger, "sub1", [position()], TAG, NOW, sources=("orders",)
    )
    assert len(result.recorded) == PAGE_LIMIT + 30
    hist = [r for r in fake.requests if r.url.path.endswith("orders-history")]
    assert [r.url.params.get("after") for r in hist] == [None, f"o{PAGE_LIMIT - 1:03d}"]


async def test_page_cap_reports_incomplete(ledger: Ledger) -> None:
    rows = [order(f"o{i:04d}", cTime=str(T0 + 100_000 - i)) for i in range(PAGE_LIMIT * 3)]
    result = await recover_account(
        client(FakeOkx(rows)),
        ledger,
        "sub1",
        [position()],
        TAG,
        NOW,
        max_pages=2,
        sources=("orders",),
    )
    assert not result.complete and len(result.recorded) == PAGE_LIMIT * 2


async def test_no_open_position_reads_nothing(ledger: Ledger) -> None:
    fake = FakeOkx([order("a")])
    result = await recover_account(client(fake), ledger, "sub1", [position(pos=D(0))], TAG, NOW)
    assert result.recorded == [] and fake.requests == []


async def test_exchange_error_writes_nothing(ledger: Ledger) -> None:
    fake = FakeOkx([order("a")], bills=[bill("b1", "a")])
    fake.fail_with = "50026"
    with pytest.raises(OkxError):
        await recover_account(client(fake), ledger, "sub1", [position()], TAG, NOW)
    assert ledger.list_maintenance() == []


async def test_captured_history_and_bad_rows(ledger: Ledger) -> None:
    [row] = json.loads((FIXTURES / "http_orders_history_swap.json").read_text())["data"]
    btc = position(inst_id="BTC-USDT-SWAP", c_time=1746947317000)
    fake = FakeOkx([dict(row, tag="maint"), {"instId": "X"}, "junk"])  # type: ignore[list-item]
    result = await recover_account(
        client(fake), ledger, "sub1", [btc], TAG, 1746947317402 + 1, sources=("orders",)
    )
    assert [r.ord_id for r in result.recorded] == ["2497956918703120384"]
    assert result.invalid == 2


async def test_bills_only_by_default(ledger: Ledger) -> None:
    fake = FakeOkx([order("a")], bills=[bill("b1", "viabill")])
    result = await recover_account(client(fake), ledger, "sub1", [position()], TAG, NOW)
    assert [r.ord_id for r in result.recorded] == ["viabill"]
    assert {r.url.path for r in fake.requests} == {"/api/v5/account/bills"}
    with pytest.raises(ValueError, match="sources"):
        await recover_account(client(fake), ledger, "sub1", [position()], TAG, NOW, sources=())
