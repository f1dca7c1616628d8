"""Speedups measured quiet and under load: paired (the method and its baseline in alternating blocks,
one process) against unpaired (the ratio of two cells' medians, measured minutes apart).

Runs a small suite twice through the real CLI: once on a quiet machine, once with a busy loop on
every core (one process per core the machine has) for the whole run. For every record it prints the
paired speedup and the unpaired ratio of both runs side by side, how far the busy run's figure is
from the quiet one, and whether the record was marked ``contended`` (its timed blocks kept waiting for
a CPU after being measured again). The claims it checks: every record of the busy run is within 15%
of its quiet value or flagged contended; the paired speedup stays within 15% where the unpaired ratio
does not. ``--threads`` sets the cpu backend's thread count (default 1; ``default`` for torch's own).

    python benchmarks/contention.py [--busy N] [--keep DIR]

Figures are only meaningful on a machine nothing else is loading: run it alone.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = """\
name: contention
datasets: [digits]
models:
  - name: mlp
    params: {hidden: [256, 256], epochs: 2}
  - {name: cnn, id: small-cnn, params: {epochs: 2}}
methods:
  - name: quantize.dynamic_int8
  - name: prune.magnitude
    params: {sparsity: 0.5}
  - name: lowrank.svd
    params: {rank_ratio: 0.25}
backends: [{name: cpu, params: {threads: THREADS}}]
measure:
  batch_sizes: [1, 64]
  warmup: {min_iters: 10, min_seconds: 0.2}
  repeat: {min_iters: 30, min_seconds: 0.5, target_rel_ci: 0.02, max_seconds: 5}
  fidelity_samples: 0
"""


def spin(stop: float) -> None:
    x = 0
    while time.time() < stop:
        x += 1


def run(folder: Path, busy: int) -> list[dict]:
    procs = []
    if busy:
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=spin, args=(time.time() + 3600,), daemon=True) for _ in range(busy)]
        for p in procs:
            p.start()
    try:
        results = folder / ("busy" if busy else "quiet")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "harness", "run", str(folder / "suite.yaml"), "--results", str(results),
                        "-q"], check=True, env={**os.environ, "OPTBENCH_CACHE_DIR": str(folder / "cache")})
        wall = time.perf_counter() - t0
    finally:
        for p in procs:
            p.kill()
    (records,) = results.glob("contention/*/records.jsonl")
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    print(f"{'busy' if busy else 'quiet'} run: {wall:.0f} s", file=sys.stderr)
    return rows


def unpaired(rows: list[dict]) -> dict:
    base = {(r["model"], r["batch_size"]): r["latency_p50_ms"] for r in rows if r["method"] == "baseline"}
    return {key(r): base[(r["model"], r["batch_size"])] / r["latency_p50_ms"] for r in rows
            if r["method"] != "baseline" and r["status"] == "ok"}


def key(r: dict) -> tuple:
    return (r["model"], r["method"], json.dumps(r["params"], sort_keys=True), r["batch_size"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 1, help="busy-loop processes (default: one per core)")
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder")
    parser.add_argument("--threads", default="1", help="the cpu backend's threads (default 1; 'default': torch's)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="optbench-contention-"))
    folder.mkdir(parents=True, exist_ok=True)
    suite = SUITE.replace("THREADS", "null" if args.threads == "default" else str(int(args.threads)))
    (folder / "suite.yaml").write_text(suite)
    try:
        quiet, busy = run(folder, 0), run(folder, args.busy)
        q = {key(r): r for r in quiet if r["method"] != "baseline" and r["status"] == "ok"}
        b = {key(r): r for r in busy if r["method"] != "baseline" and r["status"] == "ok"}
        qu, bu = unpaired(quiet), unpaired(busy)
        print(f"{'model':10} {'method':22} {'bs':>3} | {'paired quiet':>18} {'paired busy':>18} {'diff':>6} "
              f"{'flag':>9} | {'unpaired quiet':>14} {'unpaired busy':>13} {'diff':>6}")
        within = []
        held = []
        for k in sorted(q):
            if k not in b:
                continue
            rq, rb = q[k], b[k]
            dp = rb["speedup"] / rq["speedup"] - 1
            du = bu[k] / qu[k] - 1
            within.append(abs(dp) <= 0.15)
            held.append(abs(dp) <= 0.15 or bool(rb.get("contended")))
            params = json.loads(k[2])
            shown = next((params[p] for p in ("sparsity", "rank_ratio") if p in params), None)
            label = k[1] + ("" if shown is None else f" {shown}")
            flag = "contended" if rb.get("contended") else ""
            print(f"{k[0]:10} {label:22} {k[3]:>3} | "
                  f"{rq['speedup']:6.3f} [{rq['speedup_ci_low']:.2f},{rq['speedup_ci_high']:.2f}] "
                  f"{rb['speedup']:6.3f} [{rb['speedup_ci_low']:.2f},{rb['speedup_ci_high']:.2f}] {dp:+6.1%} "
                  f"{flag:>9} | {qu[k]:14.3f} {bu[k]:13.3f} {du:+6.1%}")
        quiet_flagged = sum(bool(r.get("contended")) for r in quiet)
        busy_flagged = sum(bool(r.get("contended")) for r in busy)
        print(f"records flagged contended: quiet run {quiet_flagged} of {len(quiet)}, busy run {busy_flagged} of "
              f"{len(busy)}; re-measured blocks: quiet {sum(r.get('contention_retries') or 0 for r in quiet)}, "
              f"busy {sum(r.get('contention_retries') or 0 for r in busy)}")
        print(f"paired speedups within 15% of quiet under {args.busy} busy loop(s): {sum(within)} of {len(within)}")
        print(f"busy records within 15% of quiet or flagged contended: {sum(held)} of {len(held)}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
