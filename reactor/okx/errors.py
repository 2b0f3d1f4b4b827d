"""OKX error codes and how the reactor reads them (see docs/spec/okx-v5.md)."""

from __future__ import annotations

from enum import StrEnum


class ErrorClass(StrEnum):
    RATE_LIMIT = "rate_limit"
    TRANSIENT = "transient"
    AMBIGUOUS = "ambiguous"
    CLOCK_SKEW = "clock_skew"
    AUTH = "auth"
    PARAMETER = "parameter"
    POSITION_GONE = "position_gone"
    REDUCE_TOO_LARGE = "reduce_too_large"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    POSITION_FROZEN = "position_frozen"
    UNKNOWN = "unknown"


# code -> (class, OKX's message text)
CODES: dict[str, tuple[ErrorClass, str]] = {
    "50011": (ErrorClass.RATE_LIMIT, "Request too frequent."),
    "50013": (ErrorClass.TRANSIENT, "System is busy, please try again later."),
    "50026": (ErrorClass.TRANSIENT, "System error, please try again later."),
    "50004": (
        ErrorClass.AMBIGUOUS,
        "Endpoint request timeout (does not indicate success or failure of order, "
        "please check order status).",
    ),
    "50102": (ErrorClass.CLOCK_SKEW, "Timestamp request expired."),
    "50112": (ErrorClass.CLOCK_SKEW, "Invalid OK-ACCESS-TIMESTAMP."),
    "50111": (ErrorClass.AUTH, "Invalid OK-ACCESS-KEY."),
    "50113": (ErrorClass.AUTH, "Invalid Sign."),
    "50105": (ErrorClass.AUTH, "Invalid OK-ACCESS-PASSPHRASE."),
    "50103": (ErrorClass.AUTH, "Request header OK-ACCESS-KEY cannot be empty."),
    "50104": (ErrorClass.AUTH, "Request header OK-ACCESS-PASSPHRASE cannot be empty."),
    "50106": (ErrorClass.AUTH, "Request header OK-ACCESS-SIGN cannot be empty."),
    "50107": (ErrorClass.AUTH, "Request header OK-ACCESS-TIMESTAMP cannot be empty."),
    "50101": (ErrorClass.AUTH, "APIKey does not match current environment."),
    "50119": (ErrorClass.AUTH, "API key doesn't exist."),
    "50000": (ErrorClass.PARAMETER, "Body for POST request cannot be empty."),
    "50014": (ErrorClass.PARAMETER, "Parameter {0} cannot be empty."),
    "51000": (ErrorClass.PARAMETER, "Parameter {0} error"),
    "59300": (ErrorClass.POSITION_GONE, "Margin call failed. Position does not exist."),
    # Other codes OKX may use for a margin call without that isolated position (which one is
    # unknown, docs/spec/okx-fidelity.md §7.16): re-read the account rather than hold (DOC error
    # table).
    "51023": (ErrorClass.POSITION_GONE, "Position doesn't exist."),
    "51043": (ErrorClass.POSITION_GONE, "This isolated position doesn't exist."),
    "59301": (
        ErrorClass.REDUCE_TOO_LARGE,
        "Margin adjustment failed for exceeding the max limit.",
    ),
    "59200": (ErrorClass.INSUFFICIENT_BALANCE, "Insufficient account balance."),
    "51008": (ErrorClass.INSUFFICIENT_BALANCE, "Order failed. Insufficient balance."),
    "50020": (ErrorClass.POSITION_FROZEN, "Position frozen due to liquidation."),
    "50017": (ErrorClass.POSITION_FROZEN, "Position frozen due to ADL."),
    # TP/SL or close orders pending on the position (docs/spec/okx-fidelity.md §7.15): held by the
    # exchange like a frozen one; the engine holds until the position changes (a mark move included,
    # since an add may become necessary), never a retry loop.
    "59302": (
        ErrorClass.POSITION_FROZEN,
        "Margin adjustment failed due to pending close order. Please cancel any pending "
        "close orders.",
    ),
}

# HTTP status OKX uses for a code (business errors are 200).
HTTP_STATUS: dict[str, int] = {
    "50011": 429,
    "50004": 400,  # DOC error table (docs/spec/okx-fidelity.md §7.10); the envelope's code decides
    "50013": 429,
    "50026": 500,
    "51000": 400,
    "50000": 400,
    "50014": 400,
    "50102": 401,
    "50112": 401,
    "50111": 401,
    "50113": 401,
    "50105": 401,
    "50103": 401,
    "50104": 401,
    "50106": 401,
    "50107": 401,
    "50101": 401,
    "50119": 401,
}

# Private WebSocket error codes.
WS_LOGIN_FAILED = "60009"
WS_INVALID_KEY = "60005"
WS_TIMESTAMP_EXPIRED = "60006"
WS_INVALID_SIGN = "60007"
WS_NOT_LOGGED_IN = "60011"
WS_ILLEGAL_REQUEST = "60012"
WS_WRONG_PASSPHRASE = "60024"
WS_SERVICE_UPGRADE = "64008"
WS_AUTH_CODES = frozenset({WS_LOGIN_FAILED, WS_INVALID_KEY, WS_INVALID_SIGN, WS_WRONG_PASSPHRASE})


def classify(code: str) -> ErrorClass:
    entry = CODES.get(code)
    if entry is not None:
        return entry[0]
    if code.startswith("5") and len(code) == 3:  # bare HTTP 5xx
        return ErrorClass.TRANSIENT
    return ErrorClass.UNKNOWN


def message(code: str) -> str:
    entry = CODES.get(code)
    return entry[1] if entry else "Unknown error"


class OkxError(Exception):
    """An OKX error envelope (``code`` != "0"). Never carries credentials."""

    def __init__(self, code: str, msg: str, http_status: int = 200) -> None:
        super().__init__(f"OKX {code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status

    @property
    def error_class(self) -> ErrorClass:
        return classify(self.code)


class AmbiguousOutcome(Exception):
    """The request may have reached OKX but no answer came back: its effect is unknown."""

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class RequestNotSent(Exception):
    """Failed before anything was sent (connect error, refused, pool timeout): safe to retry."""
