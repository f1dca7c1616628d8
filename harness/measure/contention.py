"""Contention handled, not only noted: each timed block is screened, a contended one measured again.

A timed phase is cut into short blocks (``pairing.BLOCK_S`` at most, as paired timing's are; a
paired block is the method's block and the baseline's together). Around
each block the backend's probe (``BackendSession.block_load``, by default
``harness.measure.host_load.BlockLoad``) reads how long the cell's running threads waited for a
CPU, and how many cores other processes kept busy. A block is contended when the threads waited
more than ``WAIT_LIMIT`` of their time, or when other processes kept more than ``other_limit``
cores busy (half a core, a tenth of a large machine: a neighbour slows a cell through shared
cores, caches and memory even when it does not take the cell's CPUs). A contended block's timings are dropped and the block is measured again after a
back-off (0.05 s, doubling, at most 0.5 s: a short burst elsewhere passes), up to ``retries``
re-measured blocks per batch size. Past that, blocks are kept as measured and counted; a record
whose kept blocks were contended more than a quarter of the time (enough to move a median) is
``contended``, with the reason, and readers keep it out of rankings.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from harness.measure import host_load
from harness.measure.pairing import BLOCK_S, MIN_BLOCKS
from harness.measure.stats import precise_enough
from harness.measure.timing import Budget

#: A block whose running threads waited for a CPU more than this share of their time is contended.
WAIT_LIMIT = 0.05
#: Re-measured blocks allowed per batch size (``measure.remeasure_contended``'s default).
RETRIES = 6
BACKOFF_S = 0.05
MAX_BACKOFF_S = 0.5
#: A record is contended when more than this share of its kept blocks were.
CONTENDED_SHARE = 0.25

#: Other processes busy on more than this many cores (or this share of the machine's, if more)
#: slow a cell down even when they do not take its CPUs (shared physical cores, caches, memory).
OTHER_LIMIT_CORES = 0.5
OTHER_LIMIT_SHARE = 0.1

T = TypeVar("T")


def other_limit(load: Any) -> float:
    """The other processes' cores above which a block is contended: OTHER_LIMIT_CORES, a tenth of
    a large machine, and never within twice the reading's rounding (10 ms ticks over a short block)."""
    error = getattr(load, "other_cores_error", 0.0) or 0.0
    return max(OTHER_LIMIT_CORES, OTHER_LIMIT_SHARE * host_load.cores(), 2 * error)


@dataclass
class Screen:
    """Screens timed blocks for one batch size: ``run(block)`` for each, then ``verdict()``."""

    retries: int = RETRIES
    probe: Callable[[], Any] = host_load.BlockLoad
    backoff_s: float = BACKOFF_S
    kept: int = 0
    contended_kept: int = 0
    remeasured: int = 0
    kept_s: float = 0.0  # wall time of the kept blocks (what min_seconds counts)
    waits: list[float] = field(default_factory=list)  # kept blocks' wait shares
    others: list[float] = field(default_factory=list)  # kept blocks' other processes' cores
    slept_s: float = 0.0

    @staticmethod
    def contended(load: Any) -> bool:
        if load.wait_share is not None and load.wait_share > WAIT_LIMIT:
            return True
        return load.other_cores is not None and load.other_cores > other_limit(load)

    def run(self, block: Callable[[], T]) -> T:
        """``block()`` under the probe; measured again (after a back-off) while contended and retries last."""
        streak = 0
        while True:
            with self.probe() as load:
                result = block()
            bad = self.contended(load)
            if not bad or self.remeasured >= self.retries:
                self.kept += 1
                self.contended_kept += bad
                self.kept_s += load.wall_s
                if load.wait_share is not None:
                    self.waits.append(load.wait_share)
                if load.other_cores is not None:
                    self.others.append(load.other_cores)
                return result
            self.remeasured += 1
            pause = min(self.backoff_s * 2**streak, MAX_BACKOFF_S)
            streak += 1
            time.sleep(pause)
            self.slept_s += pause

    def verdict(self, threads: int | None = None, window: bool = False) -> dict[str, Any]:
        """The record's fields: contended, contended_reason, contention_retries, host_run_wait.
        ``window``: the phase was timed in one window (judged, not re-measured)."""
        fields: dict[str, Any] = {"contended": False, "contended_reason": None,
                                  "contention_retries": self.remeasured, "host_run_wait": _mean(self.waits)}
        if self.kept == 0 or self.contended_kept <= CONTENDED_SHARE * self.kept:
            return fields
        other = _mean(self.others)
        wait = _mean(self.waits)
        parts = [f"the cell's threads waited for a CPU {wait:.0%} of their time"] if wait and wait > WAIT_LIMIT else []
        parts += [f"other processes kept {other:.2f} cores busy"] if other is not None else []
        what = ", ".join(parts) or "other processes kept the CPUs busy"
        if threads is not None and threads > host_load.cores() and (other or 0) < host_load.CONTENDED_CORES:
            what += f"; its own {threads} threads outnumber the machine's {host_load.cores()} cores"
        if window:
            reason = f"the timing window was contended ({what}); this backend times in one window, not re-measured"
        else:
            reason = (f"{self.contended_kept} of {self.kept} timed blocks were contended ({what}) after "
                      f"{self.remeasured} re-measured block{'s' * (self.remeasured != 1)}")
        fields.update(contended=True, contended_reason=reason)
        return fields


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def judge_window(load: Any, threads: int | None = None) -> dict[str, Any]:
    """The same fields for a phase timed in one window (a backend with its own ``time_model``)."""
    screen = Screen(retries=0)
    screen.kept, screen.kept_s = 1, load.wall_s
    screen.contended_kept = int(Screen.contended(load))
    if load.wait_share is not None:
        screen.waits.append(load.wait_share)
    if load.other_cores is not None:
        screen.others.append(load.other_cores)
    return screen.verdict(threads, window=True)


def time_screened(
    time_calls: Callable[[Callable[[], Any], Budget, Budget], list[int]],
    fn: Callable[[], Any],
    warmup: Budget,
    repeat: Budget,
    screen: Screen,
    *,
    block_s: float = BLOCK_S,
    min_blocks: int = MIN_BLOCKS,
) -> list[int]:
    """Warm up, then timed calls of ``fn`` in screened blocks (with the backend's own ``time_calls``,
    so its synchronisation holds) until ``repeat``'s minimums hold (counting kept blocks only), then,
    with a precision target, until the median's interval is within it or ``max_seconds`` (of wall
    time, re-measured blocks included) have passed. Returns the kept blocks' durations in ns."""
    none = Budget(0, 0.0)
    time_calls(fn, warmup, Budget(1, 0.0))
    block = Budget(max(1, repeat.min_iters // min_blocks), min(block_s, repeat.min_seconds / min_blocks))
    samples: list[int] = []
    t0 = time.perf_counter()
    next_check = 0
    while True:
        samples.extend(screen.run(lambda: time_calls(fn, none, block)))
        if len(samples) < repeat.min_iters or screen.kept_s < repeat.min_seconds or screen.kept < min_blocks:
            continue
        if repeat.target_rel_ci is None:
            return samples
        if len(samples) >= next_check:
            if precise_enough(samples, repeat.target_rel_ci):
                return samples
            next_check = len(samples) + max(10, len(samples) // 4)  # the check (a sort) stays cheap
        if repeat.max_seconds is not None and time.perf_counter() - t0 >= repeat.max_seconds:
            return samples
