"""The latency timer: warm-up, then timed calls until both minimums hold.

Rules (the same on every backend):
- warm-up runs until ``warmup.min_iters`` calls AND ``warmup.min_seconds`` have passed;
- timed calls continue until ``repeat.min_iters`` calls AND ``repeat.min_seconds``;
- each call is timed on its own with ``time.perf_counter_ns``; ``sync`` (for
  asynchronous devices) runs inside the timed region after the call, so the time
  covers the work and not just its launch.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Budget:
    """How long a warm-up or a timed phase lasts: at least ``min_iters`` calls AND at least
    ``min_seconds`` (a suite's ``measure.warmup`` / ``measure.repeat``)."""

    min_iters: int
    min_seconds: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.min_iters, bool) or not isinstance(self.min_iters, int) or self.min_iters < 0:
            raise ValueError(f"Budget.min_iters must be an int >= 0, got {self.min_iters!r}")
        if not isinstance(self.min_seconds, (int, float)) or self.min_seconds < 0:
            raise ValueError(f"Budget.min_seconds must be a number >= 0, got {self.min_seconds!r}")


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
    samples: list[int] = []
    begin = clock()
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
    return samples
