"""Which default thread count gives steadier timings: all the cores, or all but one?

For a few models (the quickstart's mlp and small cnn at batch 1 and 64, and a wide mlp) it times
``model(x)`` in one process with N threads (every core) and with N - 1 (the last core left free),
first on a quiet machine, then with one busy loop (another program taking one core, the common case
on a shared machine). For each it prints the p50, the IQR / p50 and the share of timed blocks whose
blocks the harness calls contended (``harness.measure.contention.Screen.contended``) and of those
whose threads waited for a CPU (``harness.measure.host_load.BlockLoad``), and the slowdown the busy
loop caused. The cpu backend's default follows from it (docs/measurement.md quotes the figures).

    python benchmarks/threads.py [--seconds 2] [--busy 1]

Run it alone: a figure taken while anything else loads the machine means nothing.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time

import torch
from torch import nn

from harness.measure.contention import WAIT_LIMIT, Screen
from harness.measure.host_load import BlockLoad
from harness.measure.timing import Budget, time_calls


def models() -> list[tuple[str, nn.Module, torch.Tensor]]:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    cnn = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(512, 10))
    wide = nn.Sequential(nn.Linear(64, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 10))
    out = []
    for name, m, shape in (("mlp 128-128", mlp, (1, 8, 8)), ("small cnn", cnn, (1, 8, 8)),
                           ("mlp 64-4096-4096", wide, (64,))):
        for bs in (1, 64):
            out.append((f"{name}, batch {bs}", m.eval(), torch.randn(bs, *shape)))
    return out


def measure(model: nn.Module, x: torch.Tensor, threads: int, seconds: float) -> tuple[float, float, float]:
    """(p50 ms, IQR / p50, share of 50 ms blocks contended by the harness's rule, share whose threads
    waited for a CPU past the limit)."""
    torch.set_num_threads(threads)
    def fn() -> None:
        model(x)

    with torch.inference_mode():
        time_calls(fn, Budget(10, 0.2), Budget(1, 0.0))
        samples: list[int] = []
        contended = waited = blocks = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or blocks < 5:
            with BlockLoad() as load:
                samples += time_calls(fn, Budget(0, 0.0), Budget(3, 0.05))
            blocks += 1
            contended += Screen.contended(load)
            waited += (load.wait_share or 0.0) > WAIT_LIMIT
    q = statistics.quantiles(samples, n=4)
    p50 = statistics.median(samples)
    return p50 / 1e6, (q[2] - q[0]) / p50, contended / blocks, waited / blocks


def spin() -> None:
    x = 0
    while True:
        x += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per model, thread count and load")
    parser.add_argument("--busy", type=int, default=1, help="busy-loop processes for the loaded half (default 1)")
    args = parser.parse_args()
    n = os.cpu_count() or 1
    counts = sorted({n, max(n - 1, 1)}, reverse=True)
    print(f"{n} logical cores; torch's default intra-op threads here: {torch.get_num_threads()}; "
          f"threads compared: {', '.join(map(str, counts))}; {args.seconds:g} s per figure")
    table = {}
    for label, busy in (("quiet", 0), (f"{args.busy} busy loop{'s' * (args.busy > 1)}", args.busy)):
        procs = [mp.get_context("spawn").Process(target=spin, daemon=True) for _ in range(busy)]
        for p in procs:
            p.start()
        time.sleep(0.5 if busy else 0.0)
        try:
            for name, model, x in models():
                for t in counts:
                    table[(name, t, busy)] = measure(model, x, t, args.seconds)
        finally:
            for p in procs:
                p.kill()
    print(f"{'model':28} {'threads':>7} | {'quiet p50 ms':>12} {'IQR/p50':>7} | {'busy p50 ms':>11} {'IQR/p50':>7} "
          f"{'contended':>9} {'waited':>6} | {'slowdown':>8}")
    for name, _, _ in models():
        for t in counts:
            q, b = table[(name, t, 0)], table[(name, t, args.busy)]
            print(f"{name:28} {t:>7} | {q[0]:12.4f} {q[1]:7.1%} | {b[0]:11.4f} {b[1]:7.1%} {b[2]:9.0%} {b[3]:6.0%} | "
                  f"{b[0] / q[0]:7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
