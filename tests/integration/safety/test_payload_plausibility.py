"""Values no real position can have are invalid frames: never in the book, never acted on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reactor.okx.credentials import Credentials
from reactor.okx.models import PayloadError, parse_position
from reactor.okx.ws_protocol import PrivateChannelProtocol, Update

RAW: dict[str, Any] = {
    "instType": "SWAP",
    "instId": "CRO-USDT-SWAP",
    "mgnMode": "isolated",
    "posSide": "long",
    "pos": "108",
    "ccy": "USDT",
    "avgPx": "0.0905",
    "markPx": "0.095",
    "lever": "10",
    "margin": "20.29",
    "mmr": "0.41",
    "upl": "0.49",
    "notionalUsd": "102.6",
    "cTime": "1700000000000",
    "uTime": "1700000000000",
    "pTime": "1700000000500",
}


def test_the_seed_position_is_plausible() -> None:
    p = parse_position("a", RAW)
    assert p.p_time == 1_700_000_000_500 and p.margin is not None


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"margin": "-1"}, "margin: negative"),
        ({"margin": "NaN"}, "margin: not finite"),
        ({"margin": "1e30"}, "margin: implausible"),
        ({"margin": "5000000", "notionalUsd": "1"}, "absurd against notional"),
        ({"markPx": "0"}, "markPx: not positive"),
        ({"markPx": "-0.1"}, "markPx: not positive"),
        ({"pos": "-108"}, "negative for posSide long"),
        ({"pos": "1e15"}, "implausible size"),
        ({"pos": "1e12"}, "absurd against notional"),  # notional says ~108 contracts
        ({"lever": "0"}, "lever"),
        ({"lever": "100000"}, "lever"),
        ({"notionalUsd": "-5"}, "notionalUsd: negative"),
        ({"mmr": "-0.1"}, "mmr: negative"),
        ({"avgPx": "-1"}, "avgPx: negative"),
        ({"uTime": "-5"}, "negative"),
        ({"pos": "Infinity"}, "not finite"),
    ],
)
def test_impossible_values_are_refused(patch: dict[str, str], fragment: str) -> None:
    with pytest.raises(PayloadError) as err:
        parse_position("a", RAW | patch)
    assert fragment in str(err.value)


def test_net_mode_short_is_negative_and_fine() -> None:
    assert parse_position("a", RAW | {"posSide": "net", "pos": "-108"}).pos == -108


def test_a_push_with_an_impossible_value_is_an_invalid_item_on_the_wire() -> None:
    proto = PrivateChannelProtocol("a", Credentials("k-plaus", "s-plaus", "p-plaus"))
    frame = {
        "arg": {"channel": "positions", "instType": "SWAP"},
        "eventType": "event_update",
        "data": [RAW | {"margin": "-3"}, RAW | {"instId": "DOGE-USDT-SWAP"}],
    }
    (event,) = proto.receive(json.dumps(frame))
    assert isinstance(event, Update)
    assert [p.inst_id for p in event.positions] == ["DOGE-USDT-SWAP"]
    assert "margin: negative" in event.invalid[0].reason


_NUM = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "0", "-0", "1e400", "-1e-400", "abc"]),
)


@given(margin=_NUM, mark=_NUM, pos=_NUM, notional=_NUM, lever=_NUM)
def test_whatever_parses_is_plausible(
    margin: str, mark: str, pos: str, notional: str, lever: str
) -> None:
    raw = RAW | {"margin": margin, "markPx": mark, "pos": pos, "notionalUsd": notional}
    raw["lever"] = lever
    try:
        p = parse_position("a", raw)
    except PayloadError:
        return
    assert p.pos.is_finite() and p.pos >= 0
    assert p.margin is None or 0 <= p.margin <= 10**9
    assert p.mark_px is None or p.mark_px > 0
    assert p.lever is None or 0 < p.lever <= 1000
