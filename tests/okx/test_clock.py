"""One reading of OKX's clock per account: measured by the REST client, used by its signing
and by the WebSocket session's login (no second offset anywhere)."""

from __future__ import annotations

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
