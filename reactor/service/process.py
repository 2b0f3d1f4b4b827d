"""Cyclic-GC settings for the reactor process (it owns its process, so it may tune them)."""

from __future__ import annotations

import gc

# Generation-0 threshold: the hot path allocates many short-lived, acyclic objects (parsed
# positions, log dicts) that reference counting frees; with the default (2,000) the collector
# ran so often over 10,000 live positions that its pauses were the latency tail (own-share
# p99 at 5,000 pushes/s: 7-13 ms by default, 2.1 ms with this; see docs/performance.md).
GC_THRESHOLDS = (100_000, 50, 1_000)


def tune_gc() -> None:
    """The reactor owns its process: make cyclic GC rare and keep start-up objects out of it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
