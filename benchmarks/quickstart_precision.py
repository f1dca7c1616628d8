"""The quickstart before and after paired, precision-targeted timing: wall time and interval widths.

Runs suites/quickstart.yaml through the real CLI twice, in fresh result folders sharing one weight
cache (warmed by a first, untimed run so that neither timed run trains):

- before: the timing every suite had before issue 14: warm-up {10 calls, 0.5 s}, repeat {30 calls,
  2 s}, no pairing (each speedup the ratio of two cells' medians);
- after: the quickstart as it ships (paired blocks, stop once the speedup's 95% interval is within
  2%, at most 3 s).

For every speedup it prints both figures with their 95% intervals (unpaired: from the two cells'
raw samples, the published site's rule; paired: the pairs' bootstrap), then each run's wall time
and the median relative width (half-width / speedup) of its intervals.

    python benchmarks/quickstart_precision.py

Run it alone: a figure taken while anything else loads the machine means nothing.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def run(suite: dict, folder: Path, name: str, cache: Path) -> tuple[float, Path]:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness", "run", str(path), "--results", str(folder / name), "-q",
                    "--no-summary"], check=True, env={**os.environ, "OPTBENCH_CACHE_DIR": str(cache)})
    (records,) = (folder / name).glob("*/*/records.jsonl")
    return time.perf_counter() - t0, records.parent


def intervals(run_dir: Path) -> dict[tuple, tuple[float, float, float]]:
    """(model, method, params, batch) -> (speedup, low, high)."""
    from harness.site.data import median_interval_ms as median_interval

    rows = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    samples = {}
    for r in rows:
        path = run_dir / "cells" / r["cell_id"] / "samples.json"
        if path.exists():
            samples[(r["cell_id"], r["batch_size"])] = json.loads(path.read_text())[str(r["batch_size"])]
    base = {(r["model"], r["batch_size"]): r for r in rows if r["method"] == "baseline"}
    out = {}
    for r in rows:
        if r["method"] == "baseline" or r["status"] != "ok":
            continue
        key = (r["model"], r["method"], json.dumps(r["params"], sort_keys=True), r["batch_size"])
        if r.get("paired"):
            out[key] = (r["speedup"], r["speedup_ci_low"], r["speedup_ci_high"])
            continue
        b = base[(r["model"], r["batch_size"])]
        mine = median_interval(samples[(r["cell_id"], r["batch_size"])])
        theirs = median_interval(samples[(b["cell_id"], b["batch_size"])])
        out[key] = (b["latency_p50_ms"] / r["latency_p50_ms"], theirs[0] / mine[1], theirs[1] / mine[0])
    return out


def rel_half_width(v: tuple[float, float, float]) -> float:
    return (v[2] - v[1]) / 2 / v[0]


def main() -> int:
    shipped = yaml.safe_load((REPO / "suites" / "quickstart.yaml").read_text())
    before = json.loads(json.dumps(shipped))
    before["measure"].update(warmup={"min_iters": 10, "min_seconds": 0.5},
                             repeat={"min_iters": 30, "min_seconds": 2.0}, paired=False)
    with tempfile.TemporaryDirectory(prefix="optbench-qs-precision-") as tmp:
        folder, cache = Path(tmp), Path(tmp) / "cache"
        run(shipped, folder, "warm", cache)  # trains the two models once; not timed
        t_before, d_before = run(before, folder, "before", cache)
        t_after, d_after = run(shipped, folder, "after", cache)
        ib, ia = intervals(d_before), intervals(d_after)
    print(f"{'model':10} {'method':22} {'bs':>3} | {'before (unpaired)':>24} | {'after (paired)':>24}")
    for k in sorted(ib):
        shown = json.loads(k[2]).get("sparsity")
        label = k[1] + ("" if shown is None else f" {shown}")
        b, a = ib[k], ia[k]
        print(f"{k[0]:10} {label:22} {k[3]:>3} | {b[0]:7.3f} [{b[1]:6.3f}, {b[2]:6.3f}] | "
              f"{a[0]:7.3f} [{a[1]:6.3f}, {a[2]:6.3f}]")
    wb = statistics.median(rel_half_width(v) for v in ib.values())
    wa = statistics.median(rel_half_width(v) for v in ia.values())
    inside = sum(ib[k][1] <= ia[k][0] <= ib[k][2] for k in ib)
    print(f"paired speedups inside the unpaired run's interval: {inside} of {len(ib)} (an unpaired interval covers "
          "the sampling noise of two medians, not what the machine did between the two cells)")
    print(f"before: {t_before:.1f} s wall, median interval half-width {wb:.1%} of the speedup")
    print(f"after:  {t_after:.1f} s wall, median interval half-width {wa:.1%} of the speedup")
    return 0


if __name__ == "__main__":
    sys.exit(main())
