"""The I/O of the REST position reads for the engine shell: the reconcile read
(:class:`ReadPositions`) and the re-read that, with the bills, decides an ambiguous call
(:class:`ResolveOutcome`). What a read means is decided sans-I/O in
:mod:`reactor.engine.reconcile`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reactor.engine.bill_reads import EXCHANGE_ERRORS, BillReader
from reactor.engine.commands import Command, Log, ResolveOutcome
from reactor.engine.core import EngineCore
from reactor.engine.reconcile import parse_rest_positions
from reactor.engine.state import MarginClient
from reactor.log import get_logger
from reactor.okx.models import Position

log = get_logger("reactor.engine")

Clock = Callable[[], float]


async def read_positions(
    account: str, trigger: str, client: MarginClient, core: EngineCore, clock: Clock
) -> tuple[list[Command], int | None]:
    """Compare a REST read of ``account`` with the book (the core corrects it): the core's
    commands and the drifts it found, ``None`` when the read failed."""
    try:
        raw = await client.get_positions("SWAP")
    except EXCHANGE_ERRORS as exc:
        return core.on_read_failed(account, trigger, str(exc), now=clock()), None
    positions = parse(account, raw)
    commands = core.on_positions_read(account, positions, trigger, now=clock())
    drifts = sum(1 for c in commands if isinstance(c, Log) and c.event == "book.drift")
    return commands, drifts


async def resolve(
    cmd: ResolveOutcome, client: MarginClient, bills: BillReader, core: EngineCore, clock: Clock
) -> list[Command]:
    """An ambiguous call: the bills decide when they can (:meth:`BillReader.resolve`);
    without a bill the margin comparison of a positions re-read (read after the bills)."""
    key = cmd.key
    bill, note = await bills.resolve(client, key, cmd.pending)
    try:
        raw = await client.get_positions("SWAP", key[1])
    except EXCHANGE_ERRORS as exc:
        return core.on_resolve_failed(key, str(exc), now=clock())
    positions = parse(key[0], raw)
    return core.on_resolved(
        key,
        positions,
        now=clock(),
        bill_applied=True if bill is not None else None,
        bill_id=None if bill is None else bill.bill_id,
        bills=note,
    )


def parse(account: str, raw: list[dict[str, Any]]) -> list[Position]:
    """The positions OKX returned; each unparsable one is said and left out."""
    positions, errors = parse_rest_positions(account, raw)
    for reason in errors:
        log.warning("rest.payload.invalid", account=account, what="position", reason=reason)
    return positions
