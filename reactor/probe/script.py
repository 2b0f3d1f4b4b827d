"""The probe's steps, over a small :class:`Venue` protocol, and how they are undone.

Order (docs/spec/okx-fidelity.md §9, checks 1-3):

1. ``observe``: a ``positions`` subscription without ``extraParams``, left alone for the
   window (no client ping), so the push model shows itself;
2. ``select``: one isolated USDT swap position (``--inst-id``/``--pos-side`` or the first);
3. ``add_1`` then ``reduce_1``: whether an event is pushed, ``uTime``/``lever`` after, how soon
   the type-6 bill appears;
4. ``reduce_limit``: ``estAvailTrans`` at the position's lever against the reactor's floor;
5. ``above_limit``: a reduce just above ``estAvailTrans`` (the next amount step; 59301
   expected; if accepted it is added back at once); ``at_limit``: a reduce of
   ``estAvailTrans`` (rounded down to the step), added back;
6. ``funding_bills``: the instrument's funding bills (type 8) of the last 7 days, read only
   (their type, subType and timing: docs/spec/okx-fidelity.md §11.2.2).

A 64008 notice during any step is only recorded (the connection is kept until the venue
closes it, so the facts say when and how it closed: §11.2.4).

Every applied transfer is booked in :class:`Transfers`; whatever happens, the script ends by
moving the net back (``undo``), so the account's margin is where it started. An ambiguous
answer is resolved by re-reading the margin; one that cannot be resolved is never guessed at:
it is reported, and nothing is sent on its behalf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from reactor.domain.policy import PolicyConfig, round_down, safe_floor
from reactor.log import error_text
from reactor.okx.bills import TRANSFER_SUBTYPE
from reactor.okx.models import PayloadError, parse_position
from reactor.probe.facts import lenient_decimal, match_bill

# What the venue answered instead of data: an OKX code (404 when the path does not exist).
NOT_SENT = "not_sent"
FUNDING_LOOKBACK_MS = 7 * 24 * 3_600_000
AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class Unavailable:
    """An endpoint that answered with an error instead of data."""

    code: str
    msg: str


@dataclass(frozen=True, slots=True)
class CallResult:
    """A margin-balance answer: code "0" applied, an OKX code refused, or :data:`AMBIGUOUS`
    (no answer, 50004) / :data:`NOT_SENT` (never left this host)."""

    code: str
    msg: str = ""


class Venue(Protocol):
    """What the steps need from an exchange connection (REST + the positions channel)."""

    def now_ms(self) -> int: ...
    def step(self, name: str, phase: str, **fields: Any) -> None: ...
    async def positions(self) -> list[dict[str, Any]] | Unavailable: ...
    async def position(self, inst_id: str, pos_side: str) -> dict[str, Any] | None: ...
    async def ct_val(self, inst_id: str) -> Decimal | None: ...
    async def margin_balance(
        self, inst_id: str, pos_side: str, action: str, amt: Decimal
    ) -> CallResult: ...
    async def bills(
        self, inst_id: str, sub_type: str, begin_ms: int
    ) -> list[dict[str, Any]] | Unavailable: ...
    async def adjust_leverage_info(
        self, inst_id: str, pos_side: str, lever: str
    ) -> list[dict[str, Any]] | Unavailable: ...
    async def funding_bills(
        self, inst_id: str, begin_ms: int
    ) -> list[dict[str, Any]] | Unavailable: ...
    async def observe(self, seconds: float) -> None:
        """Let the stream run untouched (no client ping) for ``seconds``."""
        ...

    async def resume(self) -> None:
        """Keep the stream alive for the steps: reconnect if it closed, ping when quiet."""
        ...

    async def wait_push(self, inst_id: str, pos_side: str, after_ms: int, timeout_s: float) -> bool:
        """True once a non-snapshot push for the position arrived after ``after_ms``."""
        ...

    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    window_s: float = 60.0
    inst_id: str | None = None
    pos_side: str | None = None
    amount: Decimal = Decimal("1")
    step: Decimal = Decimal("0.01")
    event_wait_s: float = 5.0
    bill_wait_s: float = 10.0
    bill_poll_s: float = 0.5
    at_limit: bool = True


@dataclass
class Transfers:
    """Margin the probe moved and has not moved back: positive = added to the position."""

    net: Decimal = Decimal(0)
    unresolved: list[tuple[str, Decimal]] = field(default_factory=list)

    def book(self, action: str, amt: Decimal) -> None:
        self.net += amt if action == "add" else -amt


@dataclass
class ScriptOutcome:
    inst_id: str | None = None
    pos_side: str | None = None
    net_left: Decimal = Decimal(0)
    unresolved: list[tuple[str, Decimal]] = field(default_factory=list)
    undo: str = "not needed"  # "not needed" | "ok" | "failed: ..."
    error: str | None = None
    skipped: str | None = None

    @property
    def clean(self) -> bool:
        """The account's margin is back where it started, as far as the probe knows."""
        return self.net_left == 0 and not self.unresolved


class UnresolvedCall(Exception):
    """A margin call whose effect could not be determined: stop sending."""


def position_brief(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """The fields the facts compare before and after a call."""
    if raw is None:
        return None
    keys = ("instId", "posSide", "mgnMode", "pos", "margin", "lever", "uTime", "cTime", "posId")
    more = ("markPx", "avgPx", "upl", "mmr", "pTime")
    return {k: raw.get(k) for k in (*keys, *more) if k in raw}


def choose_position(
    positions: list[dict[str, Any]], inst_id: str | None, pos_side: str | None
) -> dict[str, Any] | None:
    """The position to probe: isolated, open, a USDT swap; the requested one if named."""
    for raw in positions:
        try:
            p = parse_position("probe", raw)
        except PayloadError:
            continue
        if not p.is_managed_kind or p.pos == 0:
            continue
        if inst_id is not None and p.inst_id != inst_id:
            continue
        if pos_side is not None and p.pos_side != pos_side:
            continue
        return raw
    return None


class ProbeScript:
    """The steps on one account. :meth:`run` never raises for exchange trouble: it records it,
    undoes what was applied and says so in the outcome."""

    def __init__(
        self, venue: Venue, opts: ProbeOptions, policy: PolicyConfig, account: str
    ) -> None:
        self.v = venue
        self.opts = opts
        self.policy = policy
        self.account = account
        self.transfers = Transfers()
        self.outcome = ScriptOutcome()
        self._inst = ""
        self._side = ""

    async def run(self) -> ScriptOutcome:
        v, o = self.v, self.opts
        v.step("observe", "start", window_s=o.window_s)
        await v.observe(o.window_s)
        v.step("observe", "end")
        try:
            await v.resume()
            await self._margin_steps()
            await self._funding_bills()
        except UnresolvedCall as exc:
            self.outcome.error = str(exc)
        except Exception as exc:  # the account must still be put back
            self.outcome.error = error_text(exc)
            v.step("error", "raised", error=self.outcome.error)
        finally:
            await self._undo()
        return self.outcome

    async def _margin_steps(self) -> None:
        v, o = self.v, self.opts
        listed = await v.positions()
        if isinstance(listed, Unavailable):  # e.g. 50101 (wrong environment), 50111
            self.outcome.error = f"positions not readable: {listed.code} {listed.msg}"[:300]
            v.step("select", "none", reason=self.outcome.error)
            return
        chosen = choose_position(listed, o.inst_id, o.pos_side)
        if chosen is None:
            self._skip("no open isolated USDT swap position" + _named(o.inst_id, o.pos_side))
            return
        self._inst, self._side = str(chosen["instId"]), str(chosen["posSide"])
        self.outcome.inst_id, self.outcome.pos_side = self._inst, self._side
        v.step("select", "chosen", instId=self._inst, posSide=self._side)
        if await self._transfer("add_1", "add", o.amount, observe=True, expect="0"):
            await self._transfer("reduce_1", "reduce", o.amount, observe=True, expect="0")
        est = await self._reduce_limit()
        if est is None:
            return
        # The smallest multiple of the amount step strictly above estAvailTrans (OKX's answer
        # can carry more decimals than margin-balance accepts).
        above = round_down(max(est, Decimal(0)), o.step) + o.step
        if await self._transfer("above_limit", "reduce", above, expect="59301"):
            await self._transfer("above_limit_back", "add", above)
        at = round_down(est, o.step)
        if o.at_limit and at >= o.step and await self._transfer("at_limit", "reduce", at):
            await self._transfer("at_limit_back", "add", at)

    async def _funding_bills(self) -> None:
        """Read-only: the instrument's funding bills of the last 7 days (OKX keeps 7 days)."""
        v = self.v
        if not self._inst:
            return
        got = await v.funding_bills(self._inst, v.now_ms() - FUNDING_LOOKBACK_MS)
        if isinstance(got, Unavailable):
            v.step("funding_bills", "end", code=got.code, msg=got.msg[:200], bills=[])
        else:
            v.step("funding_bills", "end", instId=self._inst, bills=got)

    async def _read(self) -> dict[str, Any] | None:
        """The position over REST; None (recorded) if it cannot be read now."""
        try:
            return await self.v.position(self._inst, self._side)
        except Exception as exc:
            self.v.step("read", "failed", error=error_text(exc))
            return None

    def _skip(self, reason: str) -> None:
        self.outcome.skipped = reason
        self.v.step("select", "none", reason=reason)

    async def _transfer(
        self,
        name: str,
        action: str,
        amt: Decimal,
        *,
        observe: bool = False,
        expect: str | None = None,
    ) -> bool:
        """One margin-balance call, booked; True if it was applied."""
        v = self.v
        before = await self._read()
        t_sent = v.now_ms()
        v.step(
            name,
            "start",
            instId=self._inst,
            posSide=self._side,
            action=action,
            amt=format(amt, "f"),
            expect=expect,
            before=position_brief(before),
            t_sent_ms=t_sent,
        )
        res = await v.margin_balance(self._inst, self._side, action, amt)
        applied: bool | None
        if res.code == "0":
            applied = True
        elif res.code == AMBIGUOUS:
            applied = await self._resolve(before, action, amt)
        else:
            applied = False
        if applied:
            self.transfers.book(action, amt)
        v.step(name, "result", code=res.code, msg=res.msg[:200], applied=applied)
        if applied is None:
            self.transfers.unresolved.append((action, amt))
            raise UnresolvedCall(
                f"{name}: {action} {amt} got no answer and the re-read cannot tell whether "
                "it was applied"
            )
        pushed: bool | None = None
        bill: bool | None = None
        if applied and observe:
            pushed = await v.wait_push(self._inst, self._side, t_sent, self.opts.event_wait_s)
            bill = await self._wait_bill(action, amt, t_sent)
        after = await self._read()
        v.step(name, "end", after=position_brief(after), push_seen=pushed, bill_seen=bill)
        return applied

    async def _resolve(
        self, before: dict[str, Any] | None, action: str, amt: Decimal
    ) -> bool | None:
        """After no answer: did the margin move by exactly ``amt``? None if it cannot say."""
        after = await self._read()
        m0 = lenient_decimal(before.get("margin")) if before else None
        m1 = lenient_decimal(after.get("margin")) if after else None
        if m0 is None or m1 is None:
            return None
        delta = m1 - m0
        if delta == (amt if action == "add" else -amt):
            return True
        if delta == 0:
            return False
        return None

    async def _wait_bill(self, action: str, amt: Decimal, t_sent: int) -> bool | None:
        """Poll the bills until the transfer's bill shows; None if bills are not available."""
        v, o = self.v, self.opts
        sub_type = TRANSFER_SUBTYPE[action]
        waited = 0.0
        while True:
            bills = await v.bills(self._inst, sub_type, t_sent - 5000)
            if isinstance(bills, Unavailable):
                return None
            if match_bill(bills, self._inst, sub_type, amt, t_sent) is not None:
                return True
            if waited >= o.bill_wait_s:
                return False
            await v.sleep(o.bill_poll_s)
            waited += o.bill_poll_s

    async def _reduce_limit(self) -> Decimal | None:
        """``estAvailTrans`` at the current lever, against the reactor's floor."""
        v = self.v
        raw = await self._read()
        if raw is None:
            v.step("reduce_limit", "end", available=False, reason="position not readable")
            return None
        lever = str(raw.get("lever") or "")
        ct_val = await v.ct_val(self._inst)
        floor: Decimal | None = None
        if ct_val is not None:
            try:
                floor = safe_floor(parse_position(self.account, raw), ct_val, self.policy)
            except PayloadError:
                floor = None
        margin = lenient_decimal(raw.get("margin"))
        info = await v.adjust_leverage_info(self._inst, self._side, lever)
        est: Decimal | None = None
        fields: dict[str, Any] = {}
        if isinstance(info, Unavailable):
            fields = {"available": False, "code": info.code, "msg": info.msg[:200]}
        else:
            first = info[0] if info and isinstance(info[0], dict) else {}
            est = lenient_decimal(first.get("estAvailTrans"))
            fields = {"available": est is not None, "answer": first}
        # An amount to send is never taken from an implausible answer: estAvailTrans must lie
        # in [0, margin) for the boundary steps to run.
        plausible = est is not None and margin is not None and 0 <= est < margin
        if est is not None:
            fields["plausible"] = plausible
        v.step(
            "reduce_limit",
            "end",
            lever=lever,
            ctVal=None if ct_val is None else format(ct_val, "f"),
            margin=None if margin is None else format(margin, "f"),
            reactor_floor=None if floor is None else format(floor, "f"),
            est_avail_trans=None if est is None else format(est, "f"),
            position=position_brief(raw),
            **fields,
        )
        return est if plausible else None

    async def _undo(self) -> None:
        """Move the net back; a failure here is reported, never retried blindly."""
        t, out = self.transfers, self.outcome
        if t.net != 0 and self._inst:
            action = "reduce" if t.net > 0 else "add"
            amt = abs(t.net)
            try:
                await self._transfer("undo", action, amt)
            except Exception as exc:
                out.undo = f"failed: {error_text(exc, None)}"[:300]
            else:
                out.undo = "ok" if t.net == 0 else "failed: the venue refused it"
        out.net_left = t.net
        out.unresolved = list(t.unresolved)
        self.v.step(
            "done",
            "end",
            net_left="0" if t.net == 0 else format(t.net, "f"),
            unresolved=[[a, format(x, "f")] for a, x in t.unresolved],
            undo=out.undo,
            error=out.error,
            skipped=out.skipped,
        )


def _named(inst_id: str | None, pos_side: str | None) -> str:
    parts = [p for p in (inst_id, pos_side) if p]
    return f" ({' '.join(parts)})" if parts else ""
