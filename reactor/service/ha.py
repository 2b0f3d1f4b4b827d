"""High availability in the running reactor: the lease task, the warm standby, the takeover.

One instance per scope holds the lease (:mod:`reactor.store.lease`) and acts; the others are
warm standbys: connected, subscribed, their book fresh, and they send nothing. Three fences
keep a stale leader from moving margin, none of which needs the engine to know about HA:

- the standby's accounts are held in the engine with a whole-account pause ("ha standby"), so
  it decides nothing;
- every journal intent is fenced by the lease's epoch (``PostgresLedger.fence``): an instance
  that lost the lease cannot write an intent, and no intent means no call;
- every state-changing REST request passes :class:`~reactor.store.lease.SignClock` after it is
  signed (``OkxRestClient.sign_fence``): signing stops ``sign_window_s + sign_margin_s``
  before the lease can expire, so OKX's 30 s window refuses anything later.

Taking over: the old epochs' pending intents become ``unknown`` and are resolved from bills
(the engine's restart path, ``recover_journal``), every account's positions are re-read over
REST, then the pauses are lifted. Losing the lease or the database stops signing at once,
keeps the sessions and the book, and makes ``/healthz`` 503 with the reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from reactor.config import HaSection
from reactor.log import get_logger
from reactor.status.model import HaStatus, StatusSnapshot, StatusSource
from reactor.store.lease import LeaseStore, LeaseUnavailable, SignClock
from reactor.store.postgres import Fence, PostgresLedger

if TYPE_CHECKING:
    from reactor.service.runtime import Runtime

log = get_logger("reactor.service.ha")

STANDBY_REASON = "ha standby: another instance holds the lease"
NO_EPOCH = -1  # the fence before any grant: matches no lease row

Role = Literal["standby", "leader"]


class ScopeClash(Exception):
    """An account of this scope is already another scope's (sharding): refused at start."""


class HaRole:
    """The lease task's state and steps (``step`` is one tick; ``run`` loops it)."""

    def __init__(
        self,
        cfg: HaSection,
        store: LeaseStore,
        ledger: PostgresLedger,
        *,
        on_acquired: Callable[[int], Awaitable[None]],
        on_lost: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.ledger = ledger
        self.sign = SignClock(cfg.lease_ttl_s, cfg.sign_window_s, cfg.sign_margin_s, clock=clock)
        self._clock = clock
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self.role: Role = "standby"
        self.epoch = NO_EPOCH
        self.holder: str | None = None  # the holder last seen (self when leader)
        self.seen_epoch: int | None = None  # the lease's epoch last seen (own when leader)
        self.problem: str | None = None  # for /healthz: the database or the lease is lost
        self._valid_until = float("-inf")  # local lower bound of the lease's expiry
        self._standby_seen: tuple[str | None, int] | None = None
        ledger.fence = Fence(cfg.scope, cfg.instance, NO_EPOCH)

    @property
    def poll_s(self) -> float:
        """Standby poll and leader renewal period."""
        if self.role == "leader":
            return self.cfg.renew_interval_s
        return min(1.0, self.cfg.renew_interval_s)

    async def step(self) -> None:
        if self.role == "leader":
            await self._renew()
        else:
            await self._try_acquire()

    async def run(self) -> None:
        await asyncio.to_thread(self.store.ensure, self.cfg.scope)
        while True:
            try:
                await self.step()
            except Exception as exc:  # the lease task must outlive any one failure
                log.exception("reactor.task.error", task="ha", error=f"{type(exc).__name__}")
            await asyncio.sleep(self.poll_s)

    async def _try_acquire(self) -> None:
        cfg = self.cfg
        sent = self._clock()
        try:
            epoch = await asyncio.to_thread(
                self.store.acquire, cfg.scope, cfg.instance, cfg.lease_ttl_s
            )
            info = (
                None if epoch is not None else await asyncio.to_thread(self.store.info, cfg.scope)
            )
            adopted = False
            if epoch is None and info is not None and info.held and info.holder == cfg.instance:
                # A grant (or renewal) whose answer we never got - the database froze with our
                # statement in flight and ran it on its return: the lease is ours, but nobody
                # would act under it for a whole TTL. Renew it, timed from now, and act.
                sent = self._clock()
                if await asyncio.to_thread(
                    self.store.renew, cfg.scope, cfg.instance, info.epoch, cfg.lease_ttl_s
                ):
                    epoch, adopted = info.epoch, True
        except LeaseUnavailable as exc:
            self._db_problem(exc)
            return
        self.problem = None
        if epoch is None:
            seen = (info.holder if info.held else None, info.epoch) if info else (None, 0)
            self.holder, self.seen_epoch = seen[0], seen[1] or None
            if seen != self._standby_seen:
                self._standby_seen = seen
                log.info("ha.standby", scope=cfg.scope, holder=seen[0], epoch=seen[1])
            return
        self.sign.granted(sent)
        self._valid_until = sent + cfg.lease_ttl_s
        self.role, self.epoch, self.holder = "leader", epoch, cfg.instance
        self.seen_epoch = epoch
        self._standby_seen = None
        self.ledger.fence = Fence(cfg.scope, cfg.instance, epoch)
        log.info(
            "ha.lease.acquired",
            scope=cfg.scope,
            epoch=epoch,
            instance=cfg.instance,
            adopted=adopted,
        )
        await self._on_acquired(epoch)

    async def _renew(self) -> None:
        cfg = self.cfg
        sent = self._clock()
        try:
            ok = await self._answer(
                self.store.renew, cfg.scope, cfg.instance, self.epoch, cfg.lease_ttl_s
            )
        except LeaseUnavailable as exc:
            log.warning(
                "ha.lease.renew_failed",
                scope=cfg.scope,
                epoch=self.epoch,
                reason=exc.reason,
                error=str(exc)[:300],
            )
            self._db_problem(exc)
            if self._clock() >= self._valid_until:
                self._lose("expired: renewals failed for a whole TTL")
            return
        if not ok:
            self._lose("taken or expired")
            return
        self.problem = None
        self.sign.granted(sent)
        self._valid_until = sent + cfg.lease_ttl_s

    async def _answer(self, call: Callable[..., bool], *args: object) -> bool:
        """A lease call in a thread. One still unanswered after a renew interval (it takes
        milliseconds) shows on ``/healthz`` at once rather than when the store's watchdog cuts
        it; its answer is still awaited, so calls never pile up. Signing is bounded by the last
        grant either way (:class:`SignClock`)."""
        task = asyncio.ensure_future(asyncio.to_thread(call, *args))
        done, _ = await asyncio.wait({task}, timeout=self.cfg.renew_interval_s)
        if not done:
            self.problem = "ha: lease database not answering"
        return await task

    def _db_problem(self, exc: LeaseUnavailable) -> None:
        self.problem = f"ha: lease database {exc.reason}"

    def _lose(self, why: str) -> None:
        self.sign.revoke()
        log.error("ha.lease.lost", scope=self.cfg.scope, epoch=self.epoch, reason=why)
        self.problem = f"ha: lease lost ({why})"
        self.role = "standby"
        self.holder = None  # unknown until the next poll reads the lease
        self._on_lost()

    async def release(self) -> None:
        """Clean stop (after the drain): keep the lease only as long as a request signed under
        it could still be accepted; a successor then starts without waiting for the TTL."""
        if self.role != "leader":
            return
        hold_s = self.sign.hold_after_release_s()
        self.sign.revoke()
        try:
            await asyncio.to_thread(
                self.store.release, self.cfg.scope, self.cfg.instance, self.epoch, hold_s
            )
        except LeaseUnavailable as exc:
            log.warning(
                "ha.lease.renew_failed",
                scope=self.cfg.scope,
                epoch=self.epoch,
                reason=exc.reason,
                error=str(exc)[:300],
            )
            return
        self.role, self.holder = "standby", None
        log.info("ha.lease.released", scope=self.cfg.scope, epoch=self.epoch, hold_s=hold_s)

    def status(self) -> HaStatus:
        """Role, epoch and holder for ``/api/status`` and the status page."""
        return HaStatus(
            scope=self.cfg.scope,
            instance=self.cfg.instance,
            role=self.role,
            epoch=self.seen_epoch,
            holder=self.holder,
        )

    def standby_pauses(self, accounts: list[str]) -> dict[tuple[str, str | None, str | None], str]:
        """The whole-account holds of a standby (nothing while leader)."""
        if self.role == "leader":
            return {}
        return {(name, None, None): STANDBY_REASON for name in accounts}


class WithHaHealth:
    """The status with the HA role, epoch and holder, and the HA problem (lease or database
    lost) as an engine problem, which makes ``/healthz`` answer 503 with the reason."""

    def __init__(self, source: StatusSource, role: HaRole) -> None:
        self._source = source
        self._role = role

    def status_snapshot(self) -> StatusSnapshot:
        snap = replace(self._source.status_snapshot(), ha=self._role.status())
        problem = self._role.problem
        if problem is None or problem in snap.engine_problems:
            return snap
        return replace(snap, engine_problems=(*snap.engine_problems, problem))


def attach(rt: Runtime, cfg: HaSection) -> HaRole:
    """Make ``rt`` an HA instance, a standby until the lease task acquires: fence the ledger
    and the REST clients, hold every account, health from the lease. The caller spawns
    :meth:`HaRole.run` and calls :meth:`HaRole.release` at stop."""
    from reactor.service.loops import sync_pauses

    ledger = rt.ledger
    if not isinstance(ledger, PostgresLedger):
        raise TypeError("ha needs the PostgreSQL ledger (storage.kind: postgres)")
    store = LeaseStore(ledger.dsn, timeout_s=rt.cfg.storage.timeout_s)
    clash = store.claim(cfg.scope, [a.name for a in rt.cfg.accounts])
    if clash:
        store.close()
        where = ", ".join(f"{name} (in {other})" for name, other in clash.items())
        raise ScopeClash(
            f"ha.scope {cfg.scope}: accounts already in another scope: {where}; an account"
            " belongs to one scope only - remove it from one shard's config (and restart that"
            " shard first when moving it)"
        )

    async def on_acquired(epoch: int) -> None:
        # The old epochs' unanswered calls: unknown, re-read before anything is sent for
        # their positions, resolved from bills (the restart path); then a fresh snapshot of
        # every account; only then are the standby holds lifted.
        rt.engine.recover_journal()
        for name in list(rt.clients):
            await rt.engine.reconcile_account(name, trigger="connect")
        sync_pauses(rt)

    def on_lost() -> None:
        sync_pauses(rt)

    role = HaRole(cfg, store, ledger, on_acquired=on_acquired, on_lost=on_lost)
    for client in rt.clients.values():
        client.sign_fence = role.sign.may_sign
    return role
