"""Paired timing: a changed model and its baseline timed in alternating blocks, in one process.

A speedup measured as the ratio of two medians taken in different processes minutes apart moves
with whatever else the machine did in between; a busy neighbour can turn 3.9x into 19.6x. Here the
two models take turns: block after block, in the order method, baseline, baseline, method, ...
(ABBA, so a slow drift of the machine weighs on both alike), each block ``block_s`` long (less when
``min_seconds`` is small: a tenth of it over ``min_blocks`` pairs, and ``min_iters / min_blocks`` calls).
Each block gives one median; the speedup is the median of the baseline's block medians over the
median of the method's, and its 95% interval comes from a bootstrap over block pairs (resampled
with their pairing kept), the way Google Benchmark's interleaved repetitions and asv's paired
comparisons judge a change.

Blocks go on until the interval's half-width is within ``target_rel_ci`` of the speedup (the
precision target), at least ``min_blocks`` pairs, ``min_iters`` calls of the method and
``min_seconds`` have passed, or until ``max_seconds`` (then ``precision_reached`` is false); the
cap is looked at only once the minimums hold.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.measure.timing import Budget

#: A block lasts at least this long (and at least one call): long enough to hold many calls of a
#: fast model, short enough that the two models see the same machine.
BLOCK_S = 0.05
#: At least this many block pairs before the interval is trusted.
MIN_BLOCKS = 5
#: Bootstrap resamples for the interval.
BOOTSTRAP = 2000


@dataclass
class PairedTiming:
    method_ns: list[int]
    baseline_ns: list[int]
    method_blocks: list[float]  # each block's median, ns
    baseline_blocks: list[float]
    speedup: float
    ci_low: float
    ci_high: float
    precision_reached: bool
    seconds: float

    @property
    def blocks(self) -> int:
        return len(self.method_blocks)

    @property
    def rel_half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2 / self.speedup if self.speedup > 0 else float("inf")


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    return float(s[n // 2]) if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def ratio_interval(baseline_blocks: Sequence[float], method_blocks: Sequence[float], seed: int = 0,
                   resamples: int = BOOTSTRAP) -> tuple[float, float, float]:
    """(speedup, low, high): median(baseline blocks) / median(method blocks), and its 95% percentile
    bootstrap interval over block pairs (pairs resampled together)."""
    import numpy as np

    b = np.asarray(baseline_blocks, dtype=np.float64)
    m = np.asarray(method_blocks, dtype=np.float64)
    point = float(np.median(b) / np.median(m))
    if len(b) < 2:
        return point, point, point
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(b), size=(resamples, len(b)))
    ratios = np.median(b[idx], axis=1) / np.median(m[idx], axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return point, float(min(low, point)), float(max(high, point))


def time_paired(
    time_calls: Callable[[Callable[[], Any], Budget, Budget], list[int]],
    method: Callable[[], Any],
    baseline: Callable[[], Any],
    warmup: Budget,
    repeat: Budget,
    *,
    target_rel_ci: float | None,
    max_seconds: float | None,
    block_s: float = BLOCK_S,
    min_blocks: int = MIN_BLOCKS,
    seed: int = 0,
    warm_method: bool = True,
    screen: Any = None,
) -> PairedTiming:
    """Warm both up (the method only when ``warm_method``: a caller that just ran it need not), then time them in alternating blocks with the backend's own ``time_calls``
    (so its synchronisation rules hold) until the precision target or the caps say stop. ``screen``
    (a ``harness.measure.contention.Screen``) runs each pair of blocks, measuring a contended pair
    again; ``min_seconds`` then counts the kept pairs' time, ``max_seconds`` all of it."""
    none = Budget(0, 0.0)
    if warm_method:
        time_calls(method, warmup, Budget(1, 0.0))
    time_calls(baseline, warmup, Budget(1, 0.0))
    # A block is BLOCK_S long at most, and shorter when the whole budget is small: min_seconds 0 (a
    # test's quick measure) makes blocks of min_iters / min_blocks calls, so pairing costs no fixed time.
    block = Budget(max(1, repeat.min_iters // min_blocks), min(block_s, repeat.min_seconds / (2 * min_blocks)))
    method_ns: list[int] = []
    baseline_ns: list[int] = []
    mb: list[float] = []
    bb: list[float] = []
    t0 = time.perf_counter()
    reached = False
    interval = (0.0, 0.0, 0.0)
    next_check = min_blocks
    while True:
        arms = ((method, method_ns, mb), (baseline, baseline_ns, bb))
        order = arms if len(mb) % 2 == 0 else arms[::-1]

        def pair(order: tuple = order) -> list[list[int]]:
            return [time_calls(fn, none, block) for fn, _, _ in order]

        for (_, all_ns, medians), ns in zip(order, pair() if screen is None else screen.run(pair)):
            all_ns.extend(ns)
            medians.append(_median(ns))
        elapsed = time.perf_counter() - t0
        enough = (len(mb) >= min_blocks and len(method_ns) >= repeat.min_iters
                  and (elapsed if screen is None else screen.kept_s) >= repeat.min_seconds)
        if enough and len(mb) >= next_check:
            next_check = len(mb) + max(1, len(mb) // 4)  # the bootstrap is looked at as blocks grow by a quarter
            interval = ratio_interval(bb, mb, seed)
            point, low, high = interval
            if target_rel_ci is not None and point > 0 and (high - low) / 2 / point <= target_rel_ci:
                reached = True
                break
            if target_rel_ci is None:
                reached = True  # no target: the minimums are the rule, as for unpaired timing
                break
        if enough and max_seconds is not None and elapsed >= max_seconds:  # the cap ends the search for
            interval = ratio_interval(bb, mb, seed)  # precision, never the minimums (as in time_calls)
            break
    point, low, high = interval
    return PairedTiming(method_ns, baseline_ns, mb, bb, point, low, high, reached, time.perf_counter() - t0)
