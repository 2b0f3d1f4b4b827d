"""One reading of OKX's clock per account: measured by the REST client, used by its signing
and by the WebSocket session's login (no second offset anywhere)."""

from __future__ import annotations

import asyncio

import httpx

from reactor.okx.clock import ExchangeClock
from reactor.okx.credentials import Credentials
from reactor.okx.pacing import ConnectPacer
from reactor.okx.rest import OkxRestClient
from reactor.okx.ws import PrivateSession

CREDS = Credentials("key-1", "secret-1", "pass-1")


def test_offset_is_the_middle_of_the_round_trip() -> None:
    clock = ExchangeClock(lambda: 1_000.0)
    assert (clock.now(), clock.offset_s, clock.measurements) == (1_000.0, 0.0, 0)
    assert clock.measured(1_100_000, 999.0, 1_001.0) == 100.0
    assert (clock.now(), clock.now_ms(), clock.local(), clock.measurements) == (
        1_100.0,
        1_100_000,
        1_000.0,
        1,
    )


async def test_a_rest_sync_moves_the_clock_the_session_signs_with() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"code": "0", "msg": "", "data": [{"ts": "1100000"}]})

    shared = ExchangeClock(lambda: 1_000.0)
    rest = OkxRestClient(
        "http://okx.test", CREDS, transport=httpx.MockTransport(handler), clock=shared
    )
    session = PrivateSession(
        "A",
        "ws://okx.test",
        CREDS,
        handler=None,  # type: ignore[arg-type]  # never connected here
        pacer=ConnectPacer(),
        clock=rest.clock,
        resync_clock=rest.sync_clock,
    )
    assert rest.clock is shared and session.clock is shared
    assert await rest.sync_clock() == 100.0
    assert session.clock.now() == 1_100.0 and shared.measurements == 1
    await rest.aclose()


def test_a_plain_callable_is_the_local_clock_of_an_own_reading() -> None:
    rest = OkxRestClient("http://okx.test", CREDS, clock=lambda: 5.0)
    assert rest.clock.now() == 5.0 and rest.clock.offset_s == 0.0


def test_a_slow_round_trip_keeps_an_offset_it_agrees_with() -> None:
    """OKX stamped its answer inside the round trip, so the offset is within
    [server - after, server - before]; a reading already inside stays (a 20 s round trip
    under a burst would otherwise move it by up to 10 s), one outside (a clock step) goes."""
    clock = ExchangeClock(lambda: 1_000.0)
    clock.measured(1_100_000, 999.9, 1_000.1)  # tight: offset 100.0
    assert clock.measured(1_105_000, 990.0, 1_010.0) == 100.0  # interval [95, 115]: agrees
    assert clock.measured(1_104_000, 1_003.9, 1_004.1) == 100.0  # tight, [99.9, 100.1]: agrees
    assert clock.measured(4_700_000, 999.0, 1_001.0) == 3_700.0  # stepped by 1 h: replaced
    assert clock.measurements == 4


def test_the_first_reading_is_taken_whatever_its_round_trip() -> None:
    clock = ExchangeClock(lambda: 1_000.0)
    assert clock.measured(1_000_000, 990.0, 1_010.0) == 0.0  # [-10, 10] contains 0, but unmeasured
    assert clock.measurements == 1


async def test_accounts_asking_at_once_share_one_time_read() -> None:
    reads: list[str] = []

    async def handler(req: httpx.Request) -> httpx.Response:
        reads.append(req.url.path)
        await asyncio.sleep(0.01)  # a round trip: the other accounts ask meanwhile
        return httpx.Response(200, json={"code": "0", "msg": "", "data": [{"ts": "1100000"}]})

    shared = ExchangeClock(lambda: 1_000.0)
    transport = httpx.MockTransport(handler)
    clients = [
        OkxRestClient("http://okx.test", CREDS, transport=transport, clock=shared)
        for _ in range(10)
    ]
    offsets = await asyncio.gather(*(c.sync_clock() for c in clients))
    assert offsets == [100.0] * 10 and reads == ["/api/v5/public/time"]
    # a rejection of a request signed before that reading (seen 0) uses it, no new read
    assert await clients[0].sync_clock(seen=0) == 100.0 and len(reads) == 1
    # one signed with it (seen 1) was refused anyway: the reading is questioned, read again
    assert await clients[0].sync_clock(seen=1) == 100.0 and len(reads) == 2
    for c in clients:
        await c.aclose()
