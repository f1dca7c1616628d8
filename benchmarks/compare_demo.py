"""Does ``optbench compare`` ignore a rerun and catch an injected 20% slowdown?

Runs a suite (default suites/quickstart.yaml) twice into a results folder through the
real CLI (``python -m harness run``), then makes a third run by copying the second and
multiplying every raw latency sample by 1.2; its records' latency statistics are
recomputed from the scaled samples with harness.measure.stats.summarize, as the runner computes
them. Prints ``optbench compare`` of run 1 vs run 2 (a rerun: expect every cell
unchanged) and of run 1 vs the injected run (expect every latency cell slower), with the
wall time of each step. Exits 1 when either expectation fails.

    python benchmarks/compare_demo.py [--suite suites/quickstart.yaml] [--threshold 0.05] [--results DIR]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.measure.stats import summarize
from harness.results.compare import SLOWER, UNCHANGED, compare_runs
from harness.results.records import RECORDS_FILE, append_records, read_records

REPO = Path(__file__).resolve().parents[1]


def run_suite(suite: Path, results: Path) -> tuple[Path, float]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--results", str(results), "-q"],
                         capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        sys.exit(f"optbench run failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1]).parent, time.perf_counter() - t0


def inject_slowdown(run: Path, dest: Path, factor: float) -> Path:
    """A copy of ``run`` whose every latency sample is ``factor`` times longer, records rewritten to match."""
    shutil.copytree(run, dest)
    scaled: dict[str, dict[str, list[int]]] = {}
    for path in sorted(dest.glob("cells/*/samples.json")):
        samples = {bs: [round(v * factor) for v in vs] for bs, vs in json.loads(path.read_text()).items()}
        path.write_text(json.dumps(samples))
        scaled[path.parent.name] = samples
    records = read_records(dest)
    for r in records:
        ns = scaled.get(r["cell_id"], {}).get(str(r["batch_size"]))
        if r["status"] == "ok" and ns:
            r.update(summarize(ns, r["batch_size"]))
    (dest / RECORDS_FILE).unlink()
    append_records(dest / RECORDS_FILE, records)  # speedup etc. are recomputed from these when read
    return dest


def show_compare(base: Path, new: Path, threshold: float) -> float:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "harness", "compare", str(base), str(new),
                          "--threshold", str(threshold), "--fail-on", "regression"],
                         capture_output=True, text=True, cwd=REPO)
    elapsed = time.perf_counter() - t0
    print(f"$ optbench compare {base.name} {new.name} --threshold {threshold} --fail-on regression")
    print(out.stdout + out.stderr, end="")
    print(f"(exit {out.returncode}, {elapsed:.1f} s)\n")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", type=Path, default=REPO / "suites" / "quickstart.yaml")
    ap.add_argument("--threshold", type=float, default=0.05, help="passed to optbench compare (default 0.05)")
    ap.add_argument("--factor", type=float, default=1.2, help="injected slowdown (default 1.2: 20%% slower)")
    ap.add_argument("--results", type=Path, help="keep the runs here (default: a temporary folder, removed)")
    args = ap.parse_args()

    root = args.results or Path(tempfile.mkdtemp(prefix="compare-demo-"))
    try:
        first, t1 = run_suite(args.suite, root)
        print(f"run 1: {first} ({t1:.1f} s)")
        second, t2 = run_suite(args.suite, root)
        print(f"run 2: {second} ({t2:.1f} s)")
        t0 = time.perf_counter()
        injected = inject_slowdown(second, second.parent / f"{second.name}-x{args.factor:g}", args.factor)
        print(f"injected: {injected} (every sample of run 2 x {args.factor:g}, {time.perf_counter() - t0:.1f} s)\n")

        show_compare(first, second, args.threshold)
        show_compare(first, injected, args.threshold)

        rerun = compare_runs(first, second, args.threshold).rows
        slow = compare_runs(first, injected, args.threshold).rows
        changes = sorted(abs(r.change) for r in rerun if r.change is not None)
        if changes:
            print(f"rerun noise: |change of median| over {len(changes)} cells x batch sizes: "
                  f"median {changes[len(changes) // 2]:.1%}, max {changes[-1]:.1%}")
        flagged = [r for r in rerun if r.verdict != UNCHANGED]
        missed = [r for r in slow if r.verdict != SLOWER and r.base_ms is not None]
        print(f"rerun: {len(rerun) - len(flagged)} of {len(rerun)} unchanged"
              + (f" ({len(flagged)} flagged: {', '.join(sorted({r.verdict for r in flagged}))})" if flagged else ""))
        print(f"injected x{args.factor:g}: {len(slow) - len(missed)} of {len(slow)} slower"
              + (f" ({len(missed)} missed)" if missed else ""))
        return 1 if flagged or missed else 0
    finally:
        if args.results is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
