"""OKX v5 request signing, shared by the reactor's clients and the simulator's checks.

Sign = Base64(HMAC-SHA256(secret, prehash)). REST prehash is
``timestamp + METHOD + requestPath(+query) + body``; WebSocket login prehash is
``timestamp + "GET" + "/users/self/verify"`` with the timestamp in Unix seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

WS_LOGIN_PATH = "/users/self/verify"


def sign(secret: str, prehash: str) -> str:
    mac = hmac.new(secret.encode(), prehash.encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def rest_sign(secret: str, timestamp: str, method: str, request_path: str, body: str) -> str:
    return sign(secret, f"{timestamp}{method.upper()}{request_path}{body}")


def ws_login_sign(secret: str, timestamp: str) -> str:
    return sign(secret, f"{timestamp}GET{WS_LOGIN_PATH}")


def iso_timestamp(epoch_s: float) -> str:
    """REST timestamp: ISO 8601 UTC with milliseconds, e.g. ``2020-12-08T09:08:57.715Z``."""
    dt = datetime.fromtimestamp(epoch_s, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_iso_timestamp(text: str) -> float:
    """Inverse of :func:`iso_timestamp`; raises ValueError on anything else."""
    if not text.endswith("Z"):
        raise ValueError("timestamp must end in Z")
    dt = datetime.strptime(text[:-1], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    return dt.timestamp()
