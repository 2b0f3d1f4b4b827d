"""Sans-I/O glue between the fill gate (:class:`reactor.domain.fills.FillGate`) and the
core: what each gate effect asks for, the ledger writes of maintenances seen on ``orders``
(retried until written), the accounts whose missed fills are being recovered, and what of it
``/healthz`` shows.

It never schedules a position itself: :meth:`MaintenanceFills.apply` returns the position the
effect wakes, and the core decides when.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from reactor.domain.book import BookChange, ChangeKind
from reactor.domain.fills import (
    Effect,
    FillGate,
    PlainFill,
    RecordMaintenance,
    Released,
    Skipped,
    describe_effect,
)
from reactor.engine.commands import Out, RecoverFills, SetTimer, WriteMaintenance
from reactor.engine.health import EngineHealth
from reactor.engine.state import (
    AccountState,
    CountSource,
    PositionControl,
    Role,
    Status,
    StorageError,
)
from reactor.engine.timing import Ctx, set_timer
from reactor.okx.models import Position, PositionKey
from reactor.okx.orders import OrderUpdate

# The timer of the fill gate (grace ends, retried maintenance writes); not a position.
FILLS_KEY = PositionKey("", "", "", "fills")
FILL_WRITE_RETRY_S = 1.0


def ms(now: float) -> int:
    """The engine clock in ms, for the fill gate."""
    return int(now * 1000)


# -- the count the policy targets from -------------------------------------------------
#
# The ledger's count (read once per (position, cTime), forgotten when the ledger gains records)
# plus the maintenances seen on ``orders`` that are not in the ledger yet: they count at once,
# whether or not their write succeeded (a failed write is retried, never lost).

PositionTriple = tuple[str, str, str]  # (account, instId, posSide)


class MaintenanceCounts:
    def __init__(self, source: CountSource) -> None:
        self._source = source
        self._counts: dict[tuple[PositionKey, int], int] = {}
        self._sources: dict[tuple[PositionKey, int], dict[str, int]] = {}
        # Maintenances seen but not yet in the ledger (they count meanwhile), oldest first.
        self.unwritten: list[RecordMaintenance] = []

    def count(self, pos: Position) -> int:
        """The ledger's count plus the unwritten ones; raises the source's StorageError."""
        ck = (pos.key, pos.c_time)
        count = self._counts.get(ck)
        if count is None:
            count = self._counts[ck] = self._source.count(
                pos.account, pos.inst_id, pos.pos_side, pos.c_time
            )
            read_sources = getattr(self._source, "sources", None)
            if read_sources is not None:
                self._sources[ck] = read_sources(pos.account, pos.inst_id, pos.pos_side, pos.c_time)
        return count + self._unwritten_for(pos)

    def sources(self, pos: Position) -> dict[str, int]:
        """Where the counted records came from (cached with the count; no I/O)."""
        sources = dict(self._sources.get((pos.key, pos.c_time), {}))
        pending = self._unwritten_for(pos)
        if pending:
            sources["fill"] = sources.get("fill", 0) + pending
        return sources

    def forget(self, keys: set[PositionTriple]) -> None:
        """The ledger changed for these positions: read their counts again when needed."""
        self._counts = {k: v for k, v in self._counts.items() if k[0][:3] not in keys}
        self._sources = {k: v for k, v in self._sources.items() if k[0][:3] not in keys}

    def read(
        self, ctx: Ctx, pos: Position, control: PositionControl, health: EngineHealth
    ) -> int | None:
        """The count for the policy; None when the ledger could not be read (the position
        retries with back-off, the engine is unhealthy meanwhile)."""
        try:
            return self.count(pos)
        except StorageError as exc:
            health.say_failed(str(exc), "count", ctx.out)
            control.failures += 1
            control.status, control.reason = Status.ERROR, f"ledger read failed: {exc}"
            ctx.retry_later(pos.key, control, "ledger")
            return None

    def changed(self, ctx: Ctx, keys: Iterable[PositionTriple]) -> None:
        """The ledger gained maintenance records for (account, instId, posSide): the target
        may have moved, so those positions are evaluated at once."""
        wanted = set(keys)
        self.forget(wanted)
        for account in {k[0] for k in wanted}:
            for pos in ctx.book.positions(account):
                if pos.key[:3] in wanted:
                    ctx.schedule(pos.key, immediate=True)

    def _unwritten_for(self, pos: Position) -> int:
        if not self.unwritten:
            return 0
        return sum(
            1
            for r in self.unwritten
            if r.position_key == pos.key and (r.c_time is None or r.c_time == pos.c_time)
        )


# -- the fill gate's effects and the maintenance writes -----------------------------------


class MaintenanceFills:
    def __init__(self, gate: FillGate | None, counts: MaintenanceCounts) -> None:
        self.gate = gate if gate is not None and gate.enabled else None
        self.counts = counts
        self.retry_at: float | None = None
        self.recovering: set[str] = set()
        self.problems: dict[str, str] = {}  # for /healthz, until the next success

    def apply(self, effect: Effect, out: Out) -> PositionKey | None:
        """Say and ask for what ``effect`` means; the position it wakes, if any."""
        if isinstance(effect, RecordMaintenance):
            # Counted at once (the write below may fail; it is retried, never lost).
            self.counts.unwritten.append(effect)
            out.add(WriteMaintenance(effect))
            return effect.position_key
        if isinstance(effect, Released):
            fields = describe_effect(effect)
            if effect.reason == "grace_expired":
                out.warning("maintenance.gate.expired", **fields)
            else:
                out.debug("maintenance.gate.released", **fields)
            return effect.key
        if isinstance(effect, Skipped):
            out.warning("maintenance.fill.skipped", **describe_effect(effect))
        elif isinstance(effect, PlainFill):
            out.debug("maintenance.fill.plain", **describe_effect(effect))
        return None

    def written(self, ctx: Ctx, record: RecordMaintenance, record_id: int | None) -> None:
        """The answer of :class:`WriteMaintenance`: the ledger holds ``record`` (``record_id``
        None: it was there already)."""
        out = ctx.out
        unwritten = self.counts.unwritten
        if record in unwritten:
            unwritten.remove(record)
        if not unwritten:
            self.problems.pop("write", None)
        self.counts.forget({record.position_key[:3]})
        fields = {
            "account": record.account,
            "instId": record.inst_id,
            "posSide": record.pos_side,
            "key": record.key,
            "source": "fill",
        }
        if record_id is None:
            out.info("maintenance.duplicate", **fields)
        else:
            out.info("maintenance.recorded", **fields, record_id=record_id, cTime=record.c_time)
        self.arm_timer(out)

    def write_failed(self, ctx: Ctx, record: RecordMaintenance, error: str, retry: bool) -> None:
        """The ledger refused the write: it keeps counting in memory and is written again
        (``retry`` False: the record itself is invalid and is dropped)."""
        out, now = ctx.out, ctx.now
        out.error(
            "maintenance.record.failed",
            account=record.account,
            instId=record.inst_id,
            posSide=record.pos_side,
            key=record.key,
            error=error if retry else f"invalid: {error}",
        )
        unwritten = self.counts.unwritten
        if not retry and record in unwritten:
            unwritten.remove(record)
        elif retry:
            if self.retry_at is None:
                self.retry_at = now + FILL_WRITE_RETRY_S
            self.problems["write"] = (
                f"maintenance: {len(unwritten)} record(s) not in the ledger"
                f" (counted in memory, retrying): {error[:120]}"
            )
        self.arm_timer(out)

    def on_connect(self, ctx: Ctx, state: AccountState) -> None:
        """Maintenances filled while away are read back before anything is corrected."""
        if self.gate is not None and state.role is Role.SUB:
            self.recovering.add(state.name)
            opened = tuple(p for p in ctx.book.positions(state.name) if p.is_open)
            ctx.out.add(RecoverFills(state.name, opened))

    def recovered(self, ctx: Ctx, account: str, keys: Iterable[PositionKey]) -> None:
        """Recovery wrote what was missed (``keys``: positions with new records): go on."""
        self.recovering.discard(account)
        self.problems.pop(f"recovery:{account}", None)
        self.counts.forget({k[:3] for k in keys})
        ctx.schedule_account(account)

    def recovery_failed(self, ctx: Ctx, account: str, error: str) -> None:
        """Recovery could not read OKX's history: correct with the counts there are (never
        stuck), and say so; the next (re)connect tries again."""
        ctx.out.error("maintenance.recovery.failed", account=account, error=error)
        self.recovering.discard(account)
        self.problems[f"recovery:{account}"] = (
            f"{account}: fills missed while away not recovered: {error[:120]}"
        )
        ctx.schedule_account(account)

    def task_failed(self, ctx: Ctx, cmd: RecoverFills, error: str) -> None:
        self.recovery_failed(ctx, cmd.account, f"internal error: {error}")

    def retry_writes(self, now: float, out: Out) -> None:
        """Write again what the ledger refused, once the retry is due."""
        unwritten = self.counts.unwritten
        if unwritten and self.retry_at is not None and now >= self.retry_at:
            self.retry_at = None
            for record in list(unwritten):
                out.add(WriteMaintenance(record))

    def arm_timer(self, out: Out) -> None:
        """One timer for the gate's next deadline and the next write retry."""
        times = [] if self.retry_at is None else [self.retry_at]
        if self.gate is not None:
            deadline = self.gate.next_deadline()
            if deadline is not None:
                times.append(deadline / 1000)
        if times:
            out.add(SetTimer(FILLS_KEY, min(times)))

    # -- the core's fill inputs, with the positions they wake -----------------------------

    def on_orders(self, ctx: Ctx, account: str, orders: Sequence[OrderUpdate]) -> None:
        """An ``orders`` push: maintenances are recorded, held positions released."""
        if self.gate is not None:
            for order in orders:
                if order.account == account:
                    self.effects(ctx, self.gate.on_order(order, ms(ctx.now)))

    def on_change(self, ctx: Ctx, change: BookChange, *, baseline: bool) -> None:
        """A position opened, grew, shrank or closed: the gate may hold or release it."""
        if self.gate is None:
            return
        if change.kind is ChangeKind.CLOSED:
            effects = self.gate.close(change.key, ms(ctx.now))
        else:
            effects = self.gate.on_position(change.position, ms(ctx.now), baseline=baseline)
        self.effects(ctx, effects)

    def on_account_lost(self, ctx: Ctx, account: str) -> None:
        """The account's stream broke: what the gate waited for there is released."""
        if self.gate is not None:
            self.effects(ctx, self.gate.reset_account(account, ms(ctx.now)))

    def effects(self, ctx: Ctx, effects: list[Effect]) -> None:
        for effect in effects:
            key = self.apply(effect, ctx.out)
            if key is not None and ctx.book.get(key) is not None:
                ctx.schedule(key, immediate=True)
        self.arm_timer(ctx.out)

    def tick(self, ctx: Ctx) -> None:
        """The fills timer: grace periods that ended, maintenance writes to retry."""
        if self.gate is not None:
            self.effects(ctx, self.gate.expire(ms(ctx.now)))
        self.retry_writes(ctx.now, ctx.out)
        self.arm_timer(ctx.out)

    def holds(self, ctx: Ctx, pos: Position, control: PositionControl) -> bool:
        """Whether the fills keep ``pos`` from being corrected now (recovery, a fill whose
        order event has not come yet)."""
        if self.gate is None:
            return False
        if pos.account in self.recovering:
            control.status, control.reason = Status.ADJUSTING, "recovering fills missed while away"
            return True  # the recovery's answer re-evaluates every position of the account
        until = self.gate.hold_until(pos, ms(ctx.now))
        if until is None:
            return False
        # It grew: the count may be about to move (a maintenance fill whose order event has
        # not come yet). Correcting now could send it to the old target.
        control.status, control.reason = Status.ADJUSTING, "waiting for the fill's order event"
        set_timer(pos.key, control, until / 1000, ctx.out)
        return True
