"""``reactor maintenance record | list | void``: the command-line ways into the ledger.

Kept apart from :mod:`reactor.cli.main` (argument parsing and exit codes) so the rules are tested
without a process: ``record`` writes a ``cli`` (or ``backfill``) record idempotently on its key
and ``ordId``; ``list`` prints one JSON line per position with its count and where each record
came from, then (``--records``) every record; ``void`` undoes one record with an audit entry.

Under systemd the ledger belongs to the service user (state dir mode 0700), so these run as
that user: ``sudo -u okx-reactor /opt/okx-margin-reactor/.venv/bin/reactor maintenance ...``.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable
from typing import Any

from reactor.log import get_logger
from reactor.store import Ledger, MaintenanceRecord, MaintenanceSource, PositionCount

__all__ = ["CliInputError", "json_lines", "list_lines", "listing", "record", "void"]

log = get_logger(__name__)


class CliInputError(ValueError):
    """Bad arguments: one line naming the problem (the CLI exits 2)."""


def _user() -> str:
    """Who runs the command; under ``sudo -u okx-reactor`` also the person behind it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): still say who, by uid
        user = f"uid:{os.getuid()}"
    behind = os.environ.get("SUDO_USER")
    return f"{behind} as {user}" if behind and behind != user else user


# The sources a person may give on the command line.
_BY_HAND: dict[str, MaintenanceSource] = {"cli": "cli", "backfill": "backfill"}


def record(
    ledger: Ledger,
    account: str,
    inst_id: str,
    pos_side: str,
    key: str,
    *,
    c_time: int | None = None,
    ord_id: str | None = None,
    source: str = "cli",
) -> MaintenanceRecord | None:
    """Record one maintenance by hand (``cli``) or from the desk's own books (``backfill``)."""
    checked = _BY_HAND.get(source)
    if checked is None:
        raise CliInputError(f"--source: must be cli or backfill, not {source!r}")
    if not key.strip():
        raise CliInputError("--key: must not be empty")
    if ord_id is not None and not ord_id.strip():
        raise CliInputError("--ord-id: must not be empty")
    rec = ledger.record(
        account, inst_id, pos_side, key.strip(), source=checked, c_time=c_time, ord_id=ord_id
    )
    fields = {"account": account, "instId": inst_id, "posSide": pos_side, "key": key.strip()}
    if rec is None:
        log.info("maintenance.duplicate", **fields, source=source)
    else:
        log.info("maintenance.recorded", **fields, source=source, record_id=rec.id)
    return rec


def void(
    ledger: Ledger,
    key: str,
    *,
    account: str | None,
    reason: str,
    actor: Callable[[], str] = _user,
) -> MaintenanceRecord:
    """Void the record with ``key`` (or that ``ordId``); ``account`` when the key is ambiguous."""
    if not key.strip():
        raise CliInputError("KEY: must not be empty")
    matches = ledger.find(key.strip(), account)
    accounts = sorted({r.account for r in matches})
    if not matches:
        where = f" in account {account}" if account else ""
        raise CliInputError(f"KEY: no maintenance record {key!r}{where}")
    if len(accounts) > 1:
        raise CliInputError(
            f"KEY: {key!r} is recorded in accounts {', '.join(accounts)}: add --account"
        )
    live = [r for r in matches if r.voided_ms is None]
    if not live:
        raise CliInputError(f"KEY: maintenance record {key!r} is already void")
    who = f"cli:{actor()}"
    try:
        voided = ledger.void(accounts[0], key.strip(), actor=who, reason=reason)
    except (KeyError, ValueError) as exc:  # voided meanwhile by another process
        raise CliInputError(f"KEY: {exc}") from None
    log.warning(
        "maintenance.voided",
        account=voided.account,
        instId=voided.inst_id,
        posSide=voided.pos_side,
        key=voided.key,
        source=voided.source,
        actor=who,
        reason=reason,
    )
    return voided


def _record_json(r: MaintenanceRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "account": r.account,
        "instId": r.inst_id,
        "posSide": r.pos_side,
        "cTime": r.c_time,
        "key": r.key,
        "ordId": r.ord_id,
        "source": r.source,
        "recorded_ms": r.recorded_ms,
        "voided_ms": r.voided_ms,
    }


def listing(
    ledger: Ledger, *, account: str | None = None, since_ms: int | None = None
) -> tuple[list[PositionCount], list[MaintenanceRecord]]:
    """The position counts and the records, narrowed to ``account`` and (``since_ms``) to the
    records recorded since then and the positions that have one."""
    recs = [
        r
        for r in ledger.list_maintenance()
        if (account is None or r.account == account)
        and (since_ms is None or r.recorded_ms >= since_ms)
    ]
    recent = {(r.account, r.inst_id, r.pos_side) for r in recs}
    counts = [
        pc
        for pc in ledger.position_counts()
        if (account is None or pc.account == account)
        and (since_ms is None or (pc.account, pc.inst_id, pc.pos_side) in recent)
    ]
    return counts, recs


def json_lines(counts: list[PositionCount], recs: list[MaintenanceRecord]) -> list[str]:
    """One JSON line per position (count and sources), then one per record."""
    lines = [
        json.dumps(
            {
                "account": pc.account,
                "instId": pc.inst_id,
                "posSide": pc.pos_side,
                "cTime": pc.c_time,
                "count": pc.count,
                "sources": pc.sources,
            }
        )
        for pc in counts
    ]
    return lines + [json.dumps(_record_json(r)) for r in recs]


def list_lines(ledger: Ledger, *, records: bool = False) -> list[str]:
    """One JSON line per position (count and sources); then each record with ``records``.

    ``cTime`` null groups records not tied to a position: they count for the position of that
    instrument and side that was open when they were recorded.
    """
    counts, recs = listing(ledger)
    return json_lines(counts, recs if records else [])
