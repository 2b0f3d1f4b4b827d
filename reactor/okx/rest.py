"""Signed OKX v5 REST client on httpx.

What it adds over raw HTTP, and why:
- the ``{"code","msg","data"}`` envelope becomes data or an :class:`OkxError` by code, so the
  engine reasons about OKX codes, not HTTP;
- per-account client-side rate limits (OKX's documented numbers), waited for rather than
  failed, so the reactor does not earn 50011s;
- a hard line between "nothing was sent" (:class:`RequestNotSent`, safe to retry) and "it may
  have been applied" (:class:`AmbiguousOutcome`): a margin transfer must never be resent
  blindly. Margin calls are therefore never retried here; idempotent GETs are, a little.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx

from reactor.backoff import Backoff
from reactor.fdlimit import log_if_emfile
from reactor.limits import InputRejected, loads_limited
from reactor.log import error_text, get_logger
from reactor.okx.clock import ExchangeClock
from reactor.okx.credentials import Credentials
from reactor.okx.endpoints import (
    ACCOUNT_CONFIG,
    ADJUST_LEVERAGE_INFO,
    BALANCE,
    BILLS,
    INSTRUMENTS,
    MARGIN_BALANCE,
    ORDERS_HISTORY,
    ORDERS_PENDING,
    POSITIONS,
    RATE_LIMITS,
    TIME,
)
from reactor.okx.errors import (
    AmbiguousOutcome,
    ErrorClass,
    OkxError,
    RequestNotSent,
    envelope_error,
)
from reactor.okx.pacing import SlidingWindow
from reactor.okx.sign_gate import SignGate
from reactor.okx.signing import iso_timestamp, rest_sign
from reactor.redaction import redact_text

log = get_logger(__name__)

# After 50102 the clock is re-synced every time (a clock may step more than once); when
# rejections follow each other, the re-syncs back off: 0.5 s, 1 s, 2 s ... up to 10 s.
CLOCK_SYNC_BACKOFF_S = 0.5
CLOCK_SYNC_BACKOFF_MAX_S = 10.0
# An answer over this size or depth is refused before parsing (reactor/limits.py): the largest
# OKX page the reactor reads (100 bills, positions of a large account) is well under 1 MiB.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024


# Every request's headers; the User-Agent is the one ``httpx.AsyncClient`` sent (and no
# Accept-Encoding: OKX's answers are small).
_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    "User-Agent": f"python-httpx/{httpx.__version__}",
}


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every account: each costs ~0.85 MB and ~20 ms to build, which at
    500 sub-accounts was most of the reactor's memory and start-up time."""
    return ssl.create_default_context()


class OkxRestClient:
    """One account's REST client. Use one instance per account so its rate limits hold."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        simulated: bool = False,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] | ExchangeClock = time.time,
        gate: SignGate | None = None,
        account: str = "",
        get_retries: int = 2,
        retry_backoff_s: float = 0.25,
        clock_sync_backoff_s: float = CLOCK_SYNC_BACKOFF_S,
    ) -> None:
        self.account = account
        self._credentials = credentials
        self._simulated = simulated
        # The account's reading of OKX's clock, measured here and shared with its WebSocket
        # session (a plain callable is the local clock: the client then has its own).
        self.clock = clock if isinstance(clock, ExchangeClock) else ExchangeClock(clock)
        # Signed only when it can be written at once (OKX's 30 s window): the process's gate.
        self.gate = gate if gate is not None else SignGate()
        self._clock_sync_backoff = Backoff(clock_sync_backoff_s, CLOCK_SYNC_BACKOFF_MAX_S)
        self.skew_streak = 0  # clock rejections since the last accepted signed request
        self._get_retries = get_retries
        self._retry_backoff = Backoff(retry_backoff_s, jitter=(0.5, 1.5))
        # The transport itself, not an ``httpx.AsyncClient`` around it: the client's cookies,
        # auth flow, redirects and event hooks (none of which OKX uses) cost ~110 us per
        # request, paid by every margin call queued behind it (docs/performance.md). No proxy
        # from the environment, as the WebSocket sessions (``proxy=None``).
        self._base_url = base_url.rstrip("/")
        self._urls: dict[str, httpx.URL] = {}  # parsed once per path without a query (POSTs)
        self._transport = transport or httpx.AsyncHTTPTransport(verify=_shared_ssl_context())
        self._timeout = httpx.Timeout(timeout_s).as_dict()
        self._buckets = {path: SlidingWindow(n, per) for path, (n, per) in RATE_LIMITS.items()}
        # The exchange fence (high availability): asked after a state-changing request is
        # signed and before it is sent; False means this instance may no longer sign (its
        # lease could expire before OKX stops accepting the signature), so nothing is sent.
        # Reads are never fenced: a standby reads its snapshot without the lease.
        self.sign_fence: Callable[[], bool] | None = None

    def __repr__(self) -> str:
        return f"OkxRestClient(account={self.account!r}, base_url={self._base_url!r})"

    async def __aenter__(self) -> OkxRestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    # -- endpoints ------------------------------------------------------------------------

    async def get_positions(
        self, inst_type: str = "SWAP", inst_id: str | None = None
    ) -> list[dict[str, Any]]:
        return await self._get(POSITIONS, {"instType": inst_type, "instId": inst_id})

    async def get_balance(self, ccy: str | None = None) -> list[dict[str, Any]]:
        return await self._get(BALANCE, {"ccy": ccy})

    async def get_account_config(self) -> list[dict[str, Any]]:
        """``GET /api/v5/account/config``: ``perm`` says what the API key may do (DOC-TA)."""
        return await self._get(ACCOUNT_CONFIG, {})

    async def get_instruments(
        self, inst_type: str = "SWAP", inst_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Public instruments; ``inst_id`` reads one (an instrument listed after start-up)."""
        return await self._get(
            INSTRUMENTS, {"instType": inst_type, "instId": inst_id}, signed=False
        )

    async def get_orders_history(
        self,
        inst_type: str = "SWAP",
        *,
        begin_ms: int | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Completed orders, newest first; ``after`` (an ordId) pages to older ones."""
        params = {
            "instType": inst_type,
            "begin": None if begin_ms is None else str(begin_ms),
            "after": after,
            "limit": str(limit),
        }
        return await self._get(ORDERS_HISTORY, params)

    async def get_orders_pending(
        self, inst_type: str = "SWAP", *, after: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Live and partially filled orders, newest first."""
        params = {"instType": inst_type, "after": after, "limit": str(limit)}
        return await self._get(ORDERS_PENDING, params)

    async def adjust_leverage_info(
        self, inst_id: str, lever: Decimal, pos_side: str, *, mgn_mode: str = "isolated"
    ) -> dict[str, Any]:
        """``GET adjust-leverage-info`` for a SWAP at ``lever``: asked at the position's own
        leverage, ``estAvailTrans`` is OKX's own figure of what may leave an isolated position
        (docs/spec/okx-fidelity.md §4, DOC-TA). Returns the first record ({} when none)."""
        if not isinstance(lever, Decimal) or not lever.is_finite() or lever <= 0:
            raise ValueError(f"lever must be a positive finite Decimal, not {lever!r}")
        data = await self._get(
            ADJUST_LEVERAGE_INFO,
            {
                "instType": "SWAP",
                "mgnMode": mgn_mode,
                "lever": format(lever, "f"),
                "instId": inst_id,
                # DOC-TA: posSide only in long/short mode (as the probe sends it).
                "posSide": None if pos_side == "net" else pos_side,
            },
        )
        return data[0] if data and isinstance(data[0], dict) else {}

    async def get_bills(
        self,
        inst_id: str,
        *,
        bill_type: str = "6",
        sub_type: str | None = None,
        begin_ms: int | None = None,
        end_ms: int | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """``GET bills`` (last 7 days, newest first) of one isolated SWAP instrument: by default
        its margin transfers (type 6; subType 160 add, 161 reduce). ``after`` pages to older
        bills (a billId)."""
        return await self._get(
            BILLS,
            {
                "instType": "SWAP",
                "instId": inst_id or None,
                "mgnMode": "isolated",
                "type": bill_type,
                "subType": sub_type,
                "begin": None if begin_ms is None else str(begin_ms),
                "end": None if end_ms is None else str(end_ms),
                "after": after,
                "limit": str(limit),
            },
        )

    async def server_time_ms(self) -> int:
        data = await self._get(TIME, {}, signed=False, resync=False)
        try:
            return int(data[0]["ts"])
        except (IndexError, KeyError, TypeError, ValueError):
            raise OkxError("0", "public/time: unexpected data", 200) from None

    async def sync_clock(self, seen: int | None = None) -> float:
        """Measure the offset to OKX's clock (after 50102) into :attr:`clock`, which signs
        every later request of every account sharing it, REST and WebSocket login alike.

        One reading at a time per clock: a caller that waited while another account measured,
        or whose rejected request (signed at measurement ``seen``) was signed before a newer
        reading, uses that reading instead of asking again (``public/time`` is limited per
        IP)."""
        clock = self.clock
        seen = clock.measurements if seen is None else seen
        async with clock.sync_lock:
            if clock.measurements != seen:
                return clock.offset_s
            before = clock.local()
            server_ms = await self.server_time_ms()
            offset = clock.measured(server_ms, before, clock.local())
        log.info("rest.clock.synced", account=self.account, offset_s=round(offset, 3))
        return offset

    async def margin_balance(
        self, inst_id: str, pos_side: str, action: str, amt: Decimal
    ) -> dict[str, Any]:
        """Move isolated margin. Never retried here: the caller owns ambiguous outcomes."""
        if action not in ("add", "reduce"):
            raise ValueError(f"action must be 'add' or 'reduce', not {action!r}")
        if not isinstance(amt, Decimal) or not amt.is_finite() or amt <= 0:
            raise ValueError(f"amt must be a positive finite Decimal, not {amt!r}")
        body = {"instId": inst_id, "posSide": pos_side, "type": action, "amt": format(amt, "f")}
        seen = self.clock.measurements
        try:
            data = await self._request("POST", MARGIN_BALANCE, body=body)
        except OkxError as exc:
            if exc.error_class is ErrorClass.CLOCK_SKEW:
                # Rejected, so nothing happened; fix the clock so the engine's next try works.
                await self._try_sync_clock(seen)
            raise
        return data[0] if data and isinstance(data[0], dict) else {}

    # -- plumbing -------------------------------------------------------------------------

    async def _try_sync_clock(self, seen: int) -> bool:
        """Re-sync after a clock rejection of a request signed at measurement ``seen``; back
        off when rejections keep coming."""
        self.skew_streak += 1
        if self.skew_streak > 1:
            delay = self._clock_sync_backoff.ceiling(self.skew_streak - 1)
            log.warning(
                "rest.clock.backoff",
                account=self.account,
                rejections=self.skew_streak,
                delay_s=round(delay, 3),
            )
            await asyncio.sleep(delay)
        try:
            await self.sync_clock(seen)
        except (OkxError, RequestNotSent, AmbiguousOutcome) as exc:
            log.warning("rest.clock.sync_failed", account=self.account, error=str(exc))
            return False
        return True

    async def _get(
        self,
        path: str,
        params: dict[str, str | None],
        *,
        signed: bool = True,
        resync: bool = True,
    ) -> list[dict[str, Any]]:
        """GET with a few retries on transient failures; GETs are idempotent."""
        attempt = 0
        resynced = not resync
        while True:
            seen = self.clock.measurements
            try:
                return await self._request("GET", path, params=params, signed=signed)
            except OkxError as exc:
                cls = exc.error_class
                if cls is ErrorClass.CLOCK_SKEW and not resynced:
                    resynced = True
                    if await self._try_sync_clock(seen):
                        continue
                    raise
                if not cls.retryable or attempt >= self._get_retries:
                    raise
                error = f"{exc.code}"
            except (RequestNotSent, AmbiguousOutcome) as exc:
                if attempt >= self._get_retries:
                    raise
                error = error_text(exc, None)
            attempt += 1
            delay = self._retry_backoff.delay(attempt)
            log.warning(
                "rest.retry",
                account=self.account,
                path=path,
                attempt=attempt,
                delay_s=round(delay, 3),
                error=error,
            )
            await asyncio.sleep(delay)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | None] | None = None,
        body: dict[str, Any] | None = None,
        signed: bool = True,
    ) -> list[dict[str, Any]]:
        query = {k: v for k, v in (params or {}).items() if v}  # OKX: empty means absent
        request_path = f"{path}?{urlencode(query)}" if query else path
        body_text = json.dumps(body, separators=(",", ":")) if body is not None else ""
        headers = {**_HEADERS}
        if self._simulated:
            headers["x-simulated-trading"] = "1"
        bucket = self._buckets.get(path)
        async with bucket.slot() if bucket is not None else _no_slot() as waited:
            if waited > 0:
                log.debug("rest.throttled", account=self.account, path=path, waited_s=waited)
            async with self.gate.writing() as written:
                if signed:
                    self._sign(headers, method, path, request_path, body_text)
                request = httpx.Request(
                    method,
                    self._url(request_path),
                    content=body_text.encode() if body_text else None,
                    headers=headers,
                    extensions={"timeout": self._timeout, "trace": written},
                )
                try:
                    resp = await self._transport.handle_async_request(request)
                    try:
                        await resp.aread()
                    finally:
                        await resp.aclose()
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                    log_if_emfile(exc, account=self.account, path=path)
                    raise RequestNotSent(_transport_text(method, path, exc)) from None
                except httpx.TransportError as exc:
                    # Read/write timeout, reset, closed mid-answer: it may have been applied.
                    raise AmbiguousOutcome(_transport_text(method, path, exc)) from None
        data = _unwrap(method, path, resp)
        if signed:
            self.skew_streak = 0  # OKX accepted our timestamp
        return data

    def _url(self, request_path: str) -> httpx.URL | str:
        """The request's URL; a path without a query is parsed once (~20 us a parse, on the
        margin call's path)."""
        if "?" in request_path:
            return self._base_url + request_path
        url = self._urls.get(request_path)
        if url is None:
            url = self._urls[request_path] = httpx.URL(self._base_url + request_path)
        return url

    def _sign(
        self, headers: dict[str, str], method: str, path: str, request_path: str, body: str
    ) -> None:
        creds = self._credentials
        ts = iso_timestamp(self.clock.now())
        headers["OK-ACCESS-KEY"] = creds.api_key
        headers["OK-ACCESS-SIGN"] = rest_sign(creds.secret_key, ts, method, request_path, body)
        headers["OK-ACCESS-TIMESTAMP"] = ts
        headers["OK-ACCESS-PASSPHRASE"] = creds.passphrase
        # Signed first, then checked: a pause after this check changes nothing, the
        # timestamp OKX judges is already bound (docs/operations.md, exchange fence).
        fence = self.sign_fence
        if method != "GET" and fence is not None and not fence():
            raise RequestNotSent(f"{method} {path}: not sent: past the signing deadline")


# OKX's largest page of ``account/bills`` and ``trade/orders-history`` (``limit`` 100).
PAGE_LIMIT = 100


class Pages:
    """OKX's ``after`` cursor over a newest-first read: ``async for page in pages(...)``.

    ``fetch(after)`` reads one page older than the row id ``after`` (None: the newest). It stops
    after a short page, a row without an id, or ``max_pages``; ``truncated`` then says that
    older rows were left unread. The one paginator of the paged reads (bills, order history).
    """

    def __init__(
        self,
        fetch: Callable[[str | None], Awaitable[list[dict[str, Any]]]],
        id_field: str,
        *,
        max_pages: int,
        limit: int = PAGE_LIMIT,
    ) -> None:
        self._fetch = fetch
        self._id_field = id_field
        self._max_pages = max_pages
        self._limit = limit
        self.truncated = False

    async def __aiter__(self) -> AsyncIterator[list[dict[str, Any]]]:
        after: str | None = None
        for _ in range(self._max_pages):
            page = await self._fetch(after)
            yield page
            if len(page) < self._limit or not isinstance(page[-1], dict):
                return
            after = str(page[-1].get(self._id_field) or "")
            if not after:
                return
        self.truncated = True


def pages(
    fetch: Callable[[str | None], Awaitable[list[dict[str, Any]]]],
    id_field: str,
    *,
    max_pages: int,
    limit: int = PAGE_LIMIT,
) -> Pages:
    """See :class:`Pages`."""
    return Pages(fetch, id_field, max_pages=max_pages, limit=limit)


def _transport_text(method: str, path: str, exc: Exception) -> str:
    """The exception as one line, scrubbed: a transport error may quote the request."""
    return redact_text(f"{method} {path}: {error_text(exc, None)}")[:300]


@asynccontextmanager
async def _no_slot() -> AsyncIterator[float]:
    yield 0.0


def _unwrap(method: str, path: str, resp: httpx.Response) -> list[dict[str, Any]]:
    status = resp.status_code
    try:
        payload = loads_limited(resp.content, max_bytes=MAX_RESPONSE_BYTES, what="answer")
    except InputRejected as exc:
        if exc.reason in ("too large", "too deep"):
            raise OkxError(str(status), f"{method} {path}: {exc}", status) from None
        payload = None
    if not isinstance(payload, dict) or "code" not in payload:
        reason = resp.reason_phrase or "no OKX envelope"
        raise OkxError(str(status), f"{method} {path}: HTTP {status} {reason}", status)
    code = redact_text(str(payload.get("code")))[:20]
    # OKX's message goes into exceptions, the journal and the status page: never a credential
    msg = redact_text(str(payload.get("msg") or ""))[:300]
    if code != "0":
        # errors.py alone decides what a code means, ambiguity included (50004, 51149...)
        raise envelope_error(f"{method} {path}", code, msg, status)
    data = payload.get("data")
    if data is None:
        return []
    if not isinstance(data, list):
        raise OkxError(str(status), f"{method} {path}: data is not a list", status)
    return data
