"""What the local HTTP APIs (``/api/maintenance``, ``/api/pause``, ``/api/resume``) share: the
bearer-token guard (:class:`TokenGuard`), the body size limit, and a JSON body validated into a
pydantic model with one line naming the bad field."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, StringConstraints, ValidationError

from reactor.limits import InputRejected, loads_limited
from reactor.log import get_logger

__all__ = [
    "MAX_BODY",
    "NO_STORE",
    "BadRequest",
    "Id",
    "TokenGuard",
    "bearer_ok",
    "error_response",
    "parse_json_body",
]

log = get_logger(__name__)

MAX_BODY = 4096
MAX_DEPTH = 8  # the deepest body a local API takes is an object of scalars (depth 1)
NO_STORE = {"Cache-Control": "no-store"}

# An account name, instId, ordId or key in a request body.
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]

_M = TypeVar("_M", bound=BaseModel)


class BadRequest(ValueError):
    """One line naming the problem; the answer is HTTP 400."""


def parse_json_body(body: bytes, model: type[_M], *, empty: bytes | None = None) -> _M:
    """``body`` (read with at most ``MAX_BODY + 1`` bytes) as ``model``; ``empty`` stands in for
    an empty body (``None``: an empty body is not JSON)."""
    if len(body) > MAX_BODY:
        raise BadRequest(f"body larger than {MAX_BODY} bytes")
    try:
        raw: Any = loads_limited(
            body or empty or b"", max_bytes=MAX_BODY, max_depth=MAX_DEPTH, what="body"
        )
    except InputRejected as exc:
        # Nested brackets once escaped as a RecursionError (HTTP 500): now one line, 400.
        raise BadRequest("body is not JSON" if exc.reason == "not UTF-8" else str(exc)) from None
    if not isinstance(raw, dict):
        raise BadRequest("body must be a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise BadRequest(f"{where}: {err['msg']}") from None


def bearer_ok(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time; never true without a token."""
    if not token or header is None:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


def loopback(remote: str | None) -> bool:
    """The peer is this host (an IPv6 zone suffix allowed); unknown or unparsable is not."""
    if remote is None:
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A local API's refusal: ``{"error": message}``, never cached."""
    return web.json_response(
        {"error": message}, status=status, headers={**NO_STORE, **(headers or {})}
    )


@dataclass(frozen=True, slots=True)
class TokenGuard:
    """The one gate in front of every local API: loopback only (when asked), a token configured,
    then the bearer token. A refusal is logged under the API's own ``event``, with the
    ``reasons`` it has always used (a status without one is answered, not logged), and the
    fields ``fields`` takes from the request. The token itself is never logged or echoed."""

    token: str
    event: str  # control.api.refused, maintenance.api.refused
    disabled: str  # the 503 answer without a token: where the token is expected
    reasons: Mapping[int, str]
    fields: Callable[[web.Request], dict[str, str]] = lambda _request: {}
    loopback_only: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.token)

    def refuse(self, request: web.Request) -> web.Response | None:
        """The refusal to answer, or ``None`` when the request may go on."""
        if self.loopback_only and not loopback(request.remote):
            return self._refused(request, 403, "served to loopback clients only")
        if not self.token:
            return self._refused(request, 503, self.disabled)
        if not bearer_ok(request.headers.get("Authorization"), self.token):
            challenge = {"WWW-Authenticate": "Bearer"}
            return self._refused(request, 401, "missing or wrong bearer token", challenge)
        return None

    def _refused(
        self,
        request: web.Request,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        reason = self.reasons.get(status)
        if reason is not None:
            log.warning(self.event, **self.fields(request), reason=reason)
        return error_response(status, message, headers)
