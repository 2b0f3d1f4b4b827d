"""Hypothesis properties of the no-race gate.

A model exchange executes a few orders (tagged maintenances or plain buys, some in partial
fills) on one isolated long; every fill is pushed once on ``orders`` (possibly duplicated) and
the position is pushed after some of them (several fills may share one push, which may be an
event push or a regular snapshot). The two channels
keep their own order, as pushes on one OKX connection do, but are merged in any interleaving,
all within the grace window. Whenever the gate lets the position be evaluated, every
maintenance included in the pushed size is already recorded, and every fill already classified
is included in the pushed size: the correction uses the final count with the final margin.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from reactor.domain.fills import DetectRule, FillGate, RecordMaintenance, Released
from reactor.okx.models import Position
from reactor.okx.orders import OrderUpdate, parse_order

from .factories import D, position

T0 = 1_700_000_000_000
START = T0 + 60_000
S0 = 108
GRACE = 300
TAG = DetectRule(tag="maint")


@dataclass(frozen=True)
class Part:
    ord_id: str
    tagged: bool
    size: int
    acc: int  # the order's accFillSz after this part
    last: bool  # the order's last part


@dataclass(frozen=True)
class OrderPush:
    part: int  # index into the execution sequence


@dataclass(frozen=True)
class PositionPush:
    upto: int  # the position includes parts [0, upto)
    snapshot: bool = False  # a regular snapshot (baseline) rather than an event push


def order_push(p: Part, t: int) -> OrderUpdate:
    return parse_order(
        "sub1",
        {
            "instId": "CRO-USDT-SWAP",
            "ordId": p.ord_id,
            "tag": "maint" if p.tagged else "",
            "state": "filled" if p.last else "partially_filled",
            "side": "buy",
            "posSide": "long",
            "tdMode": "isolated",
            "fillSz": str(p.size),
            "accFillSz": str(p.acc),
            "fillTime": str(t),
            "tradeId": f"{p.ord_id}-{p.acc}",
        },
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Part], list[object], list[int]]:
    parts: list[Part] = []
    for i in range(draw(st.integers(1, 4))):
        tagged = draw(st.booleans())
        sizes = draw(st.lists(st.integers(1, 20), min_size=1, max_size=3))
        acc = 0
        for j, size in enumerate(sizes):
            acc += size
            parts.append(Part(f"o{i}", tagged, size, acc, j == len(sizes) - 1))
    # Position pushes after some fills (always after the last one: OKX pushes every change).
    cuts = sorted(set(draw(st.lists(st.integers(1, len(parts)), max_size=len(parts)))))
    if not cuts or cuts[-1] != len(parts):
        cuts.append(len(parts))
    orders: list[object] = []
    for k in range(len(parts)):
        orders.append(OrderPush(k))
        if draw(st.booleans()) and draw(st.booleans()):
            orders.append(OrderPush(k))  # delivered twice
    positions: list[object] = [PositionPush(c, draw(st.booleans())) for c in cuts]
    # Merge the two FIFO streams in any interleaving.
    merged: list[object] = []
    oi = pi = 0
    while oi < len(orders) or pi < len(positions):
        take_order = pi >= len(positions) or (oi < len(orders) and draw(st.booleans()))
        if take_order:
            merged.append(orders[oi])
            oi += 1
        else:
            merged.append(positions[pi])
            pi += 1
    # Timestamps: increasing, all within one grace window.
    steps = draw(st.lists(st.integers(0, 15), min_size=len(merged), max_size=len(merged)))
    times, t = [], START
    for s in steps:
        t += s
        times.append(t)
    assert times[-1] - START < GRACE
    return parts, merged, times


def pushed(parts: list[Part], upto: int) -> Position:
    size = S0 + sum(p.size for p in parts[:upto])
    return position(pos=D(size), u_time=START)


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_evaluation_always_sees_the_final_count(
    scenario: tuple[list[Part], list[object], list[int]],
) -> None:
    parts, events, times = scenario
    gate = FillGate(TAG, grace_ms=GRACE)
    gate.on_position(position(), T0, baseline=True)
    recorded: list[str] = []
    current: Position | None = None
    upto = 0
    delivered = 0  # order pushes seen: parts [0, delivered) (one channel keeps its order)
    for event, now in zip(events, times, strict=True):
        if isinstance(event, OrderPush):
            delivered = max(delivered, event.part + 1)
            effects = gate.on_order(order_push(parts[event.part], now), now)
        else:
            assert isinstance(event, PositionPush)
            upto = event.upto
            current = pushed(parts, upto)
            effects = gate.on_position(current, now, baseline=event.snapshot)
        for effect in effects:
            if isinstance(effect, RecordMaintenance):
                assert effect.c_time == T0  # tied to the position it grew
                recorded.append(effect.ord_id)
            elif isinstance(effect, Released):
                assert effect.reason == "classified"
        assert gate.expire(now) == []  # nothing times out inside the grace window
        if current is not None and not gate.held(current, now):
            # Evaluable now: every maintenance in the pushed size is already counted ...
            included = {p.ord_id for p in parts[:upto] if p.tagged}
            assert included <= set(recorded)
            # ... and no fill is counted that the pushed size (and margin) does not show yet.
            assert delivered <= upto
    # Each maintenance counted exactly once, partial fills and duplicates included.
    assert sorted(recorded) == sorted({p.ord_id for p in parts if p.tagged})
    # Nothing is left held or waiting once every push has arrived.
    assert current is not None and not gate.held(current, times[-1])
    assert gate.next_deadline() is None


@settings(max_examples=200, deadline=None)
@given(
    grow=st.integers(1, 50),
    delays=st.lists(st.integers(0, 10_000), min_size=1, max_size=5),
    grace=st.integers(0, 2_000),
)
def test_never_held_past_grace(grow: int, delays: list[int], grace: int) -> None:
    """Whatever arrives (or never does), a grown position is evaluable after grace_ms."""
    gate = FillGate(TAG, grace_ms=grace)
    gate.on_position(position(), T0, baseline=True)
    now = START
    for d in delays:
        now += d
        grown = position(pos=D(S0 + grow))
        gate.on_position(grown, now)
        deadline = gate.next_deadline()
        assert deadline is None or deadline <= now + grace
        gate.expire(now + grace)
        assert not gate.held(grown, now + grace)
        grow += 1


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[OrderUpdate], set[str]]:
    rows = []
    for i in range(draw(st.integers(0, 12))):
        tagged = draw(st.booleans())
        filled = draw(st.integers(0, 5))
        rows.append(
            parse_order(
                "sub1",
                {
                    "instId": draw(st.sampled_from(["CRO-USDT-SWAP", "DOGE-USDT-SWAP"])),
                    "ordId": f"o{draw(st.integers(0, 8))}",
                    "tag": "maint" if tagged else "",
                    "state": "filled" if filled else "canceled",
                    "side": draw(st.sampled_from(["buy", "sell"])),
                    "posSide": draw(st.sampled_from(["long", "short"])),
                    "tdMode": draw(st.sampled_from(["isolated", "isolated", "cross"])),
                    "accFillSz": str(filled),
                    "fillTime": str(T0 + draw(st.integers(-1_000, 10_000)) + i),
                },
            )
        )
    recorded = set(draw(st.lists(st.sampled_from([f"o{i}" for i in range(9)]), max_size=4)))
    return rows, recorded


@settings(max_examples=300, deadline=None)
@given(histories())
def test_recovery_is_idempotent_and_sound(case: tuple[list[OrderUpdate], set[str]]) -> None:
    """Recovered fills are new, matching, tied to an open position they could have grown; and
    recovering again after recording them finds nothing."""
    from reactor.domain.fills import classify, missing_from_orders

    orders, recorded = case
    positions = [position(), position(pos_side="short", c_time=T0 + 5_000)]
    found = missing_from_orders("sub1", orders, positions, recorded, TAG)
    ids = [r.ord_id for r in found]
    assert len(ids) == len(set(ids)) and not set(ids) & recorded
    by_side = {p.pos_side: p for p in positions if p.inst_id == "CRO-USDT-SWAP"}
    for rec in found:
        pos = by_side[rec.pos_side]
        assert rec.inst_id == pos.inst_id and rec.c_time == pos.c_time
        assert rec.fill_time >= pos.c_time
        assert any(o.ord_id == rec.ord_id and classify(o, TAG)[0] == "maintenance" for o in orders)
    assert missing_from_orders("sub1", orders, positions, recorded | set(ids), TAG) == []
