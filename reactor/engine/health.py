"""What makes the engine unhealthy besides its accounts: journal writes, internal errors.

Plain state with no I/O; the core logs the events, the status view lists :meth:`problems`.
"""

from __future__ import annotations

from reactor.engine.commands import Out, SetTimer, WriteResult
from reactor.engine.timing import Ctx
from reactor.okx.models import PositionKey

# The timer of engine-wide work (retrying journal writes that failed); not a position.
STORAGE_KEY = PositionKey("", "", "", "")


class EngineHealth:
    def __init__(self, internal_error_window_s: float) -> None:
        self.storage_error: str | None = (
            None  # the last journal/ledger failure, until a write works
        )
        self.storage_failures = 0  # in a row: the back-off of re-writing results
        self.unwritten: dict[int, WriteResult] = {}  # results known here but not on disk
        self.internal_errors = 0
        self._internal_error_at = -1e18
        self._internal_error = ""
        self._window_s = internal_error_window_s

    @property
    def storage_ok(self) -> bool:
        return self.storage_error is None

    def storage_failed(self, error: str) -> bool:
        """Record a failed read or write; True when it starts an episode."""
        first = self.storage_error is None
        self.storage_error = error[:200]
        return first

    def storage_recovered(self) -> str | None:
        """A write worked: the error that ended, if an episode ended (nothing left to write)."""
        if self.storage_error is None or self.unwritten:
            return None
        error, self.storage_error = self.storage_error, None
        self.storage_failures = 0
        return error

    def internal_error(self, error: str, now: float) -> None:
        self.internal_errors += 1
        self._internal_error_at = now
        self._internal_error = error[:200]

    def problems(self, now: float) -> list[str]:
        out = []
        if self.storage_error is not None:
            out.append(f"journal: writes failing ({self.storage_error})")
        if now - self._internal_error_at < self._window_s:
            out.append(
                f"engine: {self.internal_errors} internal error(s), last: {self._internal_error}"
            )
        return out

    # -- what the core says about storage ---------------------------------------------------

    def say_failed(self, error: str, what: str, out: Out) -> None:
        first = self.storage_failed(error)
        out.error("journal.write.failed", what=what, error=error[:200], first=first)

    def say_recovered(self, out: Out) -> None:
        ended = self.storage_recovered()
        if ended is not None:
            out.info("journal.write.recovered", error=ended)

    def retry_results(self, out: Out) -> None:
        """Results a failed write left behind, written again (before any new intent)."""
        for result in list(self.unwritten.values()):
            out.add(result)

    def result_written(self, ctx: Ctx, journal_id: int) -> None:
        self.unwritten.pop(journal_id, None)
        self.say_recovered(ctx.out)

    def result_failed(self, ctx: Ctx, result: WriteResult, error: str) -> None:
        """The call's answer is known here but not on disk: keep it and write it again later.

        Until then the entry stays ``pending``, which a restart reads as unknown (a re-read):
        never unsafe, only slower."""
        self.say_failed(error, "result", ctx.out)
        self.unwritten[result.journal_id] = result
        self.storage_failures += 1
        ctx.out.add(SetTimer(STORAGE_KEY, ctx.now + ctx.backoff(self.storage_failures)))
