"""One margin-balance call and its outcome: the one place that decides what is ambiguous.

OK: OKX booked it. REJECTED: OKX answered with an error code, nothing moved. NOT_SENT: it never
left the process. UNKNOWN: it may have been applied - 50004, a timeout or reset after sending,
or a bare HTTP 5xx from a gateway (no OKX envelope says it failed) - and is never resent blindly.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from reactor.engine.state import MarginClient
from reactor.okx.errors import AmbiguousOutcome, ErrorClass, OkxError, RequestNotSent
from reactor.store import ResultStatus


class OutcomeKind(StrEnum):
    OK = "ok"
    REJECTED = "rejected"
    NOT_SENT = "not_sent"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    code: str | None = None  # OKX code, HTTP status of a bare 5xx, or None
    error_class: ErrorClass | None = None  # REJECTED only
    msg: str = ""

    @property
    def moved_nothing(self) -> bool:
        """Certainly no margin moved: the runaway guard gives the amount back."""
        return self.kind in (OutcomeKind.REJECTED, OutcomeKind.NOT_SENT)

    @property
    def journal_status(self) -> ResultStatus:
        if self.kind is OutcomeKind.OK:
            return "ok"
        return "unknown" if self.kind is OutcomeKind.UNKNOWN else "error"

    @property
    def label(self) -> str:
        """Metric label and event code."""
        if self.kind is OutcomeKind.OK:
            return "ok"
        if self.kind is OutcomeKind.NOT_SENT:
            return "not_sent"
        if self.kind is OutcomeKind.UNKNOWN:
            return "unknown"
        return self.code or "error"


OK = Outcome(OutcomeKind.OK)


def outcome_of(exc: BaseException) -> Outcome:
    """Map an exception of the REST client to an outcome."""
    if isinstance(exc, AmbiguousOutcome):
        return Outcome(OutcomeKind.UNKNOWN, exc.code, None, str(exc)[:200])
    if isinstance(exc, RequestNotSent):
        return Outcome(OutcomeKind.NOT_SENT, "not_sent", None, str(exc)[:200])
    if isinstance(exc, OkxError):
        cls = exc.error_class
        bare_5xx = exc.code.isdigit() and len(exc.code) == 3 and exc.code.startswith("5")
        if cls is ErrorClass.AMBIGUOUS or bare_5xx:
            return Outcome(OutcomeKind.UNKNOWN, exc.code, cls, exc.msg[:200])
        return Outcome(OutcomeKind.REJECTED, exc.code, cls, exc.msg[:200])
    if isinstance(exc, ValueError):  # the client refused the arguments before sending
        return Outcome(OutcomeKind.NOT_SENT, "not_sent", None, str(exc)[:200])
    raise TypeError(f"not an exchange-call failure: {type(exc).__name__}") from exc


async def send(
    client: MarginClient, inst_id: str, pos_side: str, action: str, amount: Decimal
) -> Outcome:
    """Send one margin call; cancellation propagates (the shell journals it unknown)."""
    try:
        await client.margin_balance(inst_id, pos_side, action, amount)
    except asyncio.CancelledError:
        raise
    except (AmbiguousOutcome, RequestNotSent, OkxError, ValueError) as exc:
        return outcome_of(exc)
    return OK
