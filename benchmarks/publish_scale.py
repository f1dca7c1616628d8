"""How long does ``optbench publish`` take on a large results folder, and how big is a suite page?

Generates ``--runs`` runs (default 200) of ``--cells`` cells x 2 batch sizes (default 50, so
100 records per run) into a temporary folder: five models, a baseline and nine compression
methods, on ``--machines`` machines (default 4, different CPUs, one with GPUs, different
torch builds), with raw latency samples per record (as many as a 0.5 s measurement of that
latency would give, 30 to 20,000), a few failed and skipped cells, noisy timings and an
accuracy gate. Every record's latency fields come from its samples through
harness.measure.stats.summarize, and every run gets its real report.html (harness.report.run_report.write_report),
as ``optbench run`` leaves them. By default all runs belong to one suite: its page is the
largest a suite page gets (``--suites`` spreads them).

Then it times the real command, ``python -m harness publish RESULTS --out SITE`` (a fresh
process: imports included), and prints the wall time and the largest suite page. Exits 1
when publishing took 30 s or more or a suite page is 5 MB (5,000,000 bytes) or more.

    python benchmarks/publish_scale.py [--runs 200] [--cells 50] [--machines 4] [--suites 1]
                                       [--keep DIR] [--plotly inline|cdn]

``--keep DIR`` writes the results under DIR and keeps them (a second call reuses them).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

TARGET_S = 30.0
TARGET_BYTES = 5_000_000

#: (model, p50 ms at batch 1, p50 ms at batch 64, model bytes, baseline accuracy)
MODELS = [("mlp", 0.04, 0.08, 107_157, 0.967), ("small-cnn", 0.13, 0.62, 45_000, 0.980),
          ("mlp-wide", 0.9, 3.4, 67_300_000, 0.982), ("resnet18", 6.0, 35.0, 46_800_000, 0.712),
          ("vit-tiny", 4.2, 41.0, 22_900_000, 0.754)]
#: (method, kind, params, latency factor bs1, bs64, size divisor, FLOP divisor, accuracy change)
METHODS = [
    ("baseline", "baseline", {}, 1.0, 1.0, 1.0, 1.0, 0.0),
    ("quantize.dynamic_int8", "quantizer", {"dtype": "qint8"}, 1.6, 0.9, 3.9, 1.0, -0.001),
    ("quantize.static_int8", "quantizer", {"observer": "histogram", "per_channel": True}, 0.5, 0.4, 3.96, 1.0, -0.002),
    ("quantize.half", "quantizer", {"dtype": "float16"}, 0.6, 4.5, 2.0, 1.0, 0.0),
    ("prune.magnitude", "pruner", {"sparsity": 0.5, "scope": "layer"}, 1.0, 1.0, 1.0, 2.0, -0.003),
    ("prune.magnitude", "pruner", {"sparsity": 0.9, "scope": "layer"}, 1.0, 1.0, 1.0, 10.0, -0.35),
    ("prune.structured", "pruner", {"sparsity": 0.5}, 0.45, 0.35, 3.9, 3.9, -0.02),
    ("lowrank.svd", "factorizer", {"rank_ratio": 0.25}, 0.55, 0.5, 2.0, 2.0, -0.007),
    ("share.kmeans", "sharing", {"bits": 4}, 1.0, 1.0, 7.9, 1.0, 0.0),
    ("compile.torch", "compiler", {"mode": "default"}, 0.9, 0.8, 1.0, 1.0, 0.0),
]
MACHINES = [
    {"hostname": "bench-epyc", "cpu_model": "AMD EPYC 7B13", "cores": 16, "torch": "2.14.1+cpu", "speed": 1.0},
    {"hostname": "bench-xeon", "cpu_model": "Intel Xeon Platinum 8480+", "cores": 56, "torch": "2.14.1+cu130",
     "speed": 0.55, "gpus": ["NVIDIA H100 80GB HBM3"] * 2},
    {"hostname": "laptop", "cpu_model": "Apple M3 (Rosetta)", "cores": 8, "torch": "2.13.0", "speed": 1.8},
    {"hostname": "ci-runner", "cpu_model": "AMD EPYC", "cores": 2, "torch": "2.14.1+cu130", "speed": 1.4},
]


def env_json(machine: dict, started: str) -> dict:
    env = {
        "harness_version": "0.1.0", "python": "3.11.7", "python_implementation": "CPython",
        "torch": machine["torch"], "numpy": "2.4.6", "platform": "Linux-6.18-x86_64-with-glibc2.36",
        "cpu_model": machine["cpu_model"], "cores": machine["cores"], "physical_cores": machine["cores"] // 2 or 1,
        "threads_default": machine["cores"], "gpus": [{"index": i} for i, _ in enumerate(machine.get("gpus", []))],
        "hostname": machine["hostname"], "started_at": started, "suite_git": {"commit": "59d485e6fe8f" * 3, "dirty": False},
        "plugins": {"builtins": {"distribution": "optbench", "version": "0.1.0"}},
        "backends": {"cpu": {"cpu_model": machine["cpu_model"], "logical_cores": machine["cores"], "threads": None}},
    }
    if machine.get("gpus"):
        env["backends"]["cuda"] = {"gpus": [{"index": i, "name": g} for i, g in enumerate(machine["gpus"])]}
    return env


def make_run(args: tuple) -> float:
    """One run folder with records, samples, env.json, run.json, suite.yaml and report.html."""
    root, suite, index, n_cells, n_machines, seed = args
    from harness.measure.stats import summarize
    from harness.report.run_report import write_report
    from harness.results.records import (
        add_relative_figures,
        append_records,
        baseline_key,
    )
    from harness.suite.schema import AccuracyGate

    rng = np.random.default_rng(seed)
    machine = MACHINES[index % n_machines]
    started = (dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=6 * index)).isoformat()
    run_id = f"{started[:10].replace('-', '')}-{index:06d}"
    run_dir = Path(root) / suite / run_id
    (run_dir / "cells").mkdir(parents=True)
    (run_dir / "env.json").write_text(json.dumps(env_json(machine, started), indent=2))
    (run_dir / "suite.yaml").write_text(f"name: {suite}\n# synthetic: benchmarks/publish_scale.py\n")
    gate = AccuracyGate(relative=0.01)
    records, baselines, counts = [], {}, {"ok": 0, "failed": 0, "timeout": 0, "skipped": 0}
    cells = [(m, meth) for m in MODELS for meth in METHODS][:n_cells]
    for c, ((model, p1, p64, size, acc), (method, kind, params, f1, f64, sdiv, fdiv, dacc)) in enumerate(cells):
        cell_id = f"{c:04d}{index:08x}"
        cell_dir = run_dir / "cells" / cell_id
        cell_dir.mkdir()
        roll = rng.random()
        status = "ok" if method == "baseline" or roll > 0.03 else "failed" if roll > 0.01 else "skipped"
        counts[status] += 1
        samples = {}
        accuracy = None if status != "ok" else round(min(1.0, max(0.0, acc + dacc + rng.normal(0, 0.002))), 4)
        for bs, base, factor in ((1, p1, f1), (64, p64, f64)):
            r = {"run_id": run_id, "cell_id": cell_id, "suite": suite, "model": model, "dataset": "digits",
                 "dataset_params": {"test_fraction": 0.25}, "method": method, "method_kind": kind, "params": params,
                 "search_params": [], "backend": "cpu", "backend_params": {"threads": None}, "seed": 0,
                 "batch_size": bs, "status": status, "threads": machine["cores"], "started_at": started,
                 "error": None if status == "ok" else "RuntimeError: synthetic failure" if status == "failed"
                 else "skipped: needs CUDA, compute capability >= 8.9", "task_changed": False}
            if status == "ok":
                p50 = base * factor * machine["speed"] * rng.lognormal(0, 0.05)
                n = int(min(20_000, max(30, 500 / p50)))
                spread = 0.15 if rng.random() < 0.1 else 0.03
                ns = (p50 * 1e6 * rng.lognormal(0, spread, n)).astype(np.int64)
                ns[rng.random(n) < 0.02] *= 3  # preemption outliers
                samples[str(bs)] = ns.tolist()
                r.update(summarize(samples[str(bs)], bs))
                r.update(model_bytes=int(size / sdiv), params_count=size // 4, nonzero_params=int(size // 4 / fdiv),
                         flops=size // 2, effective_flops=int(size // 2 / fdiv), accuracy=accuracy,
                         duration_s=round(float(rng.uniform(1, 20)), 3))
            records.append(r)
        if samples:
            (cell_dir / "samples.json").write_text(json.dumps(samples, separators=(",", ":")))
        (cell_dir / "result.json").write_text(json.dumps({"status": status}))
        (cell_dir / "log.txt").write_text("synthetic\n")
    for r in records:
        if r["method"] == "baseline":
            baselines[baseline_key(r)] = r
    for r in records:
        add_relative_figures(r, baselines.get(baseline_key(r)), gate)
    append_records(run_dir / "records.jsonl", records)
    (run_dir / "run.json").write_text(json.dumps({
        "run_id": run_id, "suite": suite, "started_at": started, "finished_at": started, "executor": "local",
        "cells_total": len(cells), "status_counts": counts}, indent=2))
    t0 = time.perf_counter()
    write_report(run_dir)
    return time.perf_counter() - t0


def generate(root: Path, args: argparse.Namespace) -> None:
    jobs = [(str(root), f"scale-{i % args.suites}" if args.suites > 1 else "scale", i, args.cells, args.machines, i)
            for i in range(args.runs)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        report_s = list(pool.map(make_run, jobs, chunksize=4))
    print(f"generated {args.runs} runs x {2 * args.cells} records in {time.perf_counter() - t0:.1f} s "
          f"(each run's report.html took {np.median(report_s):.2f} s, median)", flush=True)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--cells", type=int, default=50, help="cells per run (2 records each); at most 50")
    ap.add_argument("--machines", type=int, default=4, choices=range(1, len(MACHINES) + 1))
    ap.add_argument("--suites", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="generate into (or reuse) this folder instead of a temporary one")
    ap.add_argument("--plotly", choices=("inline", "cdn"), default="inline")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="optbench-publish-scale-"))
    try:
        results = (args.keep or tmp) / "results"
        if not results.exists():
            generate(results, args)
        records = sum(1 for f in results.rglob("records.jsonl") for _ in open(f))
        site = tmp / "site"
        cmd = [sys.executable, "-m", "harness", "publish", str(results), "--out", str(site), "--plotly", args.plotly]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout + proc.stderr, file=sys.stderr)
            return 2
        print(proc.stderr.strip())
        pages = sorted(site.glob("suites/*.html"), key=lambda p: p.stat().st_size)
        largest = pages[-1]
        data = largest.read_text(encoding="utf-8").split('id="board-data">', 1)[1].split("</script>", 1)[0]
        print(f"cores: {os.cpu_count()}; runs: {args.runs}; records: {records}; machines: {args.machines}; "
              f"suites: {len(pages)}")
        print(f"publish wall time: {wall:.1f} s (target < {TARGET_S:.0f} s)")
        print(f"largest suite page: {largest.stat().st_size / 1e6:.2f} MB, {largest.name} "
              f"(target < {TARGET_BYTES / 1e6:.0f} MB; its data {len(data) / 1e6:.2f} MB)")
        print(f"whole site: {folder_bytes(site) / 1e6:.0f} MB in {sum(1 for _ in site.rglob('*'))} files")
        return 0 if wall < TARGET_S and largest.stat().st_size < TARGET_BYTES else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
