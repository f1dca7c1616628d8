"""``optbench publish``: a static leaderboard site from every run under a results folder.

The site, written to SITE_DIR:

- ``index.html``: every suite, run and machine, with dates;
- ``suites/<suite>.html``: one page per suite, the leaderboard across its runs (sortable,
  filterable, "best under constraints") and its figures, each row linked to its run;
- ``runs/<suite>/<run>/``: each run's ``report.html`` (copied when it is newer than the
  run's records, regenerated otherwise) beside its ``env.json``, ``run.json`` and
  ``suite.yaml``, so the machine and software behind a row are one click away.

It opens from disk and from any static host: nothing is fetched unless ``--plotly cdn``.
With ``--plotly inline`` plotly.js travels inside each suite page gzip-compressed and
base64-encoded (about 2 MB instead of 4.8 MB), unpacked by the browser's own
DecompressionStream; the run reports inside the site load the site's one copy,
``assets/plotly.min.js``, a local file (a report that carried its own 4.8 MB would make
200 runs a 1 GB site).

The suite page must stay small with tens of thousands of records, so its data is columnar
JSON of only the fields it shows, numbers rounded to four significant digits and strings
stored once; everything else about a record is in its run's report. Figures are drawn in
the browser from the same data; the Python side decides which record goes in which figure
and computes the Pareto fronts (``harness.report.pareto_front``), so that logic is tested
here once. Every string from a suite, a plugin or a record is escaped for HTML, and the
embedded JSON cannot close its ``<script>`` tag; the page's JavaScript writes text with
``textContent`` only.

Runs on different machines are never ranked together silently: each run carries a machine
fingerprint (``machine_fingerprint``) from its env.json; figures keep one trace and one
front per machine, and the page says so whenever a view mixes machines.
"""
from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from harness import results
from harness.errors import OptbenchError
from harness.records import RECORDS_FILE, STATUSES, baseline_key, fill_relative_figures, read_records
from harness.report import (
    CSS,
    FIGURES_JS,
    NULL,
    REPORT_FILE,
    _esc,
    _fmt_params,
    _num,
    _row_order,
    _script_json,
    _variant,
    pareto_front,
    plotly_script,
    read_json,
    render_run_report,
)
from harness.training_summary import is_training

SITE_MARKER = ".optbench-site"
#: The site's one plotly.js, which the run reports inside it load (inline mode).
PLOTLY_ASSET = "assets/plotly.min.js"
COPIED_FILES = ("env.json", "run.json", "suite.yaml")
#: Two-sided normal quantile for 97.5%: each median gets a 97.5% interval, so the speedup
#: interval built from two of them holds with at least 95% (Bonferroni).
Z_MEDIAN = 2.241402727604947
#: Distinct colours for machines, in order of first appearance (oldest run first).
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")
#: Below this many runs the pool's start-up costs more than it saves.
POOL_MIN_RUNS = 8


# --- machines -------------------------------------------------------------------------------

def _gpu_names(env: dict) -> list[str]:
    return results.gpu_names(env)


def machine_fingerprint(env: dict) -> str:
    """A short id of the hardware a run's figures came from (``harness.results.machine_fingerprint``:
    hostname, CPU model, logical cores, GPUs), the same rule ``optbench compare`` applies.
    Software (torch, plugins) is not part of it: it is shown beside every row, and two
    torch builds on one machine are what a comparison is for. No env.json gives "unknown".
    """
    fp = results.machine_fingerprint(env)
    if not fp or not any(fp.values()):
        return "unknown"
    return hashlib.sha256(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()[:10]


def machine_label(env: dict) -> str:
    """What a reader recognises a machine by: host, CPU, cores, GPUs."""
    return results.machine_label(env) or "unknown machine"


def _env_facts(env: dict) -> list[tuple[str, str]]:
    """env.json as (what, value) pairs for the machine panel of a row."""
    git = env.get("suite_git") if isinstance(env.get("suite_git"), dict) else {}
    plugins = env.get("plugins") if isinstance(env.get("plugins"), dict) else {}
    backends = env.get("backends") if isinstance(env.get("backends"), dict) else {}
    facts = [
        ("machine id", machine_fingerprint(env)),
        ("host", env.get("hostname")),
        ("CPU", env.get("cpu_model")),
        ("cores", " / ".join(str(v) for v in (env.get("cores"), env.get("physical_cores")) if v)
         + (" (logical / physical)" if env.get("physical_cores") else "")),
        ("default threads", env.get("threads_default")),
        ("GPUs", ", ".join(_gpu_names(env)) or "none recorded"),
        ("torch", env.get("torch")),
        ("Python", " ".join(str(v) for v in (env.get("python_implementation"), env.get("python")) if v)),
        ("numpy", env.get("numpy")),
        ("platform", env.get("platform")),
        ("optbench", env.get("harness_version")),
        ("suite commit", (str(git.get("commit", ""))[:12] + (" (uncommitted changes)" if git.get("dirty") else ""))
         if git.get("commit") else None),
        ("plugins", ", ".join(f"{name} {(info or {}).get('version', '')}".strip() for name, info in plugins.items()
                              if isinstance(info, dict) or info is None)),
    ]
    facts += [(f"backend {name}", json.dumps(info, sort_keys=True, default=str)) for name, info in backends.items()]
    return [(k, str(v)) for k, v in facts if v not in (None, "")]


# --- finding runs ---------------------------------------------------------------------------

@dataclass
class Run:
    """One run directory and what the site needs to know about it before reading its records."""

    path: Path
    rel: str  # path under RESULTS_DIR, as the reader knows it
    suite: str
    run_id: str
    started: str | None
    meta: dict
    env: dict
    machine: str = ""
    href: str = ""  # the run's folder in the site, relative to the site root
    records: list[tuple] = field(default_factory=list)
    report: str = ""  # "copied" or "regenerated"
    training: bool = False


def _first_record(path: Path) -> dict:
    try:
        with open(path / RECORDS_FILE, encoding="utf-8", errors="replace") as f:
            row = json.loads(f.readline() or "{}")
    except (OSError, ValueError):
        return {}
    return row if isinstance(row, dict) else {}


def find_runs(results_dir: Path) -> list[Run]:
    """Every folder under ``results_dir`` (itself included) holding a records.jsonl.

    A run's folder is not searched further (its cells/ hold no runs); hidden folders (temp
    files, a previous site's swap) are skipped.
    """
    found = []
    for folder, dirs, files in os.walk(results_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if RECORDS_FILE not in files:
            continue
        dirs[:] = []
        path = Path(folder)
        meta, env = read_json(path / "run.json"), read_json(path / "env.json")
        first = _first_record(path) if not (meta.get("suite") and meta.get("run_id")) else {}
        suite = meta.get("suite") or first.get("suite") or (path.parent.name if path != results_dir else "unnamed")
        rel = path.relative_to(results_dir).as_posix()
        found.append(Run(path=path, rel=rel if rel != "." else path.name, suite=str(suite),
                         run_id=str(meta.get("run_id") or first.get("run_id") or path.name),
                         started=meta.get("started_at") or env.get("started_at"), meta=meta, env=env,
                         machine=machine_fingerprint(env)))
    return found


def _slug(name: str, taken: set[str]) -> str:
    """A file-name-safe, unique form of ``name`` (hostile names included)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:60] or "x"
    slug = base if base == name else f"{base}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"
    n = 2
    while slug.lower() in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug.lower())
    return slug


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
    """samples.json ({"<batch size>": [ns, ...]}) or {} when missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
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
                by_cell[cid] = {} if "/" in cid or ".." in cid else _read_samples(run_dir / "cells" / cid / "samples.json")
            samples = by_cell[cid].get(str(r.get("batch_size")))
            medians[key] = median_interval(samples) if isinstance(samples, list) and samples else None
        return medians[key]

    baselines = {baseline_key(r): r for r in records if r.get("method") == "baseline" and r.get("status") == "ok"}
    out = {}
    for i, r in enumerate(records):
        base = baselines.get(baseline_key(r))
        if r.get("method") == "baseline" or r.get("status") != "ok" or base is None or r.get("speedup") is None:
            continue
        mine, theirs = interval(r), interval(base)
        if mine and theirs and mine[0] > 0:
            out[i] = (theirs[0] / mine[1], theirs[1] / mine[0])
    return out


def _round(value: Any) -> float | int | None:
    """Four significant digits (plenty for a figure, a quarter of the bytes), ints without ".0"."""
    v = _num(value)
    if v is None:
        return None
    v = float(f"{v:.4g}")
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


def _flag(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _row(r: dict, interval: tuple[float, float] | None, first_of_cell: bool) -> tuple:
    """A record as the site keeps it: its configuration, then the figures the page shows."""
    config = (str(r.get("model")), _variant(r, "dataset"), str(r.get("method")), str(r.get("method_kind") or ""),
              _fmt_params(r.get("params")), _variant(r, "backend"), _round(r.get("batch_size")), _round(r.get("seed")),
              int(is_training(r)))
    status = str(r.get("status") or "")
    error = str(r.get("error"))[:500] if r.get("error") and status != "ok" else None
    return (config, status, error, _round(r.get("latency_p50_ms")), _round(r.get("latency_p99_ms")),
            _round(r.get("speedup")), _round(interval[0]) if interval else None,
            _round(interval[1]) if interval else None, _round(r.get("theoretical_speedup")), _round(r.get("accuracy")),
            _round(r.get("accuracy_delta")), _flag(r.get("passes_gate")), _flag(r.get("noisy")),
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
    records.sort(key=_row_order)
    intervals = _speedup_intervals(run_dir, records)
    seen: set[Any] = set()
    rows = []
    for i, r in enumerate(records):
        first = r.get("status") == "ok" and r.get("cell_id") not in seen
        if first:
            seen.add(r.get("cell_id"))
        rows.append(_row(r, intervals.get(i), first))
    report = run_dir / REPORT_FILE
    fresh = (task.plotly == "inline" and report.is_file()
             and report.stat().st_mtime >= (run_dir / RECORDS_FILE).stat().st_mtime)
    html = report.read_text(encoding="utf-8") if fresh else render_run_report(run_dir, task.plotly)
    if task.plotly == "inline":
        html = _shared_plotly(html, "../../../")  # runs/<suite>/<run>/report.html -> the site's root
    (target / REPORT_FILE).write_text(html, encoding="utf-8")
    for name in COPIED_FILES:
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, target / name)
    return {"rows": rows, "report": "copied" if fresh else "regenerated"}


def _inline_plotly() -> str:
    return plotly_script("inline")  # the exact tag run reports inline


def _shared_plotly(html: str, root: str) -> str:
    """A run report inside the site loads the site's one copy of plotly.js (a local file:
    offline still, from disk or any host) instead of carrying its own 4.8 MB: 200 runs
    would otherwise make a 1 GB site. A report made with another plotly build keeps its
    own bundle untouched."""
    inline = _inline_plotly()
    if inline not in html:
        return html
    return html.replace(inline, f'<script charset="utf-8" src="{root}{PLOTLY_ASSET}"></script>', 1)


def _process_all(tasks: list[Task], workers: int | None) -> list[dict[str, Any]]:
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


ROW_COLUMNS = ("p50", "p99", "speedup", "lo", "hi", "theo", "acc", "dacc", "gate", "noisy", "size", "bytes")
CONFIG_COLUMNS = ("model", "dataset", "method", "kind", "params", "backend", "batch", "seed", "training")


def suite_data(runs: list[Run], machines: dict[str, dict]) -> dict[str, Any]:
    """The columnar JSON a suite page draws its table and figures from (runs newest first)."""
    strings = _Strings()
    configs: dict[tuple, int] = {}
    cols: dict[str, list[Any]] = {k: [] for k in ("run", "cfg", "status", *ROW_COLUMNS)}
    figs: dict[str, list[int]] = {"fal": [], "fsp": [], "fre": [], "fsa": []}
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
            p50, _, speedup, _, _, theo, acc, *_, size_bytes = values
            model, dataset, method, _kind, _, backend, batch, _, training = config
            ok = status == "ok" and not training
            mi = machine_index[run.machine]
            member = {
                "fal": (model, dataset, backend, batch) if ok and p50 and acc is not None else None,
                "fsp": (model, dataset, backend, batch) if ok and speedup is not None and method != "baseline" else None,
                "fre": (backend,) if ok and speedup is not None and theo is not None and method != "baseline" else None,
                "fsa": (model, dataset) if ok and first and size_bytes and acc is not None else None,
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
        facts = _env_facts(run.env)
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


# --- pages ----------------------------------------------------------------------------------

def _asset(name: str) -> str:
    return resources.files("harness").joinpath("site_assets", name).read_text(encoding="utf-8")


_PLOTLY_GZ: str | None = None


def _plotly_tag(mode: str) -> str:
    """plotly.js for a site page: the CDN tag, or the bundle gzip + base64 inside the page."""
    global _PLOTLY_GZ
    if mode == "cdn":
        return plotly_script("cdn")
    if _PLOTLY_GZ is None:
        from plotly.offline import get_plotlyjs

        _PLOTLY_GZ = base64.b64encode(gzip.compress(get_plotlyjs().encode("utf-8"), 6, mtime=0)).decode("ascii")
    return f'<script type="application/octet-stream" id="plotly-gz">{_PLOTLY_GZ}</script>'


def _when(value: Any) -> str:
    """An ISO timestamp as "YYYY-MM-DD HH:MM" (UTC as recorded), or — when absent."""
    s = str(value or "")
    m = re.match(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})", s)
    return f"{m.group(1)} {m.group(2)}" if m else (s or NULL)


def _page(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<link rel="icon" href="data:,"><title>{_esc(title)}</title><style>{CSS}{_asset("site.css")}</style></head>
<body>
{body}
</body></html>
"""


def _status_pills(counts: dict) -> str:
    keys = [k for k in STATUSES if counts.get(k)] + sorted(str(k) for k in counts if k not in STATUSES and counts[k])
    return " ".join(f'<span class="pill st-{k if k in STATUSES else "other"}">{_esc(k)} {_esc(counts[k])}</span>'
                    for k in keys) or NULL


def _run_counts(run: Run) -> dict:
    counts = run.meta.get("status_counts")
    if isinstance(counts, dict):
        return counts
    return Counter(status for _, status, *_ in run.records)


def _machine_cell(machines: dict[str, dict], run: Run, prefix: str) -> str:
    m = machines[run.machine]
    env = (f' · <a href="{_esc(prefix + run.href)}/env.json">env.json</a>'
           if (run.path / "env.json").is_file() else " · no env.json")
    return (f'<span class="chip" style="background:{m["colour"]}"></span>'
            f'<span title="{_esc(m["label"])}">{_esc(m["short"])}</span>{env}')


def _runs_table(runs: list[Run], machines: dict[str, dict], prefix: str, with_suite: bool) -> str:
    head = ["started", *(["suite"] if with_suite else []), "run", "machine", "records", "cells", "optbench",
            "suite commit"]
    out = []
    for run in runs:
        git = run.env.get("suite_git") if isinstance(run.env.get("suite_git"), dict) else {}
        commit = str(git.get("commit") or "")[:10] + ("+" if git.get("dirty") else "")
        suite = [f'<td><a href="{prefix}suites/{_esc(run.href.split("/")[1])}.html">{_esc(run.suite)}</a></td>'] \
            if with_suite else []
        cells = [f"<td>{_esc(_when(run.started))}</td>", *suite,
                 f'<td><a class="run-link" href="{_esc(prefix + run.href)}/{REPORT_FILE}">{_esc(run.run_id)}</a></td>',
                 f"<td>{_machine_cell(machines, run, prefix)}</td>", f'<td class="num">{len(run.records)}</td>',
                 f"<td>{_status_pills(_run_counts(run))}</td>", f"<td>{_esc(run.env.get('harness_version') or NULL)}</td>",
                 f'<td title="{_esc(git.get("commit") or "")}">{_esc(commit or NULL)}</td>']
        out.append(f"<tr>{''.join(cells)}</tr>")
    return ('<div class="scroll"><table class="plain"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(out) + "</tbody></table></div>")


def _machines_table(machines: dict[str, dict], runs: list[Run]) -> str:
    counts = Counter(r.machine for r in runs)
    out = []
    for mid, m in machines.items():
        if not counts[mid]:
            continue
        env = m["env"]
        gpus = ", ".join(_gpu_names(env)) or "none recorded"
        cores = f"{env.get('cores') or NULL} / {env.get('physical_cores') or NULL}"
        cells = [f'<span class="chip" style="background:{m["colour"]}"></span>{_esc(m["short"])}', _esc(mid),
                 _esc(env.get("cpu_model") or NULL), _esc(cores), _esc(gpus), _esc(env.get("torch") or NULL),
                 _esc(env.get("python") or NULL), _esc(env.get("platform") or NULL), str(counts[mid])]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = ["machine", "id", "CPU", "cores (logical / physical)", "GPUs", "torch", "Python", "platform", "runs"]
    return ('<div class="scroll"><table class="plain"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(out) + "</tbody></table></div>")


def index_page(suites: dict[str, list[Run]], slugs: dict[str, str], machines: dict[str, dict],
               source: str, generated: str) -> str:
    runs = sorted((r for rs in suites.values() for r in rs), key=lambda r: (str(r.started or ""), r.run_id),
                  reverse=True)
    rows = []
    for suite, rs in sorted(suites.items()):
        dates = sorted(str(r.started) for r in rs if r.started)
        n_machines = len({r.machine for r in rs})
        rows.append(f'<tr><td><a class="suite-link" href="suites/{slugs[suite]}.html">{_esc(suite)}</a></td>'
                    f'<td class="num">{len(rs)}</td><td class="num">{sum(len(r.records) for r in rs)}</td>'
                    f'<td class="num">{n_machines}</td><td>{_esc(_when(dates[0] if dates else None))}</td>'
                    f'<td>{_esc(_when(dates[-1] if dates else None))}</td></tr>')
    n_machines = len({r.machine for r in runs})
    body = f"""<h1>optbench leaderboard</h1>
<p class="meta">{len(suites)} suite{"s" * (len(suites) != 1)} · {len(runs)} run{"s" * (len(runs) != 1)} ·
{sum(len(r.records) for r in runs)} records · {n_machines} machine{"s" * (n_machines != 1)} ·
published {_esc(generated)} from <code>{_esc(source)}</code></p>
<h2>Suites</h2>
<p class="note">Each suite page holds the leaderboard across its runs: every record as a row, sortable and
filterable, with the baseline-relative figures, and the figures drawn from them.</p>
<div class="scroll"><table class="plain" id="suites"><thead><tr><th>suite</th><th>runs</th><th>records</th>
<th>machines</th><th>first run</th><th>latest run</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>
<h2>Runs</h2>
<p class="note">Newest first. The run id opens the run's own report; env.json is the machine and software its
figures came from.</p>
{_runs_table(runs, machines, "", with_suite=True)}
<h2>Machines</h2>
<p class="note">A machine is a host, CPU, core count, set of GPUs and torch build (from each run's env.json);
its id is a hash of those. Latencies from different machines are not comparable, and the suite pages never rank
them together without saying so.</p>
{_machines_table(machines, runs)}"""
    return _page("optbench leaderboard", body)


def _figure_sections(data: dict[str, Any], training: bool) -> tuple[str, int]:
    """The figures' containers and captions (drawn in the browser from the page's data); none at
    all for a suite of training cells only, whose figures are in its Training section."""
    if training and not any(data["figures"].values()):
        return "", 0
    n_machines = len(data["machines"])
    machines_note = (f" Points from {n_machines} machines are shown: each machine has its own colour and its own "
                     "front, and points of different machines are not ranked against each other." if n_machines > 1
                     else "")
    parts, count = [], 0

    def head(title: str, kind: str, spec: dict, caption: str) -> None:
        nonlocal count
        parts.append(f'<h3>{_esc(title)}</h3><div class="plot" id="fig-{kind}-{spec["id"]}" data-kind="{kind}" '
                     f'data-id="{spec["id"]}"></div><p class="caption">{caption}</p>')
        count += 1

    figures = data["figures"]
    parts.append('<h2 id="accuracy-latency">Accuracy vs latency</h2>')
    if not figures["fal"]:
        parts.append('<p class="skip">No figure: no record has status ok with both a latency and an accuracy '
                     '(training cells are in the Training section).</p>')
    for spec in figures["fal"]:
        model, dataset, backend, batch = (str(v) for v in spec["key"])
        head(f"{model} · {dataset} · {backend} · batch {batch}", "fal", spec,
             f"Each point is one record of one run: a method (hover for its params, run and machine) applied to "
             f"{_esc(model)} on {_esc(dataset)}. x is the p50 (median) latency per call of that run's timed calls "
             f"at batch size {_esc(batch)} on the {_esc(backend)} backend (log scale); y is top-1 accuracy on the "
             f"held-out test split after the method was applied. Stars are the baseline. The dashed step line is "
             f"the Pareto front: a point is on it when no other point of its machine is at least as fast and as "
             f"accurate and strictly better in one.{machines_note} Records with status ok and both figures only.")
    parts.append('<h2 id="speedup">Speedup per method</h2>')
    if not figures["fsp"]:
        parts.append('<p class="skip">No figure: no method other than the baseline has a measured speedup.</p>')
    for spec in figures["fsp"]:
        model, dataset, backend, batch = (str(v) for v in spec["key"])
        head(f"{model} · {dataset} · {backend} · batch {batch}", "fsp", spec,
             f"Measured speedup of each method over the baseline of its own run (same model, dataset, backend, "
             f"seed and batch size {_esc(batch)}): the baseline's p50 latency divided by the method's; above 1× "
             f"(the dashed line) is faster. One marker per run. Error bars are a 95% interval from the raw timed "
             f"samples of both: each median's distribution-free 97.5% interval (order statistics), combined as "
             f"baseline low / method high and baseline high / method low. It treats the samples of a run as "
             f"independent, so it shows timing noise within a run, not the spread between runs (compare the "
             f"markers for that). A marker without a bar has no raw samples. The y axis is log scale."
             + (f" Runs from {n_machines} machines are shown side by side in their own colours, never pooled."
                if n_machines > 1 else ""))
    parts.append('<h2 id="realized">Realized vs theoretical speedup</h2>')
    if not figures["fre"]:
        parts.append('<p class="skip">No figure: no method has both a measured and a theoretical speedup.</p>')
    for spec in figures["fre"]:
        backend = str(spec["key"][0])
        head(f"{backend}: every model and batch size", "fre", spec,
             f"x is the theoretical speedup (the baseline's FLOPs divided by the FLOPs of a kernel that skipped "
             f"every zero weight), y the measured speedup (baseline p50 latency / p50 latency, same run) on the "
             f"{_esc(backend)} backend, both log scale; error bars as in the speedup figures. On the dashed "
             f"diagonal the saved arithmetic became time. A point under it is a method whose zeros do not turn "
             f"into time (dense kernels still multiply them); a point above it gained more than its FLOPs say "
             f"(e.g. less memory traffic). Colours are method kinds; each point is relative to its own run's "
             f"baseline, so machines are not ranked against each other here.")
    parts.append('<h2 id="size-accuracy">Size vs accuracy</h2>')
    if not figures["fsa"]:
        parts.append('<p class="skip">No figure: no record has status ok with both a model size and an '
                     'accuracy.</p>')
    for spec in figures["fsa"]:
        model, dataset = (str(v) for v in spec["key"])
        head(f"{model} · {dataset}", "fsa", spec,
             f"x is the model's size: the bytes of its checkpoint (serialized state_dict) after the method, or, "
             f"for a method that simulates a storage format, the bytes that format takes (log scale); y is top-1 "
             f"accuracy of {_esc(model)} on the held-out test split of {_esc(dataset)}. One point per cell and "
             f"run (batch size changes neither). Colours are method kinds; the dashed line is the Pareto front "
             f"(no other point is at least as small and as accurate and strictly better in one). Neither figure "
             f"depends on the machine's speed, so runs from every machine are pooled here.")
    return "\n".join(parts), count


def _training_section(runs: list[Run], machines: dict[str, dict], first_plot: int) -> tuple[str, int]:
    """Per machine, the training problems of its latest run with training cells (older runs: their reports)."""
    from harness.report_training import TRAINING_NOTE, load_curves, training_problems

    latest: dict[str, Run] = {}
    for run in runs:  # newest first
        if run.training and run.machine not in latest:
            latest[run.machine] = run
    if not latest:
        return "", 0
    parts = ['<h2 id="training">Training</h2>', TRAINING_NOTE,
             '<p class="note">Curves and time-to-target bars come from the latest run with training cells on each '
             'machine; seeds are aggregated within that run, never across machines or runs. Older runs are in '
             'their own reports (Runs, below).</p>']
    n = first_plot
    for mid, run in latest.items():
        records = fill_relative_figures(read_records(run.path))
        html, count = training_problems(records, load_curves(run.path, records), n, level=4)
        if not count and not html:
            continue
        m = machines[mid]
        parts.append(f'<h3><span class="chip" style="background:{m["colour"]}"></span>{_esc(m["short"])}: run '
                     f'<a href="../{_esc(run.href)}/{REPORT_FILE}">{_esc(run.run_id)}</a> '
                     f'({_esc(_when(run.started))})</h3><p class="meta">{_esc(m["label"])}</p>{html}')
        n += count
    return "\n".join(parts), n - first_plot


def suite_page(suite: str, runs: list[Run], machines: dict[str, dict], plotly: str) -> tuple[str, dict[str, Any]]:
    """The suite's page and its data (returned for tests and the size budget)."""
    used = {m: machines[m] for m in dict.fromkeys(r.machine for r in runs)}
    data = suite_data(runs, used)
    training, n_training = _training_section(runs, used, 0)
    figures, n_figs = _figure_sections(data, n_training > 0)
    n_records = sum(len(r.records) for r in runs)
    dates = sorted(str(r.started) for r in runs if r.started)
    span = f"{_when(dates[0])} to {_when(dates[-1])}" if dates else "dates unknown"
    mixed = (f'<p class="warn">These runs come from {len(used)} machines. Latency and speedup are only comparable '
             f'within one machine: figures keep one colour and one Pareto front per machine, and the table says when '
             f'the rows it ranks mix machines (filter by machine to rank within one).</p>' if len(used) > 1 else "")
    plotly_js = _plotly_tag(plotly) if n_figs + n_training else ""
    body = f"""<p class="crumbs"><a href="../index.html">← all suites</a></p>
<h1>optbench leaderboard: {_esc(suite)}</h1>
<p class="meta">{len(runs)} run{"s" * (len(runs) != 1)} · {n_records} records · {len(used)}
machine{"s" * (len(used) != 1)} · {_esc(span)}</p>
{mixed}
<h2 id="leaderboard-head">Leaderboard</h2>
<p class="note">One row per record of every run (model × dataset × method × params × backend × batch size × seed).
Speedup, theoretical speedup, size ratio and Δ accuracy are relative to the baseline of the same run, model,
dataset, backend, seed and batch size: above 1× is faster / smaller, <span class="worse-text">red</span> is worse
than the baseline. Rows that fail the suite's accuracy gate or whose timing was noisy (IQR over 10% of the median)
are marked. The run id opens the run's report; the machine button shows the machine and software it ran on.
Click a column header to sort (empty values always sort last).</p>
<noscript><p class="warn">The table, its filters and the figures need JavaScript.</p></noscript>
<div id="filters" class="filters"></div>
<p id="machine-warning" class="warn" hidden></p>
<details id="best" class="best" open><summary>Best under constraints</summary>
<form id="best-form" class="filters" onsubmit="return false">
<label>maximise <select id="best-objective">
<option value="acc">accuracy</option><option value="p50">speed (lowest p50 latency)</option>
<option value="speedup">speedup</option><option value="size">size ratio (smallest model)</option>
</select></label>
<label>p50 latency ≤ <input id="best-max-p50" type="number" min="0" step="any" placeholder="any"> ms</label>
<label>accuracy drop ≤ <input id="best-max-drop" type="number" min="0" step="any" placeholder="any"></label>
<label>speedup ≥ <input id="best-min-speedup" type="number" min="0" step="any" placeholder="any"> ×</label>
<label><input id="best-gate" type="checkbox" checked> skip rows that fail the accuracy gate</label>
<label><input id="best-quiet" type="checkbox"> skip noisy rows</label>
</form>
<p class="note">Among the rows the filters above select, with status ok: the one that maximises the objective
within the bounds (ties: the faster, then the more accurate). Accuracy drop is the baseline's accuracy minus the
row's; a bound leaves out rows without that figure. With several machines there is one answer per machine.</p>
<div id="best-result" aria-live="polite"></div>
</details>
<p id="row-count" class="meta"></p>
<div class="scroll"><table id="board"><thead></thead><tbody></tbody></table></div>
<p><button id="more" type="button" hidden>show more rows</button></p>
<dialog id="env-dialog"><h3 id="env-title"></h3><p id="env-links"></p><dl id="env-facts"></dl>
<form method="dialog"><button>close</button></form></dialog>
{figures}
{training}
<h2 id="runs">Runs</h2>
{_runs_table(runs, machines, "../", with_suite=False)}
<h2 id="machines">Machines</h2>
{_machines_table(used, runs)}
<script type="application/json" id="board-data">{_script_json(json.dumps(data, separators=(",", ":"),
                                                                         allow_nan=False))}</script>
{plotly_js}
<script>{FIGURES_JS}{_asset("leaderboard.js")}</script>"""
    return _page(f"optbench leaderboard · {suite}", body), data


# --- publish --------------------------------------------------------------------------------

def _check_paths(results_dir: Path, out: Path) -> tuple[Path, Path]:
    if not results_dir.exists():
        raise OptbenchError(f"{results_dir}: no such folder; expected RESULTS_DIR to be a folder of runs "
                            f"(<suite>/<run-id>/records.jsonl, as `optbench run --results` writes them)")
    if not results_dir.is_dir():
        raise OptbenchError(f"{results_dir}: is a file; expected RESULTS_DIR to be a folder of runs "
                            f"(<suite>/<run-id>/records.jsonl)")
    if out.exists() and not out.is_dir():
        raise OptbenchError(f"--out {out}: is a file; expected SITE_DIR to be a folder (new, empty, or a site "
                            f"written by optbench publish)")
    res, site = results_dir.resolve(), out.resolve()
    if site == res or site.is_relative_to(res):
        raise OptbenchError(f"--out {out}: is inside RESULTS_DIR {results_dir}; write the site outside the "
                            f"results (e.g. --out site), so a site is never read back as runs")
    if res.is_relative_to(site):
        raise OptbenchError(f"--out {out}: contains RESULTS_DIR {results_dir}; publishing replaces SITE_DIR, "
                            f"so it must be a folder of its own")
    if site.is_dir() and any(site.iterdir()) and not (site / SITE_MARKER).exists():
        raise OptbenchError(f"--out {out}: exists and is not a site written by optbench publish (no {SITE_MARKER} "
                            f"in it); expected a new or empty folder, since publishing replaces its content")
    return res, site


def _machines(runs: list[Run]) -> dict[str, dict]:
    """Every machine, oldest first: a colour, a short name (the host, numbered when hosts repeat), a label."""
    machines: dict[str, dict] = {}
    for run in sorted(runs, key=lambda r: (str(r.started or ""), r.rel)):
        if run.machine not in machines:
            machines[run.machine] = {"env": run.env, "label": machine_label(run.env)}
    hosts = Counter(str(m["env"].get("hostname") or "unknown") for m in machines.values())
    seen: Counter = Counter()
    for i, m in enumerate(machines.values()):
        host = str(m["env"].get("hostname") or "unknown")
        seen[host] += 1
        m["short"] = f"{host} #{seen[host]}" if hosts[host] > 1 else host
        m["colour"] = PALETTE[i % len(PALETTE)]
    return machines


@dataclass
class Published:
    site: Path
    runs: int
    suites: int
    records: int
    seconds: float
    pages: dict[str, int]  # page path relative to the site -> bytes
    reports: Counter


def publish(results_dir: Path, out: Path, plotly: str = "inline", workers: int | None = None) -> Published:
    """Build the site of every run under ``results_dir`` into ``out`` (replacing an earlier site there)."""
    t0 = time.perf_counter()
    if plotly not in ("inline", "cdn"):
        raise OptbenchError(f"--plotly {plotly}: expected inline or cdn")
    results_dir, out = _check_paths(Path(results_dir), Path(out))
    runs = find_runs(results_dir)
    if not runs:
        raise OptbenchError(f"{results_dir}: no runs found; expected run folders holding records.jsonl "
                            f"(<suite>/<run-id>/records.jsonl, as `optbench run --results {results_dir}` writes them)")
    suite_slugs: dict[str, str] = {}
    taken: set[str] = set()
    for suite in sorted({r.suite for r in runs}):
        suite_slugs[suite] = _slug(suite, taken)
    run_taken: dict[str, set[str]] = {}
    for run in sorted(runs, key=lambda r: r.rel):
        run.href = f"runs/{suite_slugs[run.suite]}/{_slug(run.run_id, run_taken.setdefault(run.suite, set()))}"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        results = _process_all([Task(str(r.path), str(tmp / r.href), plotly) for r in runs], workers)
        for run, res in zip(runs, results, strict=True):
            run.records, run.report = res["rows"], res["report"]
            run.training = any(config[-1] for config, *_ in run.records)
        machines = _machines(runs)
        suites: dict[str, list[Run]] = {}
        for run in sorted(runs, key=lambda r: (str(r.started or ""), r.run_id), reverse=True):
            suites.setdefault(run.suite, []).append(run)
        pages = {}
        (tmp / "suites").mkdir()
        for suite, rs in suites.items():
            page, _ = suite_page(suite, rs, machines, plotly)
            name = f"suites/{suite_slugs[suite]}.html"
            pages[name] = len(page.encode("utf-8"))
            (tmp / name).write_text(page, encoding="utf-8")
        generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        index = index_page(suites, suite_slugs, machines, results_dir.name, generated)
        (tmp / "index.html").write_text(index, encoding="utf-8")
        pages["index.html"] = len(index.encode("utf-8"))
        if plotly == "inline":
            from plotly.offline import get_plotlyjs

            (tmp / PLOTLY_ASSET).parent.mkdir(parents=True, exist_ok=True)
            (tmp / PLOTLY_ASSET).write_text(get_plotlyjs(), encoding="utf-8")
        (tmp / SITE_MARKER).write_text(json.dumps({"generator": "optbench publish", "published": generated,
                                                    "runs": len(runs)}) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a static host must be able to serve it
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Published(out, len(runs), len(suites), sum(len(r.records) for r in runs), time.perf_counter() - t0,
                     pages, Counter(r.report for r in runs))


def _swap(new: Path, out: Path) -> None:
    """Put the finished site in place; an earlier one is moved aside first, then removed."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(out, old)
    os.replace(new, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def cmd_publish(args: Any) -> int:
    """``optbench publish RESULTS_DIR --out SITE_DIR [--plotly inline|cdn]``; prints the index path."""
    import sys

    done = publish(Path(args.results_dir), Path(args.out), getattr(args, "plotly", "inline") or "inline")
    largest = max((v, k) for k, v in done.pages.items())
    print(f"published {done.runs} run{'s' * (done.runs != 1)} of {done.suites} suite{'s' * (done.suites != 1)} "
          f"({done.records} records) in {done.seconds:.1f} s; reports: "
          + ", ".join(f"{n} {how}" for how, n in sorted(done.reports.items()))
          + f"; largest page {largest[1]} ({largest[0] / 1e6:.2f} MB)", file=sys.stderr)
    print(done.site / "index.html")
    return 0
