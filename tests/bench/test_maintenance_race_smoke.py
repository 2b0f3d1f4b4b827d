"""bench.maintenance_race in small: counts from fills waste no transfer (real sockets)."""

from __future__ import annotations

from bench.maintenance_race import run


async def test_fills_mode_wastes_nothing() -> None:
    r = await run("fills", positions=5, seconds=2.0, seed=3)
    assert r.maintenances >= 5 and r.calls >= 1
    assert r.wasted == 0
    assert r.in_band_at_end == r.positions
