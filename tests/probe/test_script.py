"""The probe's steps and their undo, over an in-memory venue (no sockets, no sleeps).

The venue keeps one isolated position's margin and refuses reduces beyond a limit, the way
the step script expects an exchange to; the real-socket runs are in test_probe_sim.py.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from reactor.domain.policy import PolicyConfig, TargetRule
from reactor.probe.facts import extract_facts
from reactor.probe.record import Recorder, Redactor
from reactor.probe.script import (
    AMBIGUOUS,
    CallResult,
    ProbeOptions,
    ProbeScript,
    Unavailable,
    choose_position,
)

INST = "CRO-USDT-SWAP"
POLICY = PolicyConfig(targets=(TargetRule(0, Decimal(10), Decimal("9.5"), Decimal("10.5")),))


class MemoryVenue:
    """One position; ``limit`` = margin that must stay; scripted failures by call number."""

    def __init__(
        self, *, est: Decimal | None = Decimal("10.00"), limit: Decimal = Decimal("10.29")
    ):
        self.margin = Decimal("20.29")
        self.limit = limit
        self.est = est
        self.calls: list[tuple[str, Decimal]] = []
        self.raise_on: dict[int, Exception] = {}  # call number -> raised instead of answering
        self.ambiguous_on: dict[int, bool] = {}  # call number -> applied before "no answer"
        self.refuse_on: dict[int, str] = {}  # call number -> OKX code
        self.read_fails = False
        self.clock = 1_000_000
        self.rec = Recorder(Redactor([]), clock=lambda: self.clock / 1000)

    def now_ms(self) -> int:
        self.clock += 1
        return self.clock

    def step(self, name: str, phase: str, **fields: Any) -> None:
        self.rec.step(name, phase, **fields)

    def _raw(self) -> dict[str, Any]:
        return {
            "instType": "SWAP",
            "instId": INST,
            "mgnMode": "isolated",
            "posSide": "long",
            "pos": "108",
            "ccy": "USDT",
            "avgPx": "0.0905",
            "markPx": "0.095",
            "lever": "10",
            "margin": format(self.margin, "f"),
            "mmr": "0.4104",
            "upl": "4.86",
            "uTime": str(self.clock),
        }

    async def positions(self) -> list[dict[str, Any]] | Unavailable:
        return [self._raw()]

    async def position(self, inst_id: str, pos_side: str) -> dict[str, Any] | None:
        if self.read_fails:
            raise ConnectionError("read failed")
        return self._raw()

    async def ct_val(self, inst_id: str) -> Decimal | None:
        return Decimal(10)

    async def margin_balance(
        self, inst_id: str, pos_side: str, action: str, amt: Decimal
    ) -> CallResult:
        self.calls.append((action, amt))
        n = len(self.calls)
        if n in self.raise_on:
            raise self.raise_on[n]
        if n in self.refuse_on:
            return CallResult(self.refuse_on[n], "refused")
        if action == "reduce" and self.margin - amt < self.limit:
            return CallResult("59301", "Margin adjustment failed for exceeding the max limit.")
        self.margin += amt if action == "add" else -amt
        if n in self.ambiguous_on:
            if not self.ambiguous_on[n]:
                self.margin -= amt if action == "add" else -amt
            return CallResult(AMBIGUOUS, "read timeout")
        return CallResult("0")

    async def bills(
        self, inst_id: str, sub_type: str, begin_ms: int
    ) -> list[dict[str, Any]] | Unavailable:
        return Unavailable("404", "Not Found")

    async def funding_bills(
        self, inst_id: str, begin_ms: int
    ) -> list[dict[str, Any]] | Unavailable:
        return Unavailable("404", "Not Found")

    async def adjust_leverage_info(
        self, inst_id: str, pos_side: str, lever: str
    ) -> list[dict[str, Any]] | Unavailable:
        if self.est is None:
            return Unavailable("404", "Not Found")
        return [{"estAvailTrans": format(self.est, "f"), "instId": inst_id}]

    async def observe(self, seconds: float) -> None:
        pass

    async def resume(self) -> None:
        pass

    async def wait_push(self, inst_id: str, pos_side: str, after_ms: int, timeout_s: float) -> bool:
        return False

    async def sleep(self, seconds: float) -> None:
        pass


async def run(venue: MemoryVenue, **opts: Any) -> Any:
    return await ProbeScript(venue, ProbeOptions(window_s=0, **opts), POLICY, "A").run()


async def test_happy_path_is_add_reduce_above_and_at_limit_with_net_zero() -> None:
    v = MemoryVenue()
    out = await run(v)
    assert v.calls == [
        ("add", Decimal(1)),
        ("reduce", Decimal(1)),
        ("reduce", Decimal("10.01")),  # one step above estAvailTrans: refused (59301)
        ("reduce", Decimal("10.00")),  # estAvailTrans itself: accepted...
        ("add", Decimal("10.00")),  # ...and added back
    ]
    assert out.clean and out.undo == "not needed" and out.error is None
    assert v.margin == Decimal("20.29")
    facts = extract_facts(v.rec.records)
    assert facts["boundary"]["above_limit"] == {
        "amt": "10.01",
        "expect": "59301",
        "code": "59301",
        "msg": "Margin adjustment failed for exceeding the max limit.",
        "applied": False,
        "as_expected": True,
    }
    assert facts["boundary"]["at_limit"]["applied"] is True
    assert facts["reversal"]["net_left"] == "0"
    assert Decimal(facts["reversal"]["margin_delta"]) == 0


async def test_a_reduce_above_the_limit_that_is_accepted_is_added_back_at_once() -> None:
    v = MemoryVenue(limit=Decimal("5"))  # the venue allows more than its estAvailTrans says
    out = await run(v, at_limit=False)
    assert v.calls[2:] == [("reduce", Decimal("10.01")), ("add", Decimal("10.01"))]
    assert out.clean and v.margin == Decimal("20.29")
    assert extract_facts(v.rec.records)["boundary"]["above_limit"]["as_expected"] is False


async def test_failure_half_way_undoes_what_was_applied_and_says_so() -> None:
    v = MemoryVenue()
    v.raise_on[2] = RuntimeError("connection reset")  # reduce_1 blows up after add_1 applied
    out = await run(v)
    assert v.calls == [("add", Decimal(1)), ("reduce", Decimal(1)), ("reduce", Decimal(1))]
    assert out.undo == "ok" and out.clean
    assert out.error is not None and "connection reset" in out.error
    assert v.margin == Decimal("20.29")
    rev = extract_facts(v.rec.records)["reversal"]
    assert rev["undo"] == "ok" and rev["net_left"] == "0" and "connection reset" in rev["error"]


async def test_a_refused_undo_is_reported_with_the_amount_left() -> None:
    v = MemoryVenue()
    v.raise_on[2] = RuntimeError("boom")
    v.refuse_on[3] = "50013"  # the undo itself is refused
    out = await run(v)
    assert not out.clean
    assert out.net_left == Decimal(1) and out.undo.startswith("failed")
    assert v.margin == Decimal("21.29")


async def test_an_ambiguous_answer_is_resolved_by_re_reading_the_margin() -> None:
    v = MemoryVenue()
    v.ambiguous_on[1] = True  # add_1 applied, answer lost
    v.ambiguous_on[2] = False  # reduce_1 not applied, answer lost
    out = await run(v, at_limit=False)
    # add_1 counted as applied; reduce_1 as not applied, so the undo reduces the 1 added.
    assert ("reduce", Decimal(1)) in v.calls[2:]
    assert out.clean and v.margin == Decimal("20.29")


async def test_an_ambiguous_answer_that_cannot_be_resolved_stops_without_guessing() -> None:
    v = MemoryVenue()
    v.ambiguous_on[1] = True

    async def no_reads(inst_id: str, pos_side: str) -> dict[str, Any] | None:
        raise ConnectionError("down")

    v.position = no_reads  # type: ignore[method-assign]
    out = await run(v)
    assert v.calls == [("add", Decimal(1))]  # nothing sent on its behalf
    assert not out.clean and out.unresolved == [("add", Decimal(1))]
    assert out.error is not None and "cannot tell" in out.error


async def test_without_estavailtrans_the_boundary_is_not_tried() -> None:
    v = MemoryVenue(est=None)
    out = await run(v)
    assert v.calls == [("add", Decimal(1)), ("reduce", Decimal(1))]
    facts = extract_facts(v.rec.records)
    assert facts["reduce_limit"]["available"] is False and facts["reduce_limit"]["code"] == "404"
    assert facts["boundary"] == {}
    assert out.clean


async def test_a_refused_add_skips_the_reduce() -> None:
    v = MemoryVenue(est=None)
    v.refuse_on[1] = "59200"
    out = await run(v)
    assert v.calls == [("add", Decimal(1))]
    assert out.clean


async def test_no_isolated_position_skips_every_margin_step() -> None:
    v = MemoryVenue()
    out = await run(v, inst_id="BTC-USDT-SWAP")
    assert v.calls == []
    assert out.skipped is not None and "BTC-USDT-SWAP" in out.skipped


def test_choose_position_takes_isolated_open_usdt_swaps_only() -> None:
    def raw(**kw: str) -> dict[str, str]:
        base = {"instId": INST, "posSide": "long", "mgnMode": "isolated", "pos": "1"}
        base.update({"instType": "SWAP", "ccy": "USDT"})
        return {**base, **kw}

    cross, closed, good = raw(mgnMode="cross"), raw(pos="0"), raw(posSide="short")
    assert choose_position([cross, closed, good], None, None) is good
    assert choose_position([cross, closed, good], None, "long") is None
    assert choose_position([{"bad": 1}, good], INST, "short") is good


async def test_an_interrupt_half_way_still_moves_the_margin_back() -> None:
    v = MemoryVenue()
    v.raise_on[2] = asyncio.CancelledError()  # Ctrl-C while reduce_1 is in flight
    with pytest.raises(asyncio.CancelledError):
        await run(v)
    assert v.calls[-1] == ("reduce", Decimal(1))  # the undo of add_1
    assert v.margin == Decimal("20.29")


async def test_unreadable_positions_are_an_error_not_a_skip() -> None:
    v = MemoryVenue()

    async def refused() -> list[dict[str, Any]] | Unavailable:
        return Unavailable("50101", "APIKey does not match current environment.")

    v.positions = refused  # type: ignore[method-assign]
    out = await run(v)
    assert v.calls == [] and out.skipped is None
    assert out.error is not None and "50101" in out.error


@pytest.mark.parametrize("est", [Decimal("20.29"), Decimal("1E+9"), Decimal("-1")])
async def test_an_implausible_estavailtrans_sends_nothing_from_it(est: Decimal) -> None:
    v = MemoryVenue(est=est)
    out = await run(v)
    assert v.calls == [("add", Decimal(1)), ("reduce", Decimal(1))]
    lim = extract_facts(v.rec.records)["reduce_limit"]
    assert lim["available"] is True and lim["plausible"] is False
    assert out.clean
