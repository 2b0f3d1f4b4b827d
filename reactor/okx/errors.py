"""OKX's error codes and the one meaning the reactor gives each.

Every OKX answer that is not a success is read here and nowhere else: REST codes (with the HTTP
status OKX documents for each), private WebSocket error codes and WebSocket close codes. Each
code has exactly one :class:`ErrorClass`, and each class belongs to one of seven
:class:`Kind` s that say what may be done next:

- ``credentials``: the key, secret or passphrase is wrong or gone: stop the account, alert;
- ``permission``: the key works but may not do this (IP allow-list, read-only key, compliance
  block): stop the account, alert; retrying cannot help;
- ``transient``: OKX could not serve it now and says so (nothing happened): retry with back-off;
- ``rate_limit``: too many requests: retry with back-off;
- ``ambiguous``: it may have been applied (50004, 51149, a timeout): never resent blindly,
  resolved from the account's state or bills first;
- ``rejection``: OKX refused it and nothing happened; the finer class says why (position gone,
  reduce too large, balance, frozen, parameter), and the engine reacts to that;
- ``clock``: our timestamp was refused: re-sync with OKX's clock, then retry.

Sources, cited per entry: DOC-ERR (OKX docs "Error Code / REST API", general, API, trade and
account classes, with their HTTP statuses, updated 2026-07-20/22), DOC-WSERR (OKX docs "Error
Code / WebSocket", 60004-64008 and the close-frame table, updated 2026-07-20). Both are listed
in docs/spec/okx-fidelity.md §11.0. The tables hold every general (50000-50077), API
(50100-50122) and WebSocket code, and the trade (51xxx/54xxx) and account (59xxx) codes of the
endpoints and states the reactor meets; the rest of those families are order, bot, loan and
sub-account management codes the reactor never calls.

Unknown codes (not in these tables) get a conservative default, by the HTTP status that came
with them (see :func:`classify`): 401 credentials, 403 permission, 429 rate limit, any 5xx
ambiguous (OKX's 5xx envelopes are timeouts and system errors: 50026, 51054, 51149), else
:attr:`ErrorClass.UNKNOWN`, a rejection the engine holds until the position changes, never a
retry loop and never read as success. A bare HTTP 5xx without an OKX envelope (a gateway) is
transient for an idempotent read; the margin-call path reads it as ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What may be done after an error (seven classes)."""

    CREDENTIALS = "credentials"
    PERMISSION = "permission"
    TRANSIENT = "transient"
    RATE_LIMIT = "rate_limit"
    AMBIGUOUS = "ambiguous"
    REJECTION = "rejection"
    CLOCK = "clock"


class ErrorClass(StrEnum):
    """One code's meaning. The values other modules use are kept; :attr:`kind` groups them."""

    RATE_LIMIT = "rate_limit"
    TRANSIENT = "transient"
    AMBIGUOUS = "ambiguous"
    CLOCK_SKEW = "clock_skew"
    AUTH = "auth"  # credentials
    PERMISSION = "permission"
    PARAMETER = "parameter"
    POSITION_GONE = "position_gone"
    REDUCE_TOO_LARGE = "reduce_too_large"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    POSITION_FROZEN = "position_frozen"
    UNKNOWN = "unknown"

    @property
    def kind(self) -> Kind:
        return _KIND_OF.get(self, Kind.REJECTION)

    @property
    def stops_account(self) -> bool:
        """Retrying cannot help until a human changes the key or its rights."""
        return self.kind in (Kind.CREDENTIALS, Kind.PERMISSION)

    @property
    def retryable(self) -> bool:
        """The same request may succeed later, after a back-off (nothing happened)."""
        return self.kind in (Kind.TRANSIENT, Kind.RATE_LIMIT)


_KIND_OF: dict[ErrorClass, Kind] = {
    ErrorClass.RATE_LIMIT: Kind.RATE_LIMIT,
    ErrorClass.TRANSIENT: Kind.TRANSIENT,
    ErrorClass.AMBIGUOUS: Kind.AMBIGUOUS,
    ErrorClass.CLOCK_SKEW: Kind.CLOCK,
    ErrorClass.AUTH: Kind.CREDENTIALS,
    ErrorClass.PERMISSION: Kind.PERMISSION,
}


@dataclass(frozen=True, slots=True)
class Entry:
    """One published code: its class, the HTTP status OKX sends it with, its text, its source."""

    cls: ErrorClass
    http: int
    msg: str
    source: str


DOC_ERR = "DOC-ERR"
DOC_WSERR = "DOC-WSERR"

_A = ErrorClass.AUTH
_P = ErrorClass.PERMISSION
_T = ErrorClass.TRANSIENT
_R = ErrorClass.RATE_LIMIT
_M = ErrorClass.AMBIGUOUS
_C = ErrorClass.CLOCK_SKEW
_X = ErrorClass.PARAMETER
_G = ErrorClass.POSITION_GONE
_L = ErrorClass.REDUCE_TOO_LARGE
_B = ErrorClass.INSUFFICIENT_BALANCE
_F = ErrorClass.POSITION_FROZEN

# fmt: off
# REST: code -> (class, HTTP status, OKX's message). DOC-ERR unless noted.
_REST: dict[str, tuple[ErrorClass, int, str]] = {
    # General class
    "1": (_X, 200, "Operation failed."),
    "2": (_X, 200, "Bulk operation partially succeeded."),
    "50000": (_X, 400, "Body for POST request cannot be empty."),
    "50001": (_T, 503, "Service temporarily unavailable. Please try again later."),
    "50002": (_X, 400, "JSON syntax error"),
    "50004": (_M, 400, "API endpoint request timeout. (does not mean that the request was "
                       "successful or failed, please check the request result)."),
    "50005": (_T, 410, "API endpoint is inactive or unavailable."),
    "50006": (_X, 400, "Invalid Content-Type. Please use \"application/JSON\"."),
    "50007": (_P, 200, "User blocked."),
    "50008": (_A, 200, "User doesn't exist."),
    "50009": (_F, 200, "Account is frozen due to stop-out."),
    "50010": (_X, 200, "User ID cannot be empty."),
    # Listed twice: 200 "Rate limit reached. ..." and 429 "Too Many Requests".
    "50011": (_R, 429, "Too Many Requests"),
    "50012": (_P, 200, "Account status invalid. Check account status"),
    "50013": (_T, 429, "Systems are busy. Please try again later."),
    "50014": (_X, 400, "Parameter {param0} can not be empty."),
    "50015": (_X, 400, "Either parameter {param0} or {param1} is required"),
    "50016": (_X, 400, "Parameter {param0} does not match parameter {param1}"),
    "50017": (_F, 200, "Position frozen and related operations restricted due to "
                       "auto-deleveraging (ADL). Please try again later."),
    "50018": (_F, 200, "Currency {param0} is frozen due to ADL. Operation restricted."),
    "50019": (_F, 200, "Account frozen and related operations restricted due to "
                       "auto-deleveraging (ADL). Please try again later."),
    "50020": (_F, 200, "Position frozen and related operations restricted due to forced "
                       "liquidation. Please try again later."),
    "50021": (_F, 200, "Currency {param0} is frozen due to liquidation. Operation restricted."),
    "50022": (_F, 200, "Account frozen and related operations restricted due to forced "
                       "liquidation. Please try again later."),
    "50023": (_F, 200, "Funding fees frozen and related operations are restricted. Please try "
                       "again later."),
    "50024": (_X, 200, "Parameter {param0} and {param1} can not exist at the same time."),
    "50025": (_X, 200, "Parameter {param0} count exceeds the limit {param1}."),
    "50026": (_T, 500, "System error. Try again later"),
    "50027": (_P, 200, "This account is restricted from trading. Please contact customer "
                       "support for assistance."),
    "50028": (_P, 200, "Unable to place the order. Please contact the customer service for "
                       "details."),
    "50029": (_P, 200, "Your account has triggered OKX risk control and is temporarily "
                       "restricted from conducting transactions."),
    "50030": (_P, 200, "You don't have permission to use this API endpoint"),
    "50032": (_P, 200, "Your account has been set to prohibit transactions in this currency. "
                       "Please confirm and try again"),
    "50033": (_P, 200, "Instrument blocked. Please verify trading this instrument is allowed "
                       "under account settings and try again."),
    "50035": (_P, 403, "This endpoint requires that APIKey must be bound to IP"),
    "50036": (_X, 200, "The expTime can't be earlier than the current system time."),
    "50037": (_X, 200, "Order expired."),
    "50038": (_P, 200, "This feature is unavailable in demo trading"),
    "50039": (_X, 200, "Parameter \"before\" isn't supported for timestamp pagination"),
    "50040": (_R, 200, "Too frequent operations, please try again later"),
    "50041": (_P, 200, "Your user ID hasn't been allowlisted. Please contact customer service "
                       "for assistance."),
    # A repeat of a request OKX already has: whether the first one applied is for the account's
    # state and bills to say, never for a resend.
    "50042": (_M, 200, "Repeated request"),
    "50044": (_X, 200, "Must select one broker type"),
    "50045": (_X, 200, "simPos should be empty because simulated positions cannot be counted "
                       "when Position Builder is calculating under Spot-Derivatives risk "
                       "offset mode"),
    "50046": (_T, 200, "This feature is temporarily unavailable while we make some "
                       "improvements to it. Please try again later."),
    "50047": (_X, 200, "{param0} has already settled. To check the relevant candlestick data, "
                       "please use {param1}"),
    "50048": (_X, 200, "Switching risk unit may lead position risk increases and be forced "
                       "liquidated."),
    "50049": (_X, 200, "No information on the position tier. The current instrument doesn't "
                       "support margin trading."),
    "50050": (_X, 200, "You've already activated options trading. Please don't activate it "
                       "again."),
    "50051": (_P, 200, "Due to compliance restrictions in your country or region, you cannot "
                       "use this feature."),
    "50052": (_P, 200, "Due to local laws and regulations, you cannot trade with your chosen "
                       "crypto."),
    "50053": (_P, 200, "This feature is only available in demo trading."),
    "50055": (_X, 200, "Reset unsuccessful. Assets can only be reset up to 5 times per day."),
    "50056": (_X, 200, "You have pending orders or open positions with this currency."),
    "50057": (_T, 200, "Reset unsuccessful. Try again later."),
    "50058": (_X, 200, "This crypto is not supported in an asset reset."),
    "50059": (_P, 200, "Before you continue, you'll need to complete additional steps as "
                       "required by your local regulators."),
    "50060": (_P, 200, "For security and compliance purposes, please complete the identity "
                       "verification process to continue using our services."),
    # Per (sub-)account order-rate limit.
    "50061": (_R, 200, "You've reached the maximum order rate limit for this account."),
    "50062": (_T, 200, "This feature is currently unavailable."),
    "50063": (_X, 200, "You can't activate the credits as they might have expired or are "
                       "already activated."),
    "50064": (_T, 200, "The borrowing system is unavailable. Try again later."),
    "50067": (_P, 200, "The API doesn't support cross site trading feature"),
    "50069": (_X, 200, "Margin ratio verification for this risk unit failed."),
    "50071": (_X, 200, "{param} already exists"),
    "50072": (_X, 200, "Isolated margin mode is no longer supported in multi-currency margin "
                       "mode and portfolio margin mode."),
    "50075": (_P, 200, "The token is restricted in Islamic sub-account"),
    "50076": (_X, 200, "The time interval between the start date and end date cannot exceed "
                       "{param0} days"),
    "50077": (_X, 200, "The time interval between the start date and end date cannot exceed "
                       "{param0} months"),
    # API class
    "50100": (_P, 400, "API frozen, please contact customer service."),
    "50101": (_A, 401, "APIKey does not match current environment."),
    "50102": (_C, 401, "Timestamp request expired."),
    "50103": (_A, 401, "Request header \"OK-ACCESS-KEY\" cannot be empty."),
    "50104": (_A, 401, "Request header \"OK-ACCESS-PASSPHRASE\" cannot be empty."),
    "50105": (_A, 401, "Request header \"OK-ACCESS-PASSPHRASE\" incorrect."),
    "50106": (_A, 401, "Request header \"OK-ACCESS-SIGN\" cannot be empty."),
    "50107": (_A, 401, "Request header \"OK-ACCESS-TIMESTAMP\" cannot be empty."),
    "50108": (_A, 401, "Exchange ID does not exist."),
    "50109": (_A, 401, "Exchange domain does not exist."),
    "50110": (_P, 401, "Your IP {param0} is not included in your API key's IP whitelist."),
    "50111": (_A, 401, "Invalid OK-ACCESS-KEY."),
    "50112": (_C, 401, "Invalid OK-ACCESS-TIMESTAMP."),
    "50113": (_A, 401, "Invalid signature."),
    "50114": (_A, 401, "Invalid authorization."),
    "50115": (_X, 405, "Invalid request method."),
    "50116": (_X, 200, "Fast API is allowed to create only one API key"),
    "50118": (_P, 200, "To link the app using your API key, your broker needs to share their "
                       "IP to be whitelisted"),
    "50119": (_A, 200, "API key doesn't exist"),
    "50120": (_P, 200, "This API key doesn't have permission to use this function"),
    "50121": (_P, 200, "You can't access our services through the IP address ({param0})"),
    "50122": (_X, 200, "Order amount must exceed minimum amount"),
    # Trade class: the codes of the endpoints and states the reactor meets, and every code
    # published with a status other than 200.
    "51000": (_X, 400, "Parameter {param0} error"),
    "51001": (_X, 200, "Instrument ID, Instrument ID code or Spread ID doesn't exist."),
    "51008": (_B, 200, "Order failed. Insufficient {param0} balance in account"),
    "51009": (_P, 200, "Order blocked. Please contact customer support for assistance."),
    "51010": (_X, 200, "Request unsupported under current account mode"),
    "51015": (_X, 200, "Instrument ID doesn't match instrument type."),
    "51021": (_F, 200, "The pair or contract is not yet listed"),
    "51022": (_F, 200, "Contract suspended."),
    # Which code OKX uses for a margin call without that isolated position is unknown
    # (docs/spec/okx-fidelity.md §7.16): re-read the account rather than hold.
    "51023": (_G, 200, "Position doesn't exist."),
    "51024": (_P, 200, "Trading account is blocked."),
    "51027": (_F, 200, "Contract expired."),
    "51028": (_F, 200, "Contract under delivery."),
    "51029": (_F, 200, "Contract is being settled."),
    "51030": (_T, 200, "Funding fee is being settled."),
    "51032": (_F, 200, "Closing all the positions at the market price."),
    "51040": (_X, 200, "Cannot adjust margins for long isolated options positions"),
    "51043": (_G, 200, "This isolated position doesn't exist."),
    "51054": (_M, 500, "Request timed out. Please try again."),
    "51113": (_R, 429, "Market-price liquidation requests too frequent."),
    "51115": (_F, 429, "Cancel all pending close-orders before liquidation."),
    "51127": (_B, 200, "Available balance is 0."),
    "51131": (_B, 200, "Insufficient balance."),
    "51149": (_M, 500, "Order timed out. Please try again. (does not mean that the request was "
                       "successful or failed, please check the request result)"),
    "51155": (_P, 200, "Trading of this pair or contract is restricted due to local compliance "
                       "requirements."),
    "51406": (_X, 400, "Canceled - order count exceeds the limit {param0}."),
    "51411": (_P, 200, "Account does not have permission for mass cancellation."),
    "51501": (_X, 400, "Maximum {param0} orders can be modified."),
    "52000": (_X, 200, "No market data found."),
    "54000": (_X, 200, "Margin trading is not supported."),
    "54012": (_F, 200, "Due to insufficient order book depth, we are now taking measures to "
                       "protect your positions."),
    # Account class (59xxx; all 200 except 59105)
    "59000": (_X, 200, "Settings failed. Close any open positions or orders before modifying "
                       "settings."),
    "59001": (_X, 200, "Switching unavailable as you have borrowings."),
    "59002": (_X, 200, "Sub-account settings failed."),
    "59004": (_X, 200, "Only IDs with the same instrument type are supported"),
    "59005": (_X, 200, "When margin is manually transferred in isolated mode, the value of the "
                       "asset intially allocated to the position must be greater than 10,000 "
                       "USDT."),
    "59006": (_X, 200, "This feature is unavailable and will go offline soon."),
    "59101": (_X, 200, "Leverage can't be modified. Please cancel all pending isolated margin "
                       "orders before adjusting the leverage."),
    "59102": (_X, 200, "Leverage exceeds the maximum limit. Please lower the leverage."),
    "59103": (_X, 200, "Account margin is insufficient and leverage is too low. Please "
                       "increase the leverage."),
    "59104": (_X, 200, "The borrowed position has exceeded the maximum position of this "
                       "leverage. Please lower the leverage."),
    "59105": (_X, 400, "Leverage can't be less than {0}. Please increase the leverage."),
    "59106": (_X, 200, "The max available margin corresponding to your order tier is "
                       "{param0}. Please adjust your margin and place a new order."),
    "59107": (_X, 200, "Leverage can't be modified. Please cancel all pending cross-margin "
                       "orders before adjusting the leverage."),
    "59108": (_X, 200, "Your account leverage is too low and has insufficient margins. Please "
                       "increase the leverage."),
    "59109": (_X, 200, "Account equity less than the required margin amount after adjustment. "
                       "Please adjust the leverage."),
    "59110": (_X, 200, "The instrument corresponding to this {param0} does not support the "
                       "tgtCcy parameter."),
    "59111": (_X, 200, "Leverage query isn't supported in portfolio margin account mode"),
    "59112": (_X, 200, "You have isolated/cross pending orders. Please cancel them before "
                       "adjusting your leverage"),
    "59113": (_P, 200, "According to local laws and regulations, margin trading service is not "
                       "available in your region."),
    "59114": (_P, 200, "According to local laws and regulations, margin trading services are "
                       "not available in your region."),
    "59200": (_B, 200, "Insufficient account balance."),
    "59201": (_B, 200, "Negative account balance."),
    "59202": (_X, 200, "No access to max opening amount in cross positions for PM accounts."),
    "59300": (_G, 200, "Margin call failed. Position does not exist."),
    "59301": (_L, 200, "Margin adjustment failed for exceeding the max limit."),
    # TP/SL or close orders pending on the position (docs/spec/okx-fidelity.md §7.15): held by the
    # exchange like a frozen one; the engine holds until the position changes, never a retry loop.
    "59302": (_F, 200, "Margin adjustment failed due to pending close order. Please cancel any "
                       "pending close orders."),
    "59303": (_B, 200, "Insufficient available margin, add margin or reduce the borrowing "
                       "amount"),
    "59500": (_P, 200, "Only the API key of the main account has permission."),
    "59506": (_A, 200, "API key doesn't exist."),
    "59509": (_P, 200, "Account doesn't have permission to reset market maker protection (MMP) "
                       "status."),
}

# Private WebSocket ``event: error`` codes (DOC-WSERR); sent with no HTTP status.
_WS: dict[str, tuple[ErrorClass, str]] = {
    "60004": (_C, "Invalid timestamp"),
    "60005": (_A, "Invalid apiKey"),
    "60006": (_C, "Timestamp request expired"),
    "60007": (_A, "Invalid sign"),
    "60008": (_X, "The current WebSocket endpoint does not support subscribing to {0} "
                  "channels. Please check the WebSocket URL"),
    "60009": (_A, "Login failure"),
    "60011": (_X, "Please log in"),
    "60012": (_X, "Invalid request"),
    "60013": (_X, "Invalid args"),
    "60014": (_R, "Requests too frequent"),
    "60018": (_X, "Wrong URL or {0} doesn't exist. Please use the correct URL, channel and "
                  "parameters referring to API document."),
    "60019": (_X, "Invalid op: {op}"),
    "60023": (_R, "Bulk login requests too frequent"),
    "60024": (_A, "Wrong passphrase"),
    "60026": (_X, "Batch login by APIKey and token simultaneously is not supported."),
    "60027": (_X, "Parameter {0} can not be empty."),
    "60028": (_X, "The current operation is not supported by this URL. Please use the correct "
                  "WebSocket URL for the operation."),
    "60031": (_X, "The WebSocket endpoint does not allow multiple or repeated logins."),
    "60032": (_A, "API key doesn't exist."),
    "60033": (_X, "Parameter {param0} error."),
    "63999": (_T, "Login failed due to internal error. Please try again later."),
    "64000": (_X, "Subscription parameter uly is unavailable anymore, please replace uly with "
                  "instFamily."),
    "64001": (_X, "This channel has been migrated to the '/business' URL."),
    "64002": (_X, "This channel is not supported by \"/business\" URL."),
    "64003": (_P, "Your trading fee tier doesn't meet the requirement to access this channel"),
    "64004": (_X, "Subscribe to both {channelName} and books-l2-tbt for {instId} is not "
                  "allowed."),
    "64007": (_T, "Operation {0} failed due to WebSocket internal error. Please try again "
                  "later."),
    "64008": (_T, "The connection will soon be closed for a service upgrade. Please "
                  "reconnect."),
}

# WebSocket close-frame status codes (DOC-WSERR "Close Frame").
_CLOSE: dict[int, tuple[ErrorClass, str]] = {
    1009: (_X, "Request message exceeds the maximum frame length"),
    # Sent after a login error event, which carries the cause (key or clock): the close alone
    # says nothing more, so it is retried with the session's back-off.
    4001: (_T, "Login Failed"),
    4002: (_X, "Invalid Request"),
    4003: (_R, "APIKey subscription amount exceeds the limit 100"),
    4004: (_T, "No data received in 30s"),
    4005: (_T, "Buffer is full, cannot write data"),
    4006: (_T, "Abnormal disconnection"),
    4007: (_A, "API key has been updated or deleted. Please reconnect."),
    4008: (_R, "The number of subscribed channels exceeds the maximum limit."),
    4009: (_R, "The number of subscription channels for this connection exceeds the limit"),
}
# fmt: on

REST_CODES: dict[str, Entry] = {
    code: Entry(cls, http, msg, DOC_ERR) for code, (cls, http, msg) in _REST.items()
}
WS_CODES: dict[str, Entry] = {
    code: Entry(cls, 0, msg, DOC_WSERR) for code, (cls, msg) in _WS.items()
}
CLOSE_CODES: dict[int, Entry] = {
    code: Entry(cls, 0, msg, DOC_WSERR) for code, (cls, msg) in _CLOSE.items()
}

# Views kept for the simulator and older callers: code -> (class, text); non-200 statuses.
CODES: dict[str, tuple[ErrorClass, str]] = {
    code: (e.cls, e.msg) for code, e in (REST_CODES | WS_CODES).items()
}
HTTP_STATUS: dict[str, int] = {code: e.http for code, e in REST_CODES.items() if e.http != 200}

# Private WebSocket codes the session acts on.
WS_LOGIN_FAILED = "60009"
WS_INVALID_KEY = "60005"
WS_TIMESTAMP_EXPIRED = "60006"
WS_INVALID_SIGN = "60007"
WS_NOT_LOGGED_IN = "60011"
WS_ILLEGAL_REQUEST = "60012"
WS_WRONG_PASSPHRASE = "60024"
WS_KEY_MISSING = "60032"
WS_SERVICE_UPGRADE = "64008"
# Codes that stop an account (wrong or missing key, no permission), from the table.
WS_AUTH_CODES = frozenset(code for code, e in WS_CODES.items() if e.cls.stops_account)
WS_CLOCK_CODES = frozenset(code for code, e in WS_CODES.items() if e.cls.kind is Kind.CLOCK)


def _base(code: str) -> str:
    """OKX sub-codes ("51008_1000") share their code's meaning (DOC-ERR)."""
    return code.split("_", 1)[0]


def _by_status(http_status: int | None) -> ErrorClass:
    """The conservative default for a code in no table, by the HTTP status it came with."""
    if http_status == 401:
        return ErrorClass.AUTH
    if http_status == 403:
        return ErrorClass.PERMISSION
    if http_status == 429:
        return ErrorClass.RATE_LIMIT
    if http_status is not None and http_status >= 500:
        return ErrorClass.AMBIGUOUS
    return ErrorClass.UNKNOWN


def classify(code: str, http_status: int | None = None) -> ErrorClass:
    """The one meaning of a REST (or WebSocket) error code; see the module notes."""
    base = _base(code)
    entry = REST_CODES.get(base) or WS_CODES.get(base)
    if entry is not None:
        return entry.cls
    if len(code) == 3 and code.isdigit() and code.startswith("5"):
        return ErrorClass.TRANSIENT  # a bare HTTP 5xx from a gateway, no OKX envelope
    return _by_status(http_status)


def classify_ws(code: str) -> ErrorClass:
    """A WebSocket ``event: error`` code. Unknown: :attr:`ErrorClass.UNKNOWN`."""
    entry = WS_CODES.get(code) or REST_CODES.get(_base(code))
    return entry.cls if entry is not None else ErrorClass.UNKNOWN


def classify_close(code: int | None) -> ErrorClass:
    """A WebSocket close code. Unknown (1000, 1006, none...): transient, reconnect with
    back-off: a closed connection says nothing about the key."""
    entry = CLOSE_CODES.get(code) if code is not None else None
    return entry.cls if entry is not None else ErrorClass.TRANSIENT


def message(code: str) -> str:
    entry = REST_CODES.get(_base(code)) or WS_CODES.get(code)
    return entry.msg if entry is not None else "Unknown error"


class OkxError(Exception):
    """An OKX error envelope (``code`` != "0"). Never carries credentials."""

    def __init__(self, code: str, msg: str, http_status: int = 200) -> None:
        super().__init__(f"OKX {code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status

    @property
    def error_class(self) -> ErrorClass:
        return classify(self.code, self.http_status)

    @property
    def kind(self) -> Kind:
        return self.error_class.kind


class AmbiguousOutcome(Exception):
    """The request may have reached OKX but no answer came back: its effect is unknown."""

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class RequestNotSent(Exception):
    """Failed before anything was sent (connect error, refused, pool timeout): safe to retry."""


def envelope_error(where: str, code: str, msg: str, http_status: int) -> Exception:
    """The exception for an OKX error answer: the one ambiguity rule. A code whose class is
    ambiguous (50004, 51149, ...) may have been applied, so it is an :class:`AmbiguousOutcome`,
    never an error a caller could read as "nothing happened"."""
    if classify(code, http_status).kind is Kind.AMBIGUOUS:
        return AmbiguousOutcome(f"{where}: OKX {code}: {msg}", code=code)
    return OkxError(code, msg, http_status)
