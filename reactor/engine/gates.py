"""Pure: whether a position may be corrected at all right now, whatever its numbers.

The standing gates of an evaluation, in order: the account is a managed sub-account, the
position is an isolated SWAP one, the operator has not paused it, the account is not stopped
(auth error, runaway guard), and the book is fresh. Each refusal is a (status, reason) the
status page shows; the coordinator applies it and stops there.
"""

from __future__ import annotations

from dataclasses import dataclass

from reactor.engine.state import AccountState
from reactor.okx.models import Position


@dataclass(frozen=True, slots=True)
class Refusal:
    status: str
    reason: str
    foreign_kind: bool = False  # cross margin or not a SWAP: said once per position


def refusal(
    pos: Position, account: AccountState | None, paused: str | None, fresh: bool
) -> Refusal | None:
    """Why the position is not corrected now (``paused``: the operator's reason, "" without
    one, None when not paused; ``fresh``: the account's book is), or None when it may be."""
    if account is None or not account.enabled or account.role != "sub":
        return Refusal("unmanaged", "read-only account")
    if not pos.is_managed_kind:
        return Refusal("unmanaged", f"{pos.mgn_mode} {pos.inst_id}", foreign_kind=True)
    if paused is not None:
        return Refusal("paused", f"paused: {paused}" if paused else "paused")
    if not account.managed:
        return Refusal("error", account.stopped_reason or "runaway guard tripped")
    if not fresh:
        return Refusal("stale", "waiting for a fresh snapshot")
    return None
