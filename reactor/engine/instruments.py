"""Instruments listed after start-up: one fetch of ctVal at a time, retried with back-off."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Fetch:
    in_flight: bool = False
    failures: int = 0
    next_try: float = 0.0
    error: str = ""


class InstrumentFetches:
    def __init__(self) -> None:
        self._fetches: dict[str, _Fetch] = {}

    def start(self, inst_id: str, now: float) -> bool:
        """True when a fetch of ``inst_id`` should be sent now (none running, back-off over)."""
        fetch = self._fetches.setdefault(inst_id, _Fetch())
        if fetch.in_flight or now < fetch.next_try:
            return False
        fetch.in_flight = True
        return True

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
