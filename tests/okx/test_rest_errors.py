"""``_unwrap`` raises by class (issue 21 item 2): errors.py is the only ambiguity rule."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from reactor.okx.credentials import Credentials
from reactor.okx.errors import REST_CODES, AmbiguousOutcome, ErrorClass, Kind, OkxError
from reactor.okx.rest import MARGIN_BALANCE, POSITIONS, OkxRestClient

CREDS = Credentials("key-1", "secret-1", "pass-1")
AMBIGUOUS = sorted(c for c, e in REST_CODES.items() if e.cls.kind is Kind.AMBIGUOUS)


def answering(code: str, status: int, counter: list[int]) -> OkxRestClient:
    def handler(req: httpx.Request) -> httpx.Response:
        counter.append(1)
        return httpx.Response(status, json={"code": code, "msg": "text"})

    return OkxRestClient(
        "http://okx.test",
        CREDS,
        transport=httpx.MockTransport(handler),
        account="A",
        retry_backoff_s=0.001,
    )


def test_the_ambiguous_codes() -> None:
    assert AMBIGUOUS == ["50004", "50042", "51054", "51149"]


@pytest.mark.parametrize("code", AMBIGUOUS)
async def test_ambiguous_codes_on_margin_call_are_ambiguous_outcomes(code: str) -> None:
    calls: list[int] = []
    c = answering(code, REST_CODES[code].http, calls)
    with pytest.raises(AmbiguousOutcome) as info:
        await c.margin_balance("CRO-USDT-SWAP", "long", "add", Decimal("1"))
    await c.aclose()
    # The same exception, text and code as the 50004 special case had before.
    assert info.value.code == code
    assert str(info.value) == f"POST {MARGIN_BALANCE}: OKX {code}: text"
    assert calls == [1]  # never resent


async def test_unknown_code_with_5xx_is_ambiguous_not_a_rejection() -> None:
    calls: list[int] = []
    c = answering("51999", 500, calls)
    with pytest.raises(AmbiguousOutcome):
        await c.margin_balance("CRO-USDT-SWAP", "long", "add", Decimal("1"))
    await c.aclose()


@pytest.mark.parametrize(
    ("code", "cls"),
    [("50001", ErrorClass.TRANSIENT), ("50061", ErrorClass.RATE_LIMIT)],
)
async def test_transient_codes_are_rejections_to_retry(code: str, cls: ErrorClass) -> None:
    """On a margin call: an OkxError of a retryable class (nothing moved; the engine backs
    off); on a GET: retried by the client, then raised."""
    calls: list[int] = []
    c = answering(code, REST_CODES[code].http, calls)
    with pytest.raises(OkxError) as info:
        await c.margin_balance("CRO-USDT-SWAP", "long", "add", Decimal("1"))
    assert info.value.error_class is cls and cls.retryable and calls == [1]
    calls.clear()
    with pytest.raises(OkxError):
        await c.get_positions()
    assert len(calls) == 3  # get_retries=2
    await c.aclose()


async def test_ambiguous_get_is_retried() -> None:
    calls: list[int] = []
    c = answering("50004", 400, calls)
    with pytest.raises(AmbiguousOutcome) as info:
        await c.get_positions()
    assert info.value.code == "50004" and POSITIONS in str(info.value)
    assert len(calls) == 3
    await c.aclose()


@pytest.mark.parametrize("code", ["50113", "50120", "59300"])
async def test_final_codes_on_get_are_not_retried(code: str) -> None:
    calls: list[int] = []
    c = answering(code, REST_CODES[code].http, calls)
    with pytest.raises(OkxError):
        await c.get_positions()
    assert calls == [1]
    await c.aclose()
