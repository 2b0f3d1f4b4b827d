"""What the local HTTP APIs (``/api/maintenance``, ``/api/pause``, ``/api/resume``) share: the
bearer-token check, the body size limit, and a JSON body validated into a pydantic model with
one line naming the bad field."""

from __future__ import annotations

import hmac
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, StringConstraints, ValidationError

from reactor.limits import InputRejected, loads_limited

__all__ = ["MAX_BODY", "NO_STORE", "BadRequest", "Id", "bearer_ok", "parse_json_body"]

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
