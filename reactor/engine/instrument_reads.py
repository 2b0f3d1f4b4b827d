"""The I/O of the instrument registry for the engine shell: the fetch of an instrument the core
has no contract value for (:class:`FetchInstrument`); the registry is
:mod:`reactor.engine.instruments`."""

from __future__ import annotations

from collections.abc import Callable

from reactor.engine.bill_reads import EXCHANGE_ERRORS
from reactor.engine.commands import Command, FetchInstrument
from reactor.engine.core import EngineCore
from reactor.engine.state import MarginClient
from reactor.okx.models import PayloadError, parse_instrument


async def fetch_instrument(
    cmd: FetchInstrument, client: MarginClient, core: EngineCore, clock: Callable[[], float]
) -> list[Command]:
    """Its ``ctVal``, or why there is none, goes to the core."""
    try:
        raw = await client.get_instruments("SWAP", cmd.inst_id)
        found = [parse_instrument(r) for r in raw]
        ct_val = next((i.ct_val for i in found if i.inst_id == cmd.inst_id), None)
        error = None if ct_val is not None else "not listed"
    except (*EXCHANGE_ERRORS, PayloadError) as exc:
        ct_val, error = None, str(exc)
    return core.on_instrument(cmd.inst_id, ct_val, error, now=clock())
