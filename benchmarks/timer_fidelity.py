"""Does the harness's timer agree with torch.utils.benchmark.Timer?

Runs the quickstart's models (trained weights are irrelevant to speed, so they are
left at initialisation) on the same input in one process, through the harness's cpu
backend (warm-up and repeat rules, per-call perf_counter_ns, p50) and through
``Timer.blocked_autorange`` (median of block means), alternating the two for
``--rounds`` rounds so drift affects both. Prints every round and the median ratio
harness p50 / Timer median per case; exits 1 when a case's median ratio is outside
1 +- tolerance (default 5%).

    python benchmarks/timer_fidelity.py [--rounds 3] [--seconds 2] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch
import torch.utils.benchmark as tb

from harness.builtin.cpu import CPUParams, CPUSession
from harness.builtin.datasets import DIGITS, DigitsParams
from harness.builtin.models import CNN, MLP, CNNParams, MLPParams
from harness.measure.stats import summarize
from harness.suite.schema import Budget


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0, help="min_seconds for both timers")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--tolerance", type=float, default=0.05)
    args = ap.parse_args()

    session = CPUSession(CPUParams(threads=args.threads))
    threads = session.setup()["threads"]
    data = DIGITS.load(DigitsParams(), 0)
    torch.manual_seed(0)
    models = {"mlp": MLP.build(MLPParams(), data).eval(), "cnn": CNN.build(CNNParams(), data).eval()}
    warmup, repeat = Budget(min_iters=10, min_seconds=0.5), Budget(min_iters=30, min_seconds=args.seconds)

    print(f"torch {torch.__version__}, {threads} threads, {args.rounds} rounds, {args.seconds}s per measurement")
    print(f"{'case':<12} {'round':>5} {'harness p50 ms':>15} {'Timer median ms':>16} {'ratio':>7}")
    failed = False
    for name, model in models.items():
        for bs in (1, 64):
            x = data.x_test[:bs].contiguous()
            ratios = []
            for rnd in range(args.rounds):
                with torch.inference_mode():
                    ns = session.time_calls(lambda: model(x), warmup, repeat)
                    p50 = summarize(ns, bs)["latency_p50_ms"]
                    timer = tb.Timer("model(x)", globals={"model": model, "x": x}, num_threads=threads)
                    timer.timeit(number=10)  # its own warm-up
                    median = timer.blocked_autorange(min_run_time=args.seconds).median * 1e3
                ratios.append(p50 / median)
                print(f"{name + ' bs' + str(bs):<12} {rnd:>5} {p50:>15.4f} {median:>16.4f} {p50 / median:>7.3f}")
            mid = statistics.median(ratios)
            ok = abs(mid - 1) <= args.tolerance
            failed |= not ok
            print(f"{name + ' bs' + str(bs):<12} {'med':>5} {'':>15} {'':>16} {mid:>7.3f}  {'PASS' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
