"""The benchmark's bookkeeping (not a benchmark: nothing is timed): wasted transfers, spread
over runs, targets, and the figures of docs/performance.md rewritten between its markers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import BEGIN, END, PERFORMANCE, figures, table, with_previous, write_figures
from bench.common import ROOT
from bench.convergence import reversed_transfers, spread, spread_pct


def call(t: float, kind: str, code: str = "0", inst: str = "A-USDT-SWAP") -> dict[str, object]:
    body = f'{{"instId":"{inst}","posSide":"long","type":"{kind}","amt":"1"}}'
    return {"account": "sub0000", "body": body, "code": code, "time": t}


def test_a_transfer_undone_by_the_next_one_is_wasted() -> None:
    calls = [
        call(1, "reduce"),
        call(2, "add"),  # undoes the reduce
        call(3, "add"),
        call(4, "reduce", code="59301"),  # refused: moved nothing
        call(5, "reduce", inst="B-USDT-SWAP"),  # another position
        call(6, "reduce"),  # undoes the add at 3
    ]
    assert reversed_transfers(calls) == 2
    assert reversed_transfers(sorted(calls, key=lambda c: -float(c["time"]))) == 2  # by time


def test_spread_counts_a_run_that_never_converged_as_the_largest() -> None:
    assert spread([3.0, None, 1.0]) == {"min": 1.0, "median": 3.0, "max": None}
    assert spread([10.0, 11.0, 12.0]) == {"min": 10.0, "median": 11.0, "max": 12.0}
    assert spread_pct({"min": 10.0, "median": 11.0, "max": 12.0}) == 18.2
    assert spread_pct({"min": 1.0, "median": None, "max": None}) is None


def _results() -> dict[str, object]:
    run = {"min": 5, "median": 6, "max": 7}
    return {
        "meta": {"quick": True},
        "convergence": {
            "repeats": 3,
            "poller_scale": 100.0,
            "reduce_rule_switch": False,
            "scenarios": {
                "falling": {
                    "old poller": {
                        "runs": 3,
                        "scale": 100.0,
                        "margin_calls": {"min": 72, "median": 72, "max": 72},
                        "converged_s": {"min": 1600.0, "median": 1650.0, "max": 1700.0},
                        "rejected_59301": run,
                        "reversed": run,
                        "out_of_band_position_s": run,
                        "out_of_band_at_end": run,
                    },
                    "reactor": {
                        "runs": 3,
                        "scale": 100.0,
                        "margin_calls": {"min": 48, "median": 48, "max": 80},
                        "converged_s": {"min": 1000.0, "median": 1200.0, "max": 1500.0},
                        "rejected_59301": run,
                        "reversed": run,
                        "out_of_band_position_s": run,
                        "out_of_band_at_end": run,
                    },
                    "ratio old/new": {
                        "converged_s": 1.4,
                        "margin_calls": 1.5,
                        "rejected_59301": None,
                        "out_of_band_position_s": 1.4,
                    },
                }
            },
        },
    }


def test_every_figure_is_checked_against_its_target() -> None:
    figs = {f["name"]: f for f in figures(_results())}
    calls = figs["calls, falling: reactor (old poller 72)"]
    assert calls["value"] == 48 and calls["ok"] is False  # one run made 80 calls
    assert figs["spread of convergence, falling, old poller"]["ok"] is True  # 6.1 %
    assert figs["spread of convergence, falling, reactor"]["ok"] is False  # 41.7 %
    figs_list = list(figs.values())
    with_previous(figs_list, {"figures": [{"name": calls["name"], "value": 96}]})
    assert calls["previous"] == 96 and calls["ratio_previous_now"] == 2.0


def test_figures_are_replaced_between_the_markers(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text(f"# x\n\n## Performance\nintro\n{BEGIN}\nold figures\n{END}\nnotes\n")
    results = _results()
    results["figures"] = figures(results)
    write_figures(results, page)
    text = page.read_text()
    assert "old figures" not in text
    assert text.startswith("# x\n\n## Performance\nintro\n")
    assert text.endswith(f"{END}\nnotes\n")
    assert table(results) in text
    page.write_text("no markers")
    with pytest.raises(SystemExit):
        write_figures(results, page)


def test_the_figures_are_written_into_docs_performance() -> None:
    """The generated tables live in docs/performance.md, once, and no longer in the README."""
    assert PERFORMANCE == ROOT / "docs" / "performance.md"
    text = PERFORMANCE.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert text.index(BEGIN) < text.index(END)
    readme = (ROOT / "README.md").read_text()
    assert BEGIN not in readme and END not in readme


def test_the_funding_settlement_and_the_reads_before_a_call_are_figures() -> None:
    """Issue 18: reads on the call's path, the own share split, the funding settlement."""
    dist = {"n": 1, "p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 3.0}
    reads = {
        "add": {"corrections": 5, "with_no_read": 5, "max": 0, "by_endpoint": {}},
        "reduce": {
            "corrections": 5,
            "with_no_read": 4,
            "max": 1,
            "by_endpoint": {"/api/v5/account/adjust-leverage-info": 1},
        },
    }
    results: dict[str, object] = {
        "meta": {"load_start": [1.5, 1, 1], "load_end": [0.5, 1, 1], "carried": {"ha": "X"}},
        "latency": {
            "debounce 0": {
                "corrections": 10,
                "e2e": dist,
                "own": dist,
                "calls_per_correction": 1.0,
                **{f"own_{p}": dist for p in ("parse", "journal", "reads", "rest")},
                "reads_before_call": reads,
            }
        },
        "funding": {
            "accounts": 2,
            "positions": 40,
            "moved_by_funding": 40,
            "in_band_after_s": 1.2,
            "out_of_band_at_end": 0,
            "margin_calls": 40,
            "answers_50011": 0,
            "answers_59301": 1,
            "other_errors": 0,
            "reads": {},
        },
    }
    figs = {f["name"]: f for f in figures(results)}
    assert figs["adds with an exchange read before the call, debounce 0"]["ok"] is True
    assert figs["reduces with an exchange read before the call, debounce 0"]["value"] == 1
    assert figs["funding settlement, 2 x 20: 59301 answers"]["ok"] is False
    assert figs["funding settlement, 2 x 20: margin calls"]["ok"] is True
    text = table(results)
    assert "reduce: 4 of 5 with none" in text and "| 40 | 1.2 s | 0 | 40 | 0 | 1 |" in text
    assert "Load average (1 min) 1.50 at the start, 0.50 at the end." in text
    assert "(ha: carried over from the run of X.)" in text
