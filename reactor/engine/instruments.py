"""Instruments listed after start-up: one fetch of ctVal at a time, retried with back-off."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from decimal import Decimal

from reactor.engine.commands import FetchInstrument
from reactor.engine.state import PositionControl, Status
from reactor.engine.timing import Ctx, set_timer
from reactor.okx.models import Position


@dataclass(slots=True)
class _Fetch:
    in_flight: bool = False
    failures: int = 0
    next_try: float = 0.0
    error: str = ""


class InstrumentFetches:
    def __init__(self, ct_vals: MutableMapping[str, Decimal]) -> None:
        self.ct_vals = ct_vals  # the engine's contract values, completed here
        self._fetches: dict[str, _Fetch] = {}

    def start(self, inst_id: str, now: float) -> bool:
        """True when a fetch of ``inst_id`` should be sent now (none running, back-off over)."""
        fetch = self._fetches.setdefault(inst_id, _Fetch())
        if fetch.in_flight or now < fetch.next_try:
            return False
        fetch.in_flight = True
        return True

    def backing_off(self, inst_id: str, now: float) -> float | None:
        """When a failed fetch of ``inst_id`` may be tried again, if that is still ahead."""
        fetch = self._fetches.get(inst_id)
        if fetch is None or fetch.in_flight or now >= fetch.next_try:
            return None
        return fetch.next_try

    def done(self, inst_id: str) -> None:
        self._fetches.pop(inst_id, None)

    def failed(self, inst_id: str, error: str, now: float, delay: float) -> int:
        """Record a failure; the next try is after ``delay``. Returns the failures in a row."""
        fetch = self._fetches.setdefault(inst_id, _Fetch())
        fetch.in_flight = False
        fetch.failures += 1
        fetch.error = error
        fetch.next_try = now + delay
        return fetch.failures

    def failures(self, inst_id: str) -> int:
        fetch = self._fetches.get(inst_id)
        return 0 if fetch is None else fetch.failures

    def reason(self, inst_id: str) -> str:
        """Why a position of ``inst_id`` is unmanaged (the status page shows it)."""
        fetch = self._fetches.get(inst_id)
        if fetch is not None and fetch.error:
            return (
                f"instrument {inst_id}: contract value unknown (fetch failed: {fetch.error}; "
                "retrying)"
            )
        return f"instrument {inst_id}: contract value unknown (fetching)"

    def problems(self) -> list[str]:
        return [
            f"instrument {inst_id}: ctVal unknown ({f.error})"
            for inst_id, f in self._fetches.items()
            if f.error
        ]

    def need(self, ctx: Ctx, pos: Position, control: PositionControl) -> None:
        """An instrument listed after start-up: unmanaged, visibly, until its ctVal is read."""
        if self.start(pos.inst_id, ctx.now):
            ctx.out.add(FetchInstrument(pos.account, pos.inst_id))
        else:  # a wake-up during the back-off: wake again when the next try is due
            retry_at = self.backing_off(pos.inst_id, ctx.now)
            if retry_at is not None:
                set_timer(pos.key, control, retry_at, ctx.out)
        control.status, control.reason = Status.UNMANAGED, self.reason(pos.inst_id)

    def task_failed(self, ctx: Ctx, cmd: FetchInstrument, error: str) -> None:
        self.answered(ctx, cmd.inst_id, None, f"internal error: {error}")

    def answered(self, ctx: Ctx, inst_id: str, ct_val: Decimal | None, error: str | None) -> None:
        """The answer to :class:`FetchInstrument`: its ctVal, or why it is not known."""
        out, now = ctx.out, ctx.now
        waiting = [p.key for p in ctx.book.positions() if p.inst_id == inst_id]
        if ct_val is not None and ct_val > 0:
            self.ct_vals[inst_id] = ct_val
            self.done(inst_id)
            out.info("instrument.fetched", instId=inst_id, ctVal=str(ct_val))
            for key in waiting:
                ctx.schedule(key, immediate=True)
            return
        error = error or "ctVal missing"
        delay = ctx.backoff(self.failures(inst_id) + 1)
        failures = self.failed(inst_id, error, now, delay)
        out.warning(
            "instrument.fetch.failed",
            instId=inst_id,
            error=error,
            failures=failures,
            delay_s=round(delay, 3),
        )
        for key in waiting:
            control = ctx.control(key)
            control.status, control.reason = Status.UNMANAGED, self.reason(inst_id)
            if control.due_at is None or control.due_at > now + delay:
                set_timer(key, control, now + delay, out)
