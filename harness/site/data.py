"""The data of the leaderboard site (``optbench publish``): each run read in a worker process
(``process_run``: its rows, speedup intervals from raw samples, its report placed in the site)
and a suite's columnar JSON (``suite_data``), which its page draws its table and figures from.

The page's table and figures show one row per cell, batch size and machine (``aggregate``):
the median over that cell's clean runs there (status ok, not contended), with the range over
them and how many runs were left out; every record of every run stays in the data too, so the
runs behind a row are one click away on the page. A row whose runs were all contended takes the
median of those and is marked: it is left out of the Pareto fronts (``fronts`` / ``front``;
``frontsAll`` / ``frontAll`` count it in, for the page's "show contended rows").

``process_run`` runs in a spawn process pool, so it and ``Task`` stay module-level here.
"""
from __future__ import annotations

import functools
import json
import os
import statistics
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.measure.stats import Z_975, median_interval
from harness.record.status import BASELINE, Status
from harness.report.markup import plotly_script
from harness.report.run_report import (
    REPORT_FILE,
    pareto_front,
    render_run_report,
    row_order,
)
from harness.results.labels import (
    batch_label,
    finite,
    fmt_params,
    printable,
    variant_label,
)
from harness.results.records import (
    RecordWarning,
    baseline_key,
    cell_folder,
    fill_relative_figures,
    latency_samples,
    own_file,
    read_records,
    record_point,
)
from harness.results.seeds import is_training
from harness.results.table_spec import SITE, Column, backend_label, columns, other_metric
from harness.site.runs import Run, env_facts

#: The site's one plotly.js, which the run reports inside it load (inline mode).
PLOTLY_ASSET = "assets/plotly.min.js"
COPIED_FILES = ("env.json", "run.json", "suite.yaml")
#: Below this many runs the pool's start-up costs more than it saves.
POOL_MIN_RUNS = 8


# --- reading one run (in a worker process) --------------------------------------------------

def median_interval_ms(samples_ns: Any) -> tuple[float, float] | None:
    """The 97.5% interval of the median, in ms, from raw per-call samples (ns), or None without samples: two
    of them bound an unpaired speedup's 95% interval (``harness.measure.stats``, Bonferroni)."""
    if samples_ns is None or len(samples_ns) == 0:
        return None
    _, lo, hi = median_interval(samples_ns, Z_975)
    return lo / 1e6, hi / 1e6


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
        key = (r.get("cell_id"), record_point(r))
        if key not in medians:
            cid = str(r.get("cell_id"))
            if cid not in by_cell:
                folder = cell_folder(run_dir, cid)
                by_cell[cid] = _read_samples(folder / "samples.json") if folder else {}
            samples = latency_samples(by_cell[cid].get(key[1]))
            medians[key] = median_interval_ms(samples) if samples else None
        return medians[key]

    baselines = {baseline_key(r): r for r in records if r.get("method") == BASELINE and r.get("status") == Status.OK}
    out = {}
    for i, r in enumerate(records):
        base = baselines.get(baseline_key(r))
        if r.get("method") == BASELINE or r.get("status") != Status.OK or base is None or r.get("speedup") is None:
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


def _reference_label(r: dict) -> str | None:
    """The record's reference backend with its params ("cpu(threads=1)"), or None when it names none."""
    name = r.get("reference_backend")
    return variant_label({"backend": name, "backend_params": r.get("reference_backend_params")}, "backend") \
        if name else None


def _row(r: dict, interval: tuple[float, float] | None, first_of_cell: bool) -> tuple:
    """A record as the site keeps it: its configuration, status and error, the figures the page shows
    (``ROW_COLUMNS``), then whether it is its cell's first ok record in the run, its cell id, why it
    was contended and its reference backend. Old records have no ``contended``: they count as clean."""
    config = (str(r.get("model")), variant_label(r, "dataset"), str(r.get("method")), str(r.get("method_kind") or ""),
              fmt_params(r.get("params")), backend_label(r),
              # a generation record's prompt length is part of what it measured: its own row, never merged
              _round(r.get("batch_size")) if r.get("prompt_tokens") is None else batch_label(r), _round(r.get("seed")),
              int(is_training(r)))
    status = str(r.get("status") or "")
    error = str(r.get("error"))[:500] if r.get("error") and status != Status.OK else None
    contended = r.get("contended") is True
    reason = (str(r.get("contended_reason") or "other processes used the CPU while it was timed")[:500]
              if contended else None)
    cell = r.get("cell_id")
    figures = [_site_value(c, r) for c in FIGURES]
    metric = str(r.get("quality_metric"))[:100] if other_metric(r) else None
    lower = None if metric is None else int(r.get("quality_higher_is_better") is False)
    return (config, status, error, *figures, _round(interval[0]) if interval else None,
            _round(interval[1]) if interval else None, int(contended), metric, lower, first_of_cell,
            None if cell is None else str(cell), reason, _reference_label(r))


def _site_value(column: Column, r: dict) -> Any:
    """A figure of a record as the page's data holds it: flags as 0 or 1, agreement and cosine to six decimals,
    every other figure to four significant digits."""
    value = r.get(column.record_field) if column.record_field else None
    if column.only == "tasks" and not other_metric(r):  # a classifier's quality is its accuracy, shown as such
        return None
    if column.kind in ("gate", "flags"):
        return _flag(value)
    return _fidelity(value) if column.key in FIDELITY_COLUMNS else _round(value)


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
        first = r.get("status") == Status.OK and r.get("cell_id") not in seen
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


#: The page's table: the table spec's site view. Its configuration columns come from the row's config; its
#: figures (``FIGURES``, keyed as the spec keys them) are each record's, and each aggregated row's median.
CONFIG_COLUMNS = ("model", "dataset", "method", "kind", "params", "backend", "batch", "seed", "training")
FIGURES: tuple[Column, ...] = tuple(c for c in columns(SITE) if c.key not in CONFIG_COLUMNS and c.kind != "status")
#: A record's figures on the page, in the order ``_row`` gives them (the speedup's interval ``lo``/``hi`` and whether
#: it was contended after the spec's); an aggregated row has the same ones.
#: ``qm`` is the record's quality metric where it is not accuracy (rmse, miou, ...), ``qlb`` 1 where a lower
#: score of it is better: the page ranks and draws ``quality`` by them.
ROW_COLUMNS = (*(c.key for c in FIGURES), "lo", "hi", "cont", "qm", "qlb")
#: Columns a suite whose records lack them does not carry (a language model's figures, another task's
#: quality; null otherwise).
LANGUAGE_COLUMNS = tuple(c.key for c in FIGURES if c.only == "language" or c.key == "kl")
TASK_COLUMNS = (*(c.key for c in FIGURES if c.only == "tasks"), "qm", "qlb")
#: The figures an aggregated row gives as the median over its runs, with their range where the runs differ.
MEDIAN_COLUMNS = tuple(c.key for c in FIGURES if c.kind not in ("gate", "flags"))
#: Six decimals for these (see ``_fidelity``), four significant digits for the others.
FIDELITY_COLUMNS = ("agree", "cos")


def page_columns() -> list[dict[str, Any]]:
    """The table's columns as the page draws them: key, label, format (leaderboard.js reads a figure with the
    format of that name, as the report does), the value below which it is worse than the baseline's, and a title."""
    return [{"key": c.key, "label": c.label_in(SITE), "format": c.format, "worse": c.worse_below, "title": c.title}
            for c in columns(SITE)]


@dataclass
class Aggregated:
    """The leaderboard's rows: one per cell, batch size and machine (and configuration, so two runs that
    label one cell id differently are never merged), in order of first appearance (newest run first)."""

    columns: dict[str, list[Any]]  # "cfg", "machine", "run", "status", "n", "out", then ROW_COLUMNS
    ranges: dict[str, dict[str, list[Any]]]  # column -> {row: [min, max]}, only where the runs used differ
    first: list[bool]  # the row holds its cell's first ok batch size (one size-vs-accuracy point per cell)


def _median(values: list[Any], column: str) -> float | int | None:
    vs = [v for v in values if v is not None]
    if not vs:
        return None
    m = statistics.median(vs)
    return _fidelity(m) if column in FIDELITY_COLUMNS else _round(m)


def aggregate(records: dict[str, list[Any]], members: list[list[int]], keys: list[tuple[int, int]],
              firsts: list[bool], statuses: list[str]) -> Aggregated:
    """The rows of ``members`` (record indices, newest run first; ``keys``: their (config, machine)).

    A row's figures are the median over its clean runs (status ok, not contended); when every ok run
    was contended, over those, and the row is marked contended (``cont``); with no ok run at all the
    row takes the newest run's status and has no figures. ``n`` is how many runs the medians are of,
    ``out`` how many were left out (contended beside clean ones, or not ok). The speedup interval
    (``lo``/``hi``, within one run) is kept for a row of one run; over several, their range says more.
    The accuracy gate passes only when every run used passed; the row is noisy when any of them was.
    """
    cols: dict[str, list[Any]] = {k: [] for k in ("cfg", "machine", "run", "status", "n", "out", *ROW_COLUMNS)}
    ranges: dict[str, dict[str, list[Any]]] = {}
    first: list[bool] = []
    for a, (rows, (cfg, machine)) in enumerate(zip(members, keys, strict=True)):
        ok = [i for i in rows if statuses[i] == Status.OK]
        clean = [i for i in ok if not records["cont"][i]]
        used = clean or ok
        cols["cfg"].append(cfg)
        cols["machine"].append(machine)
        cols["run"].append(records["run"][used[0] if used else rows[0]])
        cols["status"].append(records["status"][used[0] if used else rows[0]])
        cols["n"].append(len(used))
        cols["out"].append(len(rows) - len(used))
        cols["cont"].append(int(bool(ok) and not clean))
        for k in ("qm", "qlb"):  # what its quality is: the suite's word, the same in every run
            cols[k].append(records[k][used[0]] if used else None)
        for k in MEDIAN_COLUMNS:
            values = [records[k][i] for i in used]
            cols[k].append(_median(values, k))
            present = [v for v in values if v is not None]
            if len(present) > 1 and min(present) != max(present):
                ranges.setdefault(k, {})[str(a)] = [min(present), max(present)]
        one = len(used) == 1
        cols["lo"].append(records["lo"][used[0]] if one else None)
        cols["hi"].append(records["hi"][used[0]] if one else None)
        gates = [records["gate"][i] for i in used if records["gate"][i] is not None]
        noisy = [records["noisy"][i] for i in used if records["noisy"][i] is not None]
        cols["gate"].append(min(gates) if gates else None)
        cols["noisy"].append(max(noisy) if noisy else None)
        first.append(any(firsts[i] for i in used))
    return Aggregated(cols, ranges, first)


def _fronts(points: list[tuple]) -> tuple[list[int], list[int] | None]:
    """The Pareto front of clean ``points`` (x, y, row, contended, ...), and, when some are contended, the
    front with them counted in (None otherwise: the same front)."""
    clean = [p[2] for p in pareto_front([p for p in points if not p[3]])]
    if not any(p[3] for p in points):
        return clean, None
    return clean, [p[2] for p in pareto_front(points)]


def _figures(agg: Aggregated, configs: list[tuple], strings: _Strings) -> tuple[dict[str, list[int]], dict]:
    """Which aggregated row goes into which figure (``member``: figure id, 0 for none) and the figures'
    specs, with their Pareto fronts (one per machine for latency: machines are never ranked together)."""
    A = agg.columns
    figs: dict[str, list[int]] = {"fal": [], "fsp": [], "fre": [], "fsa": [], "ffs": []}
    groups: dict[str, dict[tuple, int]] = {k: {} for k in figs}
    points: dict[str, dict[int, list[tuple]]] = {"fal": {}, "fsa": {}}
    compared: dict[str, set[int]] = {k: set() for k in figs}  # groups with a method besides the baseline
    metrics: dict[str, dict[int, tuple[str | None, bool]]] = {"fal": {}, "fsa": {}}  # a group's y: its metric
    for a, cfg in enumerate(A["cfg"]):
        model, dataset, method, _kind, _, backend, batch, _, training = configs[cfg]
        p50, speedup, theo, cos, size_bytes = (A[k][a] for k in ("p50", "speedup", "theo", "cos", "bytes"))
        # y of the quality figures: the row's quality metric (accuracy for a classifier), its fronts drawn in
        # the metric's direction; rows of one model and dataset scored by another metric get figures of their own
        metric, lower = A["qm"][a], bool(A["qlb"][a])
        quality = A["quality"][a] if metric is not None else A["acc"][a]
        ok = strings.items[A["status"][a]] == Status.OK and not training
        cont = A["cont"][a]
        member = {
            "fal": (model, dataset, backend, batch) if ok and p50 and quality is not None else None,
            "fsp": (model, dataset, backend, batch) if ok and speedup is not None and method != BASELINE else None,
            "fre": (backend,) if ok and speedup is not None and theo is not None and method != BASELINE else None,
            "fsa": (model, dataset) if ok and agg.first[a] and size_bytes and quality is not None else None,
            "ffs": (backend,) if ok and speedup is not None and cos is not None and method != BASELINE else None,
        }
        for k, key in member.items():
            if key is None:
                figs[k].append(0)
                continue
            keyed = (*key, metric) if k in metrics else key
            g = groups[k].setdefault(keyed, len(groups[k]))
            figs[k].append(g + 1)
            if method != BASELINE:
                compared[k].add(g)
            y = -quality if lower else quality  # the fronts take higher as better
            if k == "fal":
                points[k].setdefault(g, []).append((p50, y, a, cont, A["machine"][a]))
                metrics[k][g] = (metric, lower)
            elif k == "fsa":
                points[k].setdefault(g, []).append((size_bytes, y, a, cont))
                metrics[k][g] = (metric, lower)
    figures = {}
    for k, keyed in groups.items():
        specs = []
        for i, g in enumerate(figs[k]):  # a figure of baselines alone compares nothing (e.g. a training suite)
            if g and g - 1 not in compared[k]:
                figs[k][i] = 0
        for key, g in keyed.items():
            if g not in compared[k]:
                continue
            spec: dict[str, Any] = {"key": list(key[:-1] if k in metrics else key), "id": g + 1}
            if k in metrics and metrics[k][g][0] is not None:
                spec["metric"], spec["lower"] = metrics[k][g][0], metrics[k][g][1]
            if k == "fal":  # one front per machine: latencies of different machines are never ranked together
                fronts = {str(m): _fronts([p for p in points[k][g] if p[4] == m])
                          for m in sorted({p[4] for p in points[k][g]})}
                spec["fronts"] = {m: f[0] for m, f in fronts.items()}
                if any(f[1] is not None for f in fronts.values()):
                    spec["frontsAll"] = {m: f[0] if f[1] is None else f[1] for m, f in fronts.items()}
            elif k == "fsa":  # smaller and more accurate
                spec["front"], front_all = _fronts(points[k][g])
                if front_all is not None:
                    spec["frontAll"] = front_all
            specs.append(spec)
        figures[k] = sorted(specs, key=lambda s: [(0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))
                                                  for v in s["key"]])
    return figs, figures


#: What the page gets of an aggregated row of several records (its config and machine are its records').
SEVERAL_COLUMNS = ("run", "status", "n", "out", *ROW_COLUMNS)


def _several(agg: Aggregated, members: list[list[int]]) -> dict[str, list[Any]]:
    """The aggregated rows of more than one record, columnar (``at``: their row numbers). A row of one
    record is that record (its figures, n 1 when ok, else 0 and one left out), so the page gets it
    once: a suite whose cells ran once per machine costs no more than before rows were aggregated."""
    at = [a for a, rows in enumerate(members) if len(rows) > 1]
    out: dict[str, list[Any]] = {"at": at}
    for k in SEVERAL_COLUMNS:
        column = agg.columns[k]
        out[k] = [column[a] for a in at]
    return out


def suite_data(runs: list[Run], machines: dict[str, dict]) -> dict[str, Any]:
    """The columnar JSON a suite page draws its table and figures from (runs newest first): ``rows``
    holds every record of every run (``agg``: the number of its aggregated row, of ``nAgg``); ``agg``
    the aggregated rows of several records (see ``_several``); figures and fronts name aggregated rows."""
    strings = _Strings()
    configs: dict[tuple, int] = {}
    cols: dict[str, list[Any]] = {k: [] for k in ("run", "cfg", "status", "agg", *ROW_COLUMNS)}
    errors: dict[str, str] = {}
    reasons: dict[str, str] = {}
    references: dict[str, None] = {}  # the reference backends the records name, in order of first appearance
    machine_ids = list(machines)
    machine_index = {m: i for i, m in enumerate(machine_ids)}
    rows_of: dict[tuple, int] = {}
    members: list[list[int]] = []
    keys: list[tuple[int, int]] = []
    firsts: list[bool] = []
    statuses: list[str] = []
    for ri, run in enumerate(runs):
        mi = machine_index[run.machine]
        for config, status, error, *values, first, cell, reason, reference in run.records:
            i = len(cols["run"])
            cfg = configs.setdefault(config, len(configs))
            a = rows_of.setdefault((mi, cell, cfg), len(rows_of))
            if a == len(members):
                members.append([])
                keys.append((cfg, mi))
            members[a].append(i)
            cols["run"].append(ri)
            cols["cfg"].append(cfg)
            cols["status"].append(strings(status))
            cols["agg"].append(a)
            for k, v in zip(ROW_COLUMNS, values, strict=True):
                cols[k].append(v)
            firsts.append(bool(first))
            statuses.append(status)
            if error:
                errors[str(i)] = error
            if reason:
                reasons[str(i)] = reason
            if reference:
                references[reference] = None
    agg = aggregate(cols, members, keys, firsts, statuses)
    config_list = list(configs)
    config_cols: dict[str, list[Any]] = {k: [] for k in CONFIG_COLUMNS}
    for config in config_list:
        for k, v in zip(CONFIG_COLUMNS, config, strict=True):
            config_cols[k].append(strings(v) if k in ("model", "dataset", "method", "kind", "params", "backend") else v)
    member, figures = _figures(agg, config_list, strings)
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
    several = _several(agg, members)
    for k in (*LANGUAGE_COLUMNS, *TASK_COLUMNS):  # a suite without them carries none of their (null) columns
        if all(v is None for v in cols[k]):
            del cols[k]
            several.pop(k, None)
    return {
        "columns": page_columns(),
        "strings": strings.items,
        "machines": [{"id": m, "label": machines[m]["label"], "short": machines[m]["short"],
                      "colour": machines[m]["colour"]} for m in machine_ids],
        "runs": run_cols, "envs": envs, "configs": config_cols, "rows": cols, "nAgg": len(members),
        "agg": several, "ranges": agg.ranges, "member": member, "errors": errors, "reasons": reasons, "figures": figures,
        "reference": list(references),
    }
