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
from typing import Any, Protocol


class Budget(Protocol):
    min_iters: int
    min_seconds: float


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
