"""The latency and funding benchmarks stay runnable and measure what they say: a short run of
each against the real reactor and a simulator process (the full figures are in
docs/performance.md). A probe that silently stopped stamping once printed a whole latency
table of empty figures."""

from __future__ import annotations

from bench import funding, latency


async def test_a_short_latency_run_stamps_every_correction() -> None:
    r = await latency.run_mode({"debounce_ms": 0, "leading_edge": True}, 20)
    assert (r["corrections"], r["margin_calls"], r["errors"]) == (20, 20, 0)
    assert r["own"]["n"] == 20 and r["own"]["p50_ms"] is not None
    assert r["own_journal"]["n"] == 20  # the intent's commit is stamped
    reads = r["reads_before_call"]
    assert reads["add"]["corrections"] + reads["reduce"]["corrections"] == 20


async def test_a_small_funding_settlement_converges_without_refusals() -> None:
    r = await funding.run(quick=True, accounts=10)
    assert (r["positions"], r["moved_by_funding"]) == (200, 200)
    assert r["in_band_after_s"] is not None and r["out_of_band_at_end"] == 0
    assert r["margin_calls"] == 200 and r["other_codes"] == {}
    assert (r["answers_50011"], r["answers_59301"]) == (0, 0)
    # the backlog report: every signed margin call was handled, and aged well under 30 s
    age = r["request_age"]["/api/v5/account/position/margin-balance 0"]
    assert age["n"] == 200 and age["max_ms"] < 30_000
