"""The latency timer: warm-up, then timed calls until both minimums hold.

Rules (the same on every backend):
- warm-up runs until ``warmup.min_iters`` calls AND ``warmup.min_seconds`` have passed;
- timed calls continue until ``repeat.min_iters`` calls AND ``repeat.min_seconds``, then, with a
  precision target (``repeat.target_rel_ci``), until the median's 95% interval is within it or
  ``repeat.max_seconds`` have passed;
- each call is timed on its own with ``time.perf_counter_ns``; ``sync`` (for
  asynchronous devices) runs inside the timed region after the call, so the time
  covers the work and not just its launch.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.measure.stats import precise_enough


@dataclass(frozen=True)
class Budget:
    """How long a warm-up or a timed phase lasts: at least ``min_iters`` calls AND at least
    ``min_seconds`` (a suite's ``measure.warmup`` / ``measure.repeat``)."""

    min_iters: int
    min_seconds: float = 0.0
    #: Once both minimums hold, go on until the 95% interval of the median (of the paired speedup, for
    #: paired timing) is within this share of it, e.g. 0.02; None: stop at the minimums.
    target_rel_ci: float | None = None
    #: ... but never past this many seconds of timed calls (then the record says the target was missed).
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.min_iters, bool) or not isinstance(self.min_iters, int) or self.min_iters < 0:
            raise ValueError(f"Budget.min_iters must be an int >= 0, got {self.min_iters!r}")
        if not isinstance(self.min_seconds, (int, float)) or self.min_seconds < 0:
            raise ValueError(f"Budget.min_seconds must be a number >= 0, got {self.min_seconds!r}")
        if self.target_rel_ci is not None and not 0 < self.target_rel_ci < 1:
            raise ValueError(f"Budget.target_rel_ci must be in (0, 1), got {self.target_rel_ci!r}")
        if self.max_seconds is not None and self.max_seconds < self.min_seconds:
            raise ValueError(f"Budget.max_seconds ({self.max_seconds}) must be at least min_seconds ({self.min_seconds})")


def time_calls(
    fn: Callable[[], Any],
    warmup: Budget,
    repeat: Budget,
    *,
    sync: Callable[[], None] | None = None,
) -> list[int]:
    """Durations in ns of each timed call of ``fn`` (at least ``repeat.min_iters``)."""
    clock = time.perf_counter_ns
    warm_ns = int(warmup.min_seconds * 1e9)
    start, done = clock(), 0
    while done < warmup.min_iters or clock() - start < warm_ns:
        fn()
        if sync is not None:
            sync()
        done += 1

    repeat_ns = int(repeat.min_seconds * 1e9)
    target = getattr(repeat, "target_rel_ci", None)  # any object with min_iters and min_seconds will do
    cap = getattr(repeat, "max_seconds", None)
    max_ns = None if cap is None else int(cap * 1e9)
    samples: list[int] = []
    begin = clock()
    while True:
        if sync is None:
            while len(samples) < repeat.min_iters or clock() - begin < repeat_ns:
                t0 = clock()
                fn()
                samples.append(clock() - t0)
        else:
            while len(samples) < repeat.min_iters or clock() - begin < repeat_ns:
                t0 = clock()
                fn()
                sync()
                samples.append(clock() - t0)
        if target is None or precise_enough(samples, target):
            return samples
        if max_ns is not None and clock() - begin >= max_ns:
            return samples
        # Not precise yet: a quarter more calls (at least 10) before looking again, so the check
        # (a sort) stays a small share of the time.
        repeat = Budget(len(samples) + max(10, len(samples) // 4), 0.0, target, cap)
        repeat_ns = 0
