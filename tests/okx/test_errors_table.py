"""The one OKX code table (issue 21 item 4): one class per code, each with its source."""

from __future__ import annotations

import pytest

from reactor.okx import errors
from reactor.okx.errors import (
    CLOSE_CODES,
    REST_CODES,
    WS_AUTH_CODES,
    WS_CODES,
    AmbiguousOutcome,
    ErrorClass,
    Kind,
    OkxError,
    classify,
    classify_close,
    classify_ws,
    envelope_error,
)

# The table before issue 21: none of these meanings changes.
BEFORE = {
    "50011": ErrorClass.RATE_LIMIT,
    "50013": ErrorClass.TRANSIENT,
    "50026": ErrorClass.TRANSIENT,
    "50004": ErrorClass.AMBIGUOUS,
    "50102": ErrorClass.CLOCK_SKEW,
    "50112": ErrorClass.CLOCK_SKEW,
    **{c: ErrorClass.AUTH for c in ("50111", "50113", "50105", "50103", "50104", "50106")},
    **{c: ErrorClass.AUTH for c in ("50107", "50101", "50119")},
    **{c: ErrorClass.PARAMETER for c in ("50000", "50014", "51000")},
    **{c: ErrorClass.POSITION_GONE for c in ("59300", "51023", "51043")},
    "59301": ErrorClass.REDUCE_TOO_LARGE,
    "59200": ErrorClass.INSUFFICIENT_BALANCE,
    "51008": ErrorClass.INSUFFICIENT_BALANCE,
    **{c: ErrorClass.POSITION_FROZEN for c in ("50020", "50017", "59302")},
}


@pytest.mark.parametrize(("code", "cls"), sorted(BEFORE.items()))
def test_existing_meanings_kept(code: str, cls: ErrorClass) -> None:
    assert classify(code) is cls


@pytest.mark.parametrize(
    ("code", "cls", "kind", "status"),
    [
        ("50001", ErrorClass.TRANSIENT, Kind.TRANSIENT, 503),
        ("50061", ErrorClass.RATE_LIMIT, Kind.RATE_LIMIT, 200),
        ("50004", ErrorClass.AMBIGUOUS, Kind.AMBIGUOUS, 400),
        ("51149", ErrorClass.AMBIGUOUS, Kind.AMBIGUOUS, 500),
        ("50113", ErrorClass.AUTH, Kind.CREDENTIALS, 401),
        ("50110", ErrorClass.PERMISSION, Kind.PERMISSION, 401),
        ("50120", ErrorClass.PERMISSION, Kind.PERMISSION, 200),
        ("50102", ErrorClass.CLOCK_SKEW, Kind.CLOCK, 401),
        ("59105", ErrorClass.PARAMETER, Kind.REJECTION, 400),
    ],
)
def test_issue_codes(code: str, cls: ErrorClass, kind: Kind, status: int) -> None:
    assert classify(code) is cls and cls.kind is kind
    assert REST_CODES[code].http == status
    assert errors.HTTP_STATUS.get(code, 200) == status


def test_websocket_codes() -> None:
    assert classify_ws("60032") is ErrorClass.AUTH
    assert "60032" in WS_AUTH_CODES and "60006" not in WS_AUTH_CODES
    assert classify_ws("60006").kind is Kind.CLOCK and classify_ws("60004").kind is Kind.CLOCK
    assert classify_ws("63999") is ErrorClass.TRANSIENT
    assert classify_ws("64008") is ErrorClass.TRANSIENT
    assert classify_close(4007) is ErrorClass.AUTH and classify_close(4007).stops_account
    assert classify_close(4004).retryable and classify_close(1006).retryable
    assert classify_close(None) is ErrorClass.TRANSIENT
    assert sorted(CLOSE_CODES) == [1009, *range(4001, 4010)]
    assert set(WS_CODES) >= {"60004", "60005", "60006", "60007", "60009", "60024", "64008"}


def test_every_entry_has_one_class_and_a_source() -> None:
    seen_kinds: set[Kind] = set()
    for table in (REST_CODES, WS_CODES, CLOSE_CODES):
        for code, entry in table.items():
            assert isinstance(entry.cls, ErrorClass), code
            assert entry.source in (errors.DOC_ERR, errors.DOC_WSERR), code
            assert entry.msg, code
            seen_kinds.add(entry.cls.kind)
    assert seen_kinds == set(Kind)  # the seven classes are all used
    for code, entry in REST_CODES.items():
        assert entry.http in (200, 400, 401, 403, 405, 410, 429, 500, 503), code
        # OKX's own families: 5xxxx REST; the WS table is 6xxxx.
        assert code in ("1", "2") or code[:2] in ("50", "51", "52", "54", "59"), code
    assert all(c.startswith(("60", "63", "64")) for c in WS_CODES)
    assert all(isinstance(c.kind, Kind) for c in ErrorClass)


def test_sub_codes_share_their_code() -> None:
    assert classify("51008_1000") is ErrorClass.INSUFFICIENT_BALANCE
    assert errors.message("51008_1001") == errors.message("51008")


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (200, ErrorClass.UNKNOWN),
        (400, ErrorClass.UNKNOWN),
        (401, ErrorClass.AUTH),
        (403, ErrorClass.PERMISSION),
        (429, ErrorClass.RATE_LIMIT),
        (500, ErrorClass.AMBIGUOUS),
        (503, ErrorClass.AMBIGUOUS),
    ],
)
def test_unknown_code_default(status: int, cls: ErrorClass) -> None:
    assert classify("58999", status) is cls
    assert OkxError("58999", "new", status).error_class is cls


def test_bare_gateway_status_is_transient() -> None:
    assert classify("502") is ErrorClass.TRANSIENT and classify("503", 503).retryable


def test_envelope_error_is_the_one_ambiguity_rule() -> None:
    amb = envelope_error("POST /x", "50004", "timeout", 400)
    assert isinstance(amb, AmbiguousOutcome) and amb.code == "50004"
    assert str(amb) == "POST /x: OKX 50004: timeout"
    for code in ("51149", "51054", "50042"):
        assert isinstance(envelope_error("POST /x", code, "m", 200), AmbiguousOutcome)
    rej = envelope_error("POST /x", "59301", "max", 200)
    assert isinstance(rej, OkxError) and rej.error_class is ErrorClass.REDUCE_TOO_LARGE
    transient = envelope_error("POST /x", "50001", "busy", 503)
    assert isinstance(transient, OkxError) and transient.kind is Kind.TRANSIENT
