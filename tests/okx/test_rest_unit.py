"""OkxRestClient envelope/error mapping and signing, over httpx.MockTransport (no exchange)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
import structlog

from reactor.okx.credentials import Credentials
from reactor.okx.errors import AmbiguousOutcome, ErrorClass, OkxError, RequestNotSent
from reactor.okx.rest import OkxRestClient
from reactor.okx.signing import parse_iso_timestamp, rest_sign

CREDS = Credentials("key-1", "secret-1", "pass-1")
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, **kw: Any) -> OkxRestClient:
    kw.setdefault("retry_backoff_s", 0.001)
    return OkxRestClient(
        "http://okx.test", CREDS, transport=httpx.MockTransport(handler), account="A", **kw
    )


def ok(data: list[Any]) -> httpx.Response:
    return httpx.Response(200, json={"code": "0", "msg": "", "data": data})


async def test_signed_get_headers_and_query() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return ok([{"instId": "CRO-USDT-SWAP"}])

    c = client(handler, simulated=True, clock=lambda: 1_607_418_537.715)
    assert await c.get_positions() == [{"instId": "CRO-USDT-SWAP"}]
    assert await c.get_positions(inst_id="CRO-USDT-SWAP")
    await c.aclose()
    req = seen[0]
    assert req.url.raw_path == b"/api/v5/account/positions?instType=SWAP"
    h = req.headers
    assert h["OK-ACCESS-KEY"] == "key-1" and h["OK-ACCESS-PASSPHRASE"] == "pass-1"
    assert h["OK-ACCESS-TIMESTAMP"] == "2020-12-08T09:08:57.715Z"
    assert h["x-simulated-trading"] == "1"
    expected = rest_sign(
        "secret-1", "2020-12-08T09:08:57.715Z", "GET", "/api/v5/account/positions?instType=SWAP", ""
    )
    assert h["OK-ACCESS-SIGN"] == expected
    assert seen[1].url.raw_path == b"/api/v5/account/positions?instType=SWAP&instId=CRO-USDT-SWAP"


async def test_margin_balance_body_is_signed_exactly_and_amt_plain() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return ok(
            [{"instId": "CRO-USDT-SWAP", "posSide": "long", "amt": "10.29", "type": "reduce"}]
        )

    c = client(handler)
    out = await c.margin_balance("CRO-USDT-SWAP", "long", "reduce", Decimal("1.029E+1"))
    await c.aclose()
    assert out["amt"] == "10.29"
    req = seen[0]
    body = req.content.decode()
    assert json.loads(body) == {
        "instId": "CRO-USDT-SWAP",
        "posSide": "long",
        "type": "reduce",
        "amt": "10.29",
    }
    ts = req.headers["OK-ACCESS-TIMESTAMP"]
    assert req.headers["OK-ACCESS-SIGN"] == rest_sign(
        "secret-1", ts, "POST", "/api/v5/account/position/margin-balance", body
    )
    assert "x-simulated-trading" not in req.headers


async def test_margin_balance_rejects_bad_arguments_before_sending() -> None:
    c = client(lambda req: pytest.fail("must not send"))
    with pytest.raises(ValueError):
        await c.margin_balance("X", "long", "withdraw", Decimal("1"))
    with pytest.raises(ValueError):
        await c.margin_balance("X", "long", "add", Decimal("0"))
    with pytest.raises(ValueError):
        await c.margin_balance("X", "long", "add", Decimal("NaN"))
    await c.aclose()


@pytest.mark.parametrize(
    ("status", "body", "code", "cls"),
    [
        (
            200,
            {"code": "59301", "msg": "max limit", "data": []},
            "59301",
            ErrorClass.REDUCE_TOO_LARGE,
        ),
        (200, {"code": "59300", "msg": "gone"}, "59300", ErrorClass.POSITION_GONE),
        (429, {"code": "50011", "msg": "Request too frequent."}, "50011", ErrorClass.RATE_LIMIT),
        (401, {"code": "50105", "msg": "passphrase incorrect"}, "50105", ErrorClass.AUTH),
        (400, {"code": "51000", "msg": "Parameter amt error"}, "51000", ErrorClass.PARAMETER),
        (500, {"code": "50026", "msg": "System error"}, "50026", ErrorClass.TRANSIENT),
        (502, "<html>Bad Gateway</html>", "502", ErrorClass.TRANSIENT),
        (503, None, "503", ErrorClass.TRANSIENT),
        (200, "not json", "200", ErrorClass.UNKNOWN),
        (200, [1, 2], "200", ErrorClass.UNKNOWN),
    ],
)
async def test_error_mapping_on_margin_call(
    status: int, body: Any, code: str, cls: ErrorClass
) -> None:
    calls = 0

    def handler(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        if body is None:
            return httpx.Response(status)
        return httpx.Response(status, json=body)

    c = client(handler)
    with pytest.raises(OkxError) as info:
        await c.margin_balance("CRO-USDT-SWAP", "long", "add", Decimal("1"))
    await c.aclose()
    assert info.value.code == code
    assert info.value.http_status == status
    assert info.value.error_class is cls
    assert calls == 1  # margin calls are never retried by the client


async def test_50004_is_ambiguous() -> None:
    c = client(
        lambda req: (
            ok([]) if False else httpx.Response(200, json={"code": "50004", "msg": "timeout"})
        )
    )
    with pytest.raises(AmbiguousOutcome) as info:
        await c.margin_balance("CRO-USDT-SWAP", "long", "add", Decimal("1"))
    assert info.value.code == "50004"
    await c.aclose()


async def test_connect_error_is_not_sent_read_timeout_is_ambiguous() -> None:
    def refuse(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=req)

    def read_timeout(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=req)

    def reset(req: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected", request=req)

    cases = [(refuse, RequestNotSent), (read_timeout, AmbiguousOutcome), (reset, AmbiguousOutcome)]
    for handler, exc in cases:
        c = client(handler)
        with pytest.raises(exc):
            await c.margin_balance("CRO-USDT-SWAP", "long", "add", Decimal("1"))
        await c.aclose()


async def test_get_retries_transient_then_succeeds_but_not_parameter_errors() -> None:
    answers = [
        httpx.Response(500, json={"code": "50026", "msg": "System error"}),
        httpx.Response(429, json={"code": "50011", "msg": "Request too frequent."}),
        ok([{"ccy": "USDT"}]),
    ]
    c = client(lambda req: answers.pop(0))
    assert await c.get_balance() == [{"ccy": "USDT"}]
    assert answers == []
    calls = 0

    def bad(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(400, json={"code": "51000", "msg": "Parameter instType error"})

    c2 = client(bad)
    with pytest.raises(OkxError):
        await c2.get_positions()
    assert calls == 1
    await c.aclose()
    await c2.aclose()


async def test_get_gives_up_after_retries() -> None:
    calls = 0

    def handler(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("refused", request=req)

    c = client(handler, get_retries=2)
    with pytest.raises(RequestNotSent):
        await c.get_positions()
    assert calls == 3
    await c.aclose()


async def test_50102_resyncs_clock_once_and_retries_get() -> None:
    server_now = 1_700_000_100.0  # local clock is 100 s behind
    stamps: list[float] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/v5/public/time":
            assert "OK-ACCESS-SIGN" not in req.headers
            return ok([{"ts": str(int(server_now * 1000))}])
        ts = parse_iso_timestamp(req.headers["OK-ACCESS-TIMESTAMP"])
        stamps.append(ts)
        if abs(ts - server_now) > 30:
            return httpx.Response(401, json={"code": "50102", "msg": "Timestamp request expired"})
        return ok([])

    c = client(handler, clock=lambda: 1_700_000_000.0)
    assert await c.get_positions() == []
    assert len(stamps) == 2
    assert abs(c.clock.offset_s - 100.0) < 0.01
    await c.aclose()


async def test_50102_on_margin_call_resyncs_but_does_not_resend() -> None:
    margin_calls = 0

    def handler(req: httpx.Request) -> httpx.Response:
        nonlocal margin_calls
        if req.url.path == "/api/v5/public/time":
            return ok([{"ts": "1700000100000"}])
        margin_calls += 1
        return httpx.Response(401, json={"code": "50102", "msg": "Timestamp request expired"})

    c = client(handler, clock=lambda: 1_700_000_000.0)
    with pytest.raises(OkxError) as info:
        await c.margin_balance("CRO-USDT-SWAP", "long", "add", Decimal("1"))
    assert info.value.error_class is ErrorClass.CLOCK_SKEW
    assert margin_calls == 1 and abs(c.clock.offset_s - 100.0) < 0.01
    await c.aclose()


async def test_public_endpoints_unsigned() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        assert "OK-ACCESS-KEY" not in req.headers
        assert req.url.raw_path == b"/api/v5/public/instruments?instType=SWAP"
        return ok([{"instId": "CRO-USDT-SWAP", "ctVal": "10"}])

    c = client(handler)
    assert (await c.get_instruments())[0]["ctVal"] == "10"
    await c.aclose()


async def test_errors_and_repr_never_contain_secrets() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=req)

    c = client(handler)
    with pytest.raises(AmbiguousOutcome) as info:
        await c.margin_balance("CRO-USDT-SWAP", "long", "add", Decimal("1"))
    text = f"{info.value!s} {info.value!r} {c!r}"
    for secret in ("secret-1", "pass-1", "key-1"):
        assert secret not in text
    await c.aclose()


# --- never leak: OKX texts and transport errors that quote the request -----------------------


def _header_dump(req: httpx.Request) -> str:
    return json.dumps({k: v for k, v in req.headers.items()})


@pytest.mark.parametrize("code", ["50111", "50113", "50105", "51000"])
async def test_error_texts_quoting_the_request_are_scrubbed(code: str) -> None:
    signs: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        signs.append(req.headers["OK-ACCESS-SIGN"])
        msg = f"Invalid request, headers: {_header_dump(req)}"
        return httpx.Response(401, json={"code": code, "msg": msg})

    c = client(handler)
    with pytest.raises(OkxError) as info:
        await c.margin_balance("CRO-USDT-SWAP", "long", "add", Decimal("1"))
    text = f"{info.value!s} {info.value.msg}"
    assert info.value.code == code and "headers" in text
    for secret in ("secret-1", "pass-1", "key-1", signs[0]):
        assert secret not in text
    await c.aclose()


@pytest.mark.parametrize(
    ("error", "expected"),
    [(httpx.ConnectError, RequestNotSent), (httpx.RemoteProtocolError, AmbiguousOutcome)],
)
async def test_transport_errors_quoting_headers_are_scrubbed(
    error: type[httpx.TransportError], expected: type[Exception]
) -> None:
    signs: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        signs.append(req.headers["OK-ACCESS-SIGN"])
        raise error(f"failed with {dict(req.headers)!r}", request=req)

    c = client(handler, get_retries=0)
    with pytest.raises(expected) as info:
        await c.get_positions()
    text = f"{info.value!s} {info.value!r}"
    assert "failed with" in text
    for secret in ("secret-1", "pass-1", "key-1", signs[0]):
        assert secret not in text
    await c.aclose()


# --- clock drift: re-sync every time, back off when rejections repeat -----------------------


async def test_a_second_clock_step_is_resynced_again() -> None:
    server = {"now": 1_700_000_100.0}  # local clock stays at 1_700_000_000
    syncs = 0

    def handler(req: httpx.Request) -> httpx.Response:
        nonlocal syncs
        if req.url.path == "/api/v5/public/time":
            syncs += 1
            return ok([{"ts": str(int(server["now"] * 1000))}])
        ts = parse_iso_timestamp(req.headers["OK-ACCESS-TIMESTAMP"])
        if abs(ts - server["now"]) > 30:
            return httpx.Response(401, json={"code": "50102", "msg": "Timestamp request expired"})
        return ok([])

    c = client(handler, clock=lambda: 1_700_000_000.0, clock_sync_backoff_s=0.001)
    assert await c.get_positions() == []
    server["now"] = 1_700_000_000.0 - 500  # the host clock stepped again
    assert await c.get_positions() == []
    server["now"] = 1_700_000_000.0 + 3600
    assert await c.get_positions() == []
    assert syncs == 3 and abs(c.clock.offset_s - 3600) < 0.01
    assert c.skew_streak == 0
    await c.aclose()


async def test_repeated_clock_rejections_back_off_between_resyncs() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/v5/public/time":
            return ok([{"ts": "1700000000000"}])
        return httpx.Response(401, json={"code": "50102", "msg": "Timestamp request expired"})

    c = client(handler, clock=lambda: 1_700_000_000.0, clock_sync_backoff_s=0.001)
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            with pytest.raises(OkxError):
                await c.get_positions()
    backoffs = [e["rejections"] for e in logs if e["event"] == "rest.clock.backoff"]
    assert backoffs == [2, 3]
    assert c.skew_streak == 3
    await c.aclose()
