"""Paired timing and precision-targeted stopping: a method and its baseline timed in alternating blocks
in one process, and timing that stops once the estimate is tight enough (or at its cap)."""
from __future__ import annotations

import time

import pytest
import torch

from harness.measure.pairing import ratio_interval, time_paired
from harness.measure.stats import median_interval, precise_enough
from harness.measure.timing import Budget, time_calls


def matmul(n: int = 96):
    a = torch.randn(n, n)
    return lambda: a @ a


def test_a_model_run_twice_reads_half_the_speed_within_its_interval():
    torch.set_num_threads(1)
    f = matmul()
    paired = time_paired(time_calls, lambda: (f(), f()), f, Budget(5, 0.0), Budget(20, 0.2),
                         target_rel_ci=0.03, max_seconds=8.0)
    # two calls in a row are not exactly twice one (the second finds the caches warm): 0.5 within 1%
    assert paired.ci_low - 0.005 <= 0.5 <= paired.ci_high + 0.005, paired
    assert paired.speedup == pytest.approx(0.5, rel=0.1) and paired.blocks >= 5
    assert len(paired.method_ns) >= 20 and len(paired.baseline_ns) > len(paired.method_ns)  # the method is slower


def test_paired_blocks_stop_at_the_target_or_at_the_cap():
    f = matmul(32)
    tight = time_paired(time_calls, f, f, Budget(2, 0.0), Budget(10, 0.0), target_rel_ci=0.2, max_seconds=10.0)
    assert tight.precision_reached and tight.rel_half_width <= 0.2 and tight.seconds < 5

    def jitter():  # 0.2 or 2 ms at random: an interval of 0.1% is out of reach
        time.sleep(0.0002 if torch.rand(1).item() < 0.5 else 0.002)

    capped = time_paired(time_calls, jitter, jitter, Budget(1, 0.0), Budget(5, 0.0), target_rel_ci=0.001,
                         max_seconds=0.5)
    assert not capped.precision_reached and 0.5 <= capped.seconds < 1.5


def test_unpaired_timing_stops_once_the_median_is_precise():
    f = matmul(32)
    quick = time_calls(f, Budget(2, 0.0), Budget(20, 0.0, target_rel_ci=0.5, max_seconds=5.0))
    assert 20 <= len(quick) < 200 and precise_enough(quick, 0.5)
    t0 = time.perf_counter()
    noisy = time_calls(lambda: time.sleep(0.0001 if torch.rand(1).item() < 0.5 else 0.001), Budget(0, 0.0),
                       Budget(10, 0.0, target_rel_ci=0.0001, max_seconds=0.3))
    assert 0.3 <= time.perf_counter() - t0 < 1.0 and not precise_enough(noisy, 0.0001)
    plain = time_calls(f, Budget(0, 0.0), Budget(7, 0.0))  # no target: the minimums are the rule
    assert len(plain) == 7


def test_the_intervals_are_the_textbook_ones():
    med, lo, hi = median_interval(list(range(1, 101)))
    assert (med, lo, hi) == (50.5, 40.0, 61.0)  # ranks 40 and 61 of 100: the binomial 95% interval
    point, low, high = ratio_interval([2.0] * 10, [1.0] * 10)
    assert point == low == high == 2.0
    point, low, high = ratio_interval([2.0, 2.2, 1.8, 2.1, 1.9] * 4, [1.0] * 20, seed=1)
    assert low < point < high and point == pytest.approx(2.0) and high - low < 0.5


def test_a_compression_cell_pairs_with_its_baseline_through_the_runner(optbench_run, tiny_suite, misbehaving):
    # wide enough that one call is ~1 ms: the wrapper's own Python overhead is then well under 1%
    suite = tiny_suite("test.twice", model_params={"hidden": [1024, 1024], "epochs": 1})
    suite["measure"] = {"batch_sizes": [64], "warmup": {"min_iters": 5, "min_seconds": 0.0},
                        "repeat": {"min_iters": 20, "min_seconds": 0.2, "target_rel_ci": 0.05, "max_seconds": 6}}
    suite["backends"] = [{"name": "cpu", "params": {"threads": 1}}]
    run = optbench_run(suite)
    base, twice = sorted(run.records, key=lambda r: r["method"] != "baseline")
    assert base["paired"] is False and base["unpaired_reason"] == "the baseline is the reference"
    assert twice["paired"] is True and twice["pair_blocks"] >= 5
    # twice the work is not exactly twice the time: the second call finds the weights in cache (one
    # full run on a busy machine read 0.505 [0.5054, ...]); within 1.5% of 0.5 is what this asserts
    assert twice["speedup_ci_low"] - 0.015 <= 0.5 <= twice["speedup_ci_high"] + 0.015, twice
    assert twice["speedup"] == twice["paired_speedup"]
    assert twice["baseline_p50_ms"] == pytest.approx(twice["latency_p50_ms"] / 2, rel=0.15)
