"""SlidingWindow / ConnectPacer with a fake clock: counts, not timings."""

from __future__ import annotations

import asyncio

import pytest

from reactor.okx.pacing import ConnectPacer, SlidingWindow


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_counts() -> None:
    clock = FakeClock()
    pacer = ConnectPacer(clock=clock)
    assert [pacer.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert pacer.delay() == pytest.approx(1.0)
    clock.now += 0.5
    assert not pacer.try_acquire()
    clock.now += 0.5
    assert [pacer.try_acquire() for _ in range(4)] == [True, True, True, False]


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        SlidingWindow(0, 1.0)
    with pytest.raises(ValueError):
        SlidingWindow(1, 0)


async def test_in_flight_requests_hold_their_slot_until_answered() -> None:
    clock = FakeClock()
    bucket = SlidingWindow(2, 2.0, clock=clock)
    async with bucket.slot(), bucket.slot():
        # Both slots in flight, the window long past: still full until one is answered.
        clock.now += 10
        assert bucket.delay() > 0
    # Answered at clock.now: they count for per_s from their answer, not from their start.
    assert bucket.delay() == pytest.approx(2.0)
    clock.now += 2.0
    assert bucket.delay() == 0


async def test_acquire_waits_for_a_slot() -> None:
    bucket = SlidingWindow(2, 0.05)
    waits = [await bucket.acquire() for _ in range(3)]
    assert waits[:2] == [0.0, 0.0] and waits[2] > 0


async def test_waiters_are_served_in_order() -> None:
    bucket = SlidingWindow(1, 0.02)
    order: list[int] = []

    async def take(i: int) -> None:
        await bucket.acquire()
        order.append(i)

    await asyncio.gather(*(take(i) for i in range(4)))
    assert order == [0, 1, 2, 3]
