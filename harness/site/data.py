"""The data of the leaderboard site (``optbench publish``): each run read in a worker process
(``process_run``: its rows, speedup intervals from raw samples, its report placed in the site)
and a suite's columnar JSON (``suite_data``), which its page draws its table and figures from.

``process_run`` runs in a spawn process pool, so it and ``Task`` stay module-level here.
"""
from __future__ import annotations

import functools
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.report.markup import plotly_script
from harness.report.run_report import (
    REPORT_FILE,
    pareto_front,
    render_run_report,
    row_order,
)
from harness.results.labels import finite, fmt_params, printable, variant_label
from harness.results.records import (
    RECORDS_FILE,
    baseline_key,
    cell_folder,
    fill_relative_figures,
    RecordWarning,
    latency_samples,
    own_file,
    read_records,
)
from harness.results.seeds import is_training
from harness.site.runs import Run, env_facts

#: The site's one plotly.js, which the run reports inside it load (inline mode).
PLOTLY_ASSET = "assets/plotly.min.js"
COPIED_FILES = ("env.json", "run.json", "suite.yaml")
#: Two-sided normal quantile for 97.5%: each median gets a 97.5% interval, so the speedup
#: interval built from two of them holds with at least 95% (Bonferroni).
Z_MEDIAN = 2.241402727604947
#: Below this many runs the pool's start-up costs more than it saves.
POOL_MIN_RUNS = 8


# --- reading one run (in a worker process) --------------------------------------------------

def median_interval(samples_ns: Any) -> tuple[float, float] | None:
    """Distribution-free 97.5% interval of the median, in ms, from raw per-call samples (ns).

    Order statistics j and k around n/2 (normal approximation of the binomial); with few
    samples it widens to the smallest and largest. Assumes the samples are independent.
    """
    import numpy as np

    a = np.asarray(samples_ns, dtype=np.float64)
    n = len(a)
    if n == 0:
        return None
    half = Z_MEDIAN * math.sqrt(n) / 2
    j = min(max(math.floor(n / 2 - half), 1), n)  # 1-based ranks
    k = max(min(math.ceil(1 + n / 2 + half), n), 1)
    lo, hi = np.partition(a, [j - 1, k - 1])[[j - 1, k - 1]]
    return float(lo) / 1e6, float(hi) / 1e6


def _read_samples(path: Path) -> dict[str, Any]:
    """samples.json ({"<batch size>": [ns, ...]}) or {} when missing, unreadable or a link."""
    if path.is_symlink() or path.parent.is_symlink() or path.parent.parent.is_symlink():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _speedup_intervals(run_dir: Path, records: list[dict]) -> dict[int, tuple[float, float]]:
    """Per record (by position): the 95% interval of its speedup over its baseline, from the
    raw samples of both (baseline low / method high, baseline high / method low)."""
    medians: dict[tuple[Any, Any], tuple[float, float] | None] = {}
    by_cell: dict[str, dict[str, Any]] = {}

    def interval(r: dict) -> tuple[float, float] | None:
        key = (r.get("cell_id"), r.get("batch_size"))
        if key not in medians:
            cid = str(r.get("cell_id"))
            if cid not in by_cell:
                folder = cell_folder(run_dir, cid)
                by_cell[cid] = _read_samples(folder / "samples.json") if folder else {}
            samples = latency_samples(by_cell[cid].get(str(r.get("batch_size"))))
            medians[key] = median_interval(samples) if samples else None
        return medians[key]

    baselines = {baseline_key(r): r for r in records if r.get("method") == "baseline" and r.get("status") == "ok"}
    out = {}
    for i, r in enumerate(records):
        base = baselines.get(baseline_key(r))
        if r.get("method") == "baseline" or r.get("status") != "ok" or base is None or r.get("speedup") is None:
            continue
        low, high = finite(r.get("speedup_ci_low")), finite(r.get("speedup_ci_high"))
        if r.get("paired") and low is not None and high is not None:  # timed paired: the pairs' own interval
            out[i] = (low, high)
            continue
        mine, theirs = interval(r), interval(base)
        if mine and theirs and mine[0] > 0:
            out[i] = (theirs[0] / mine[1], theirs[1] / mine[0])
    return out


def _round(value: Any) -> float | int | None:
    """Four significant digits (plenty for a figure, a quarter of the bytes), ints without ".0"."""
    v = finite(value)
    if v is None:
        return None
    v = float(f"{v:.4g}")
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


def _fidelity(value: Any) -> float | None:
    """Agreement and cosine keep six decimals: 0.99996 and 0.9999 are different methods."""
    v = finite(value)
    return None if v is None else round(v, 6)


def _flag(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _row(r: dict, interval: tuple[float, float] | None, first_of_cell: bool) -> tuple:
    """A record as the site keeps it: its configuration, then the figures the page shows."""
    config = (str(r.get("model")), variant_label(r, "dataset"), str(r.get("method")), str(r.get("method_kind") or ""),
              fmt_params(r.get("params")), variant_label(r, "backend"), _round(r.get("batch_size")), _round(r.get("seed")),
              int(is_training(r)))
    status = str(r.get("status") or "")
    error = str(r.get("error"))[:500] if r.get("error") and status != "ok" else None
    return (config, status, error, _round(r.get("latency_p50_ms")), _round(r.get("latency_p99_ms")),
            _round(r.get("speedup")), _round(interval[0]) if interval else None,
            _round(interval[1]) if interval else None, _round(r.get("theoretical_speedup")), _round(r.get("accuracy")),
            _round(r.get("accuracy_delta")), _fidelity(r.get("agreement")), _fidelity(r.get("cosine")),
            _flag(r.get("passes_gate")), _flag(r.get("noisy")),
            _round(r.get("size_ratio")), _round(r.get("model_bytes")), first_of_cell)


@dataclass
class Task:
    run_dir: str
    target: str
    plotly: str


def process_run(task: Task) -> dict[str, Any]:
    """Read one run, place its report and env in the site; return its rows (runs in a worker)."""
    run_dir, target = Path(task.run_dir), Path(task.target)
    target.mkdir(parents=True, exist_ok=True)
    records = fill_relative_figures(read_records(run_dir))
    records.sort(key=row_order)
    intervals = _speedup_intervals(run_dir, records)
    seen: set[Any] = set()
    rows = []
    for i, r in enumerate(records):
        first = r.get("status") == "ok" and r.get("cell_id") not in seen
        if first:
            seen.add(r.get("cell_id"))
        rows.append(_row(r, intervals.get(i), first))
    # Rendered from the records every time, never copied: a report.html in a run folder is only a file
    # someone could have written (a planted page would run its script on the site's origin).
    html = render_run_report(run_dir, task.plotly)
    if task.plotly == "inline":
        html = _shared_plotly(html, "../../../")  # runs/<suite>/<run>/report.html -> the site's root
    (target / REPORT_FILE).write_text(html, encoding="utf-8")
    for name in COPIED_FILES:
        _copy_meta(run_dir, name, target)
    return {"rows": rows, "report": "rendered"}


#: A run's env.json, run.json or suite.yaml larger than this is not put in the site.
MAX_COPIED_BYTES = 4 * 2**20


def _copy_meta(run_dir: Path, name: str, target: Path) -> None:
    """A run's env.json / run.json (re-serialised: valid JSON only) or suite.yaml (UTF-8 text) beside its
    report, when it is a file of the run folder itself (never through a link) of sensible size."""
    source = run_dir / name
    if not own_file(run_dir, source):
        if source.is_symlink():
            warnings.warn(f"{printable(source)}: not published (a symbolic link)", RecordWarning, stacklevel=2)
        return
    if source.stat().st_size > MAX_COPIED_BYTES:
        warnings.warn(f"{printable(source)}: not published (over {MAX_COPIED_BYTES // 2**20} MB)", RecordWarning,
                      stacklevel=2)
        return
    try:
        text = source.read_text(encoding="utf-8")
        if name.endswith(".json"):
            text = json.dumps(json.loads(text), indent=2) + "\n"
    except (OSError, ValueError, RecursionError):
        warnings.warn(f"{printable(source)}: not published (unreadable or not JSON)", RecordWarning, stacklevel=2)
        return
    (target / name).write_text(text, encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _inline_plotly() -> str:
    return plotly_script("inline")  # the exact tag run reports inline: 4.8 MB, built once per process


def _shared_plotly(html: str, root: str) -> str:
    """A run report inside the site loads the site's one copy of plotly.js (a local file:
    offline still, from disk or any host) instead of carrying its own 4.8 MB: 200 runs
    would otherwise make a 1 GB site. A report made with another plotly build keeps its
    own bundle untouched."""
    inline = _inline_plotly()
    if inline not in html:
        return html
    return html.replace(inline, f'<script charset="utf-8" src="{root}{PLOTLY_ASSET}"></script>', 1)


def process_all(tasks: list[Task], workers: int | None) -> list[dict[str, Any]]:
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    if workers <= 1 or len(tasks) < POOL_MIN_RUNS:
        return [process_run(t) for t in tasks]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a worker never inherits the caller's threads or locks (pytest, a browser driver)
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(process_run, tasks, chunksize=max(1, len(tasks) // (workers * 4))))


# --- the suite page's data ------------------------------------------------------------------

class _Strings:
    """Every distinct string once; rows hold indices."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.index: dict[str, int] = {}

    def __call__(self, s: Any) -> int:
        s = "" if s is None else str(s)
        if s not in self.index:
            self.index[s] = len(self.items)
            self.items.append(s)
        return self.index[s]


ROW_COLUMNS = ("p50", "p99", "speedup", "lo", "hi", "theo", "acc", "dacc", "agree", "cos", "gate", "noisy", "size",
               "bytes")
CONFIG_COLUMNS = ("model", "dataset", "method", "kind", "params", "backend", "batch", "seed", "training")


def suite_data(runs: list[Run], machines: dict[str, dict]) -> dict[str, Any]:
    """The columnar JSON a suite page draws its table and figures from (runs newest first)."""
    strings = _Strings()
    configs: dict[tuple, int] = {}
    cols: dict[str, list[Any]] = {k: [] for k in ("run", "cfg", "status", *ROW_COLUMNS)}
    figs: dict[str, list[int]] = {"fal": [], "fsp": [], "fre": [], "fsa": [], "ffs": []}
    errors: dict[int, str] = {}
    groups: dict[str, dict[tuple, int]] = {k: {} for k in figs}
    points: dict[str, dict[int, list[tuple]]] = {"fal": {}, "fsa": {}}
    compared: dict[str, set[int]] = {k: set() for k in figs}  # groups with a method besides the baseline
    machine_ids = list(machines)
    machine_index = {m: i for i, m in enumerate(machine_ids)}
    for ri, run in enumerate(runs):
        for config, status, error, *values, first in run.records:
            i = len(cols["run"])
            cfg = configs.setdefault(config, len(configs))
            cols["run"].append(ri)
            cols["cfg"].append(cfg)
            cols["status"].append(strings(status))
            for k, v in zip(ROW_COLUMNS, values, strict=True):
                cols[k].append(v)
            if error:
                errors[i] = error
            p50, _, speedup, _, _, theo, acc, _, _, cos, *_, size_bytes = values
            model, dataset, method, _kind, _, backend, batch, _, training = config
            ok = status == "ok" and not training
            mi = machine_index[run.machine]
            member = {
                "fal": (model, dataset, backend, batch) if ok and p50 and acc is not None else None,
                "fsp": (model, dataset, backend, batch) if ok and speedup is not None and method != "baseline" else None,
                "fre": (backend,) if ok and speedup is not None and theo is not None and method != "baseline" else None,
                "fsa": (model, dataset) if ok and first and size_bytes and acc is not None else None,
                "ffs": (backend,) if ok and speedup is not None and cos is not None and method != "baseline" else None,
            }
            for k, key in member.items():
                if key is None:
                    figs[k].append(0)
                    continue
                g = groups[k].setdefault(key, len(groups[k]))
                figs[k].append(g + 1)
                if method != "baseline":
                    compared[k].add(g)
                if k == "fal":
                    points[k].setdefault(g, []).append((p50, acc, i, mi))
                elif k == "fsa":
                    points[k].setdefault(g, []).append((size_bytes, acc, i))
    config_cols: dict[str, list[Any]] = {k: [] for k in CONFIG_COLUMNS}
    for config in configs:
        for k, v in zip(CONFIG_COLUMNS, config, strict=True):
            config_cols[k].append(strings(v) if k in ("model", "dataset", "method", "kind", "params", "backend") else v)
    figures = {}
    for k, keyed in groups.items():
        specs = []
        for i, g in enumerate(figs[k]):  # a figure of baselines alone compares nothing (e.g. a training suite)
            if g and g - 1 not in compared[k]:
                figs[k][i] = 0
        for key, g in keyed.items():
            if g not in compared[k]:
                continue
            spec: dict[str, Any] = {"key": list(key), "id": g + 1}
            if k == "fal":  # one front per machine: latencies of different machines are never ranked together
                spec["fronts"] = {str(m): [p[2] for p in pareto_front([p for p in points[k][g] if p[3] == m])]
                                  for m in sorted({p[3] for p in points[k][g]})}
            elif k == "fsa":
                spec["front"] = [p[2] for p in pareto_front(points[k][g])]  # smaller and more accurate
            specs.append(spec)
        figures[k] = sorted(specs, key=lambda s: [(0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))
                                                  for v in s["key"]])
    env_index: dict[str, int] = {}
    envs: list[list[tuple[str, str]]] = []
    run_cols: dict[str, list[Any]] = {k: [] for k in ("id", "started", "machine", "href", "env", "hasEnv", "records")}
    for run in runs:
        facts = env_facts(run.env)
        key = json.dumps(facts)
        if key not in env_index:
            env_index[key] = len(envs)
            envs.append(facts)
        run_cols["id"].append(run.run_id)
        run_cols["started"].append(run.started)
        run_cols["machine"].append(machine_index[run.machine])
        run_cols["href"].append(run.href)
        run_cols["env"].append(env_index[key])
        run_cols["hasEnv"].append(int((run.path / "env.json").is_file()))
        run_cols["records"].append(len(run.records))
    return {
        "strings": strings.items,
        "machines": [{"id": m, "label": machines[m]["label"], "short": machines[m]["short"],
                      "colour": machines[m]["colour"]} for m in machine_ids],
        "runs": run_cols, "envs": envs, "configs": config_cols, "rows": cols, "member": figs,
        "errors": {str(k): v for k, v in errors.items()}, "figures": figures,
    }
