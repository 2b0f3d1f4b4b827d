"""Issue 21 item 6: every parser of outside input has a size and depth limit and refuses
cleanly (before: 4 KB of nested brackets made /api/pause and /api/maintenance answer 500, a
RecursionError escaping the body parser)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reactor.api.auth import MAX_BODY, BadRequest
from reactor.api.maintenance import parse_request as parse_maintenance
from reactor.api.pause import parse_request
from reactor.config import CONFIG_MAX_DEPTH, ConfigError, load_config
from reactor.limits import JSON_MAX_DEPTH, InputRejected, deeper_than, loads_limited
from reactor.okx.credentials import Credentials
from reactor.okx.errors import OkxError
from reactor.okx.rest import OkxRestClient
from reactor.okx.ws_protocol import InvalidFrame, PrivateChannelProtocol

OPEN = st.sampled_from(["[", "{", '{"a":', "[1,", '{"k":['])
CLOSE = {"[": "]", "{": "}", '{"a":': "}", "[1,": "]", '{"k":[': "]}"}


@st.composite
def nested(draw: st.DrawFn, max_depth: int = 3000) -> tuple[str, int]:
    """A JSON-ish text nested ``depth`` levels (possibly cut short, i.e. invalid)."""
    depth = draw(st.integers(0, max_depth))
    opens = [draw(OPEN) for _ in range(min(depth, 50))]
    opens = (opens * (depth // max(len(opens), 1) + 1))[:depth]
    closing = "".join(CLOSE[o] for o in reversed(opens))
    cut = draw(st.integers(0, len(closing)))
    return "".join(opens) + "0" + closing[: len(closing) - cut], depth


def _level(opens: str) -> int:
    return sum(opens.count(c) for c in "[{")


junk = st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
inputs = st.one_of(nested().map(lambda t: t[0]), junk)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(inputs)
def test_loads_limited_returns_or_refuses(text: str) -> None:
    try:
        value = loads_limited(text, max_bytes=64 * 1024)
    except InputRejected as exc:
        assert exc.reason in ("too large", "too deep", "not JSON", "not UTF-8")
        return
    assert not deeper_than(value, JSON_MAX_DEPTH)
    assert value == json.loads(text)


@FAST
@given(st.integers(JSON_MAX_DEPTH + 1, 100_000))
def test_too_deep_is_refused_as_such(depth: int) -> None:
    text = "[" * depth + "]" * depth
    with pytest.raises(InputRejected) as info:
        loads_limited(text, max_bytes=1 << 20)
    assert info.value.reason == "too deep"


def test_just_deep_enough_is_taken() -> None:
    n = JSON_MAX_DEPTH
    assert loads_limited("[" * n + "]" * n, max_bytes=1 << 20) is not None


@FAST
@given(st.one_of(inputs.map(str.encode), st.binary(max_size=MAX_BODY + 10)))
def test_local_api_bodies_are_400_never_500(body: bytes) -> None:
    """Both APIs' parsers raise only BadRequest (their handlers answer it with 400)."""
    for parse in (parse_request, parse_maintenance):
        try:
            parse(body)
        except BadRequest as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 300


@pytest.mark.parametrize("parse", [parse_request, parse_maintenance])
def test_4kb_of_brackets_is_a_clean_400(parse: Any) -> None:
    for body in (b"[" * 4096, b'{"account":' * 370 + b"1" + b"}" * 370):
        with pytest.raises(BadRequest):
            parse(body[:MAX_BODY])


@FAST
@given(inputs)
def test_websocket_frames_never_raise(text: str) -> None:
    proto = PrivateChannelProtocol("A", Credentials("k", "s", "p"))
    events = proto.receive(text)
    assert isinstance(events, list) and events


def test_deep_frame_is_an_invalid_frame() -> None:
    proto = PrivateChannelProtocol("A", Credentials("k", "s", "p"))
    (event,) = proto.receive('{"data":' * 5000 + "1" + "}" * 5000)
    assert isinstance(event, InvalidFrame) and "deeper" in event.reason


@FAST
@given(st.one_of(nested(5_000).map(lambda t: t[0]), junk), st.sampled_from([200, 400, 500]))
async def test_rest_answers_raise_only_client_errors(body: str, status: int) -> None:
    client = OkxRestClient(
        "http://okx.test",
        Credentials("k", "s", "p"),
        transport=httpx.MockTransport(lambda req: httpx.Response(status, text=body)),
        get_retries=0,
    )
    try:
        await client.get_balance()
    except OkxError:
        pass
    finally:
        await client.aclose()


def test_deep_rest_answer_is_refused_by_name() -> None:
    import asyncio

    body = '{"code":"0","data":' + "[" * 5000 + "]" * 5000 + "}"
    client = OkxRestClient(
        "http://okx.test",
        Credentials("k", "s", "p"),
        transport=httpx.MockTransport(lambda req: httpx.Response(200, text=body)),
    )

    async def go() -> None:
        try:
            with pytest.raises(OkxError) as info:
                await client.get_balance()
            assert "deeper" in info.value.msg
        finally:
            await client.aclose()

    asyncio.run(go())


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2_000), st.sampled_from(["[", "{a: ", "- "]))
def test_config_loader_refuses_deep_yaml_cleanly(depth: int, open_: str) -> None:
    import tempfile

    text = {"[": "[" * depth + "]" * depth, "{a: ": "{a: " * depth + "1" + "}" * depth}.get(
        open_, "".join("  " * i + "- \n" for i in range(min(depth, 400)))
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text)
        try:
            load_config(path)
        except ConfigError as exc:
            if depth > CONFIG_MAX_DEPTH and open_ != "- ":
                assert "deeper" in str(exc)


def test_oversized_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)
