"""What the ledger commands (``journal``, ``pauses``, ``maintenance list``) share: the
``--since`` parser (ISO 8601 or relative, like ``2h``) and the plain-text table they print
by default (``--json`` keeps one JSON object a line for scripts). Times are ISO 8601 UTC."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from reactor.cli.status import iso
from reactor.config import ConfigError

__all__ = ["iso", "parse_since", "render"]

_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")


def parse_since(text: str, now_ms: int) -> int:
    """``--since`` as epoch ms: ``90s``, ``15m``, ``2h``, ``3d``, ``1w`` before now, or an ISO
    8601 date/time (``2026-03-01``, ``2026-03-01T12:00``, ``...Z``, ``...+02:00``; without a
    zone it is UTC, like every time these commands print). Anything else: one line, exit 2."""
    value = text.strip()
    rel = _RELATIVE.match(value.lower())
    if rel:
        return now_ms - int(float(rel.group(1)) * _UNITS_S[rel.group(2)] * 1000)
    try:
        at = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ConfigError(
            f"--since: {text!r} is neither an ISO 8601 time (2026-03-01T12:00Z) nor a "
            "duration before now (90s, 15m, 2h, 3d, 1w)"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)


def render(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the header alone when there are no rows."""
    table = [tuple(head), *(tuple(r) for r in rows)]
    widths = [max(len(r[c]) for r in table) for c in range(len(head))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in table
    )
