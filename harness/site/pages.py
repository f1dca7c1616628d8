"""The HTML of the leaderboard site (``optbench publish``): the index of every suite, run and
machine (``index_page``) and one page per suite (``suite_page``), from the data of
``harness.site.data``. Every string from a suite, a plugin or a record is escaped here.
"""
from __future__ import annotations

import base64
import gzip
import json
import re
from collections import Counter
from importlib import resources
from typing import Any

from harness.record.status import STATUSES
from harness.report.markup import CSS, FIGURES_JS, content_security_policy, esc, plotly_script, script_json
from harness.report.run_report import REPORT_FILE
from harness.results.labels import NULL
from harness.results.load import gpu_names
from harness.results.records import fill_relative_figures, read_records
from harness.site.data import suite_data
from harness.site.runs import Run

# --- pages ----------------------------------------------------------------------------------

#: How every figure of a suite page treats contended rows (the end of each caption).
CONTENDED_NOTE = ("a row whose every run was contended (other processes used the CPU while it was timed) is left "
                  "out, and of the fronts, unless “show contended rows” above the table is ticked (then it "
                  "is drawn as an x).")

def _asset(name: str) -> str:
    return resources.files("harness.site").joinpath("assets", name).read_text(encoding="utf-8")


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


def _page(title: str, body: str, scripts: tuple[str, ...] = (), plotly: str | None = None) -> str:
    """A page of the site: ``scripts`` are the texts of its inline scripts (the only ones its
    Content-Security-Policy lets run), ``plotly`` how it brings plotly.js, if it does."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
{content_security_policy(list(scripts), plotly=plotly)}
<link rel="icon" href="data:,"><title>{esc(title)}</title><style>{CSS}{_asset("site.css")}</style></head>
<body>
{body}
</body></html>
"""


def _status_pills(counts: dict) -> str:
    keys = [k for k in STATUSES if counts.get(k)] + sorted(str(k) for k in counts if k not in STATUSES and counts[k])
    return " ".join(f'<span class="pill st-{k if k in STATUSES else "other"}">{esc(k)} {esc(counts[k])}</span>'
                    for k in keys) or NULL


def _run_counts(run: Run) -> dict:
    counts = run.meta.get("status_counts")
    if isinstance(counts, dict):
        return counts
    return Counter(status for _, status, *_ in run.records)


def _machine_cell(machines: dict[str, dict], run: Run, prefix: str) -> str:
    m = machines[run.machine]
    env = (f' · <a href="{esc(prefix + run.href)}/env.json">env.json</a>'
           if (run.path / "env.json").is_file() else " · no env.json")
    return (f'<span class="chip" style="background:{m["colour"]}"></span>'
            f'<span title="{esc(m["label"])}">{esc(m["short"])}</span>{env}')


def _runs_table(runs: list[Run], machines: dict[str, dict], prefix: str, with_suite: bool) -> str:
    head = ["started", *(["suite"] if with_suite else []), "run", "machine", "records", "cells", "optbench",
            "suite commit"]
    out = []
    for run in runs:
        git = run.env.get("suite_git") if isinstance(run.env.get("suite_git"), dict) else {}
        commit = str(git.get("commit") or "")[:10] + ("+" if git.get("dirty") else "")
        suite = [f'<td><a href="{prefix}suites/{esc(run.href.split("/")[1])}.html">{esc(run.suite)}</a></td>'] \
            if with_suite else []
        cells = [f"<td>{esc(_when(run.started))}</td>", *suite,
                 f'<td><a class="run-link" href="{esc(prefix + run.href)}/{REPORT_FILE}">{esc(run.run_id)}</a></td>',
                 f"<td>{_machine_cell(machines, run, prefix)}</td>", f'<td class="num">{len(run.records)}</td>',
                 f"<td>{_status_pills(_run_counts(run))}</td>", f"<td>{esc(run.env.get('harness_version') or NULL)}</td>",
                 f'<td title="{esc(git.get("commit") or "")}">{esc(commit or NULL)}</td>']
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
        gpus = ", ".join(gpu_names(env)) or "none recorded"
        cores = f"{env.get('cores') or NULL} / {env.get('physical_cores') or NULL}"
        cells = [f'<span class="chip" style="background:{m["colour"]}"></span>{esc(m["short"])}', esc(mid),
                 esc(env.get("cpu_model") or NULL), esc(cores), esc(gpus), esc(env.get("torch") or NULL),
                 esc(env.get("python") or NULL), esc(env.get("platform") or NULL), str(counts[mid])]
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
        rows.append(f'<tr><td><a class="suite-link" href="suites/{slugs[suite]}.html">{esc(suite)}</a></td>'
                    f'<td class="num">{len(rs)}</td><td class="num">{sum(len(r.records) for r in rs)}</td>'
                    f'<td class="num">{n_machines}</td><td>{esc(_when(dates[0] if dates else None))}</td>'
                    f'<td>{esc(_when(dates[-1] if dates else None))}</td></tr>')
    n_machines = len({r.machine for r in runs})
    body = f"""<h1>optbench leaderboard</h1>
<p class="meta">{len(suites)} suite{"s" * (len(suites) != 1)} · {len(runs)} run{"s" * (len(runs) != 1)} ·
{sum(len(r.records) for r in runs)} records · {n_machines} machine{"s" * (n_machines != 1)} ·
published {esc(generated)} from <code>{esc(source)}</code></p>
<h2>Suites</h2>
<p class="note">Each suite page holds the leaderboard across its runs: one row per cell and machine, the median
of its clean runs with their range and the runs behind it, sortable and filterable, with the baseline-relative
figures, and the figures drawn from them.</p>
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


def _y_said(spec: dict) -> str:
    """What a quality figure's y is: top-1 accuracy, or the metric its cells are scored by."""
    metric = spec.get("metric")
    if metric is None:
        return "top-1 accuracy"
    return f"{esc(str(metric))} ({'lower' if spec.get('lower') else 'higher'} is better)"


def _caption_fal(spec: dict, machines: int) -> str:
    model, dataset, backend, batch = (esc(str(v)) for v in spec["key"])
    several = (f" Points from {machines} machines are shown: each machine has its own colour and its own front, and "
               "points of different machines are not ranked against each other." if machines > 1 else "")
    return (f"Each point is one row of the leaderboard: a method (hover for its params, runs and machine) applied "
            f"to {model} on {dataset} on one machine, at the median over its clean runs. x is the p50 "
            f"(median) latency per call of a run's timed calls "
            f"at batch size {batch} on the {backend} backend (log scale); y is {_y_said(spec)} on the "
            f"held-out test split after the method was applied. Stars are the baseline. The dashed step line is "
            f"the Pareto front: a point is on it when no other point of its machine is at least as fast and as "
            f"good and strictly better in one.{several} Rows with status ok and both figures only; "
            f"{CONTENDED_NOTE}")


def _caption_fsp(spec: dict, machines: int) -> str:
    batch = esc(str(spec["key"][3]))
    return (f"Measured speedup of each method over the baseline of its own run (same model, dataset, backend, "
            f"seed and batch size {batch}): the baseline's p50 latency divided by the method's; above 1× "
            f"(the dashed line) is faster. One marker per row of the leaderboard (a cell on one machine): the "
            f"median speedup over its clean runs. For a row of several runs the error bar is the range of their "
            f"speedups (the spread between runs); for a row of one run it is a 95% interval from the raw timed "
            f"samples of both: each median's distribution-free 97.5% interval (order statistics), combined as "
            f"baseline low / method high and baseline high / method low, which treats the samples of a run as "
            f"independent and so shows timing noise within that run only. A marker without a bar has neither. "
            f"The y axis is log scale; {CONTENDED_NOTE}"
            + (f" Runs from {machines} machines are shown side by side in their own colours, never pooled."
               if machines > 1 else ""))


def _caption_fre(spec: dict, machines: int) -> str:
    backend = esc(str(spec["key"][0]))
    return (f"x is the theoretical speedup (the baseline's FLOPs divided by the FLOPs of a kernel that skipped "
            f"every zero weight), y the measured speedup (baseline p50 latency / p50 latency, same run) on the "
            f"{backend} backend, both log scale; error bars as in the speedup figures. On the dashed "
            f"diagonal the saved arithmetic became time. A point under it is a method whose zeros do not turn "
            f"into time (dense kernels still multiply them); a point above it gained more than its FLOPs say "
            f"(e.g. less memory traffic). Colours are method kinds; each point is a cell on one machine, "
            f"relative to its own runs' baselines, so machines are not ranked against each other here; "
            f"{CONTENDED_NOTE}")


def _caption_fsa(spec: dict, machines: int) -> str:
    model, dataset = (esc(str(v)) for v in spec["key"])
    return (f"x is the model's size: the bytes of its checkpoint (serialized state_dict) after the method, or, "
            f"for a method that simulates a storage format, the bytes that format takes (log scale); y is "
            f"{_y_said(spec)} of {model} on the held-out test split of {dataset}. One point per cell and "
            f"machine, the median over its clean runs (batch size changes neither). Colours are method kinds; the "
            f"dashed line is the Pareto front (no other point is at least as small and as good and strictly "
            f"better in one). Neither figure depends on the machine's speed, so every machine is pooled here; "
            f"{CONTENDED_NOTE}")


def _caption_ffs(spec: dict, machines: int) -> str:
    backend = esc(str(spec["key"][0]))
    return (f"x is the measured speedup over the baseline of the same run (log scale) on the {backend} "
            f"backend; y is 1 − cosine: how far the method moved the model's outputs from the baseline's, as the "
            f"mean cosine distance of the two outputs on the same test inputs (log scale; lower is more faithful, "
            f"0.001 is a cosine of 0.999; values below 1e-9 are drawn at 1e-9). It needs no labels, so models "
            f"with random weights and embedding models are here too; hover for agreement (the share of equal "
            f"top-1 predictions, for classifiers). Colours are method kinds; points are relative to their own "
            f"runs' baselines, so machines are not ranked against each other here; {CONTENDED_NOTE}")


def _title_point(spec: dict) -> str:
    return " · ".join(str(v) for v in spec["key"][:3]) + f" · batch {spec['key'][3]}"


def _title_backend(spec: dict) -> str:
    return f"{spec['key'][0]}: every model and batch size"


#: The suite page's figures, in order: kind, heading anchor, heading, what an empty section says, a figure's
#: title and caption.
FIGURE_SECTIONS: tuple[tuple[str, str, str, str, Any, Any], ...] = (
    ("fal", "accuracy-latency", "Quality vs latency", "no record has status ok with both a latency and a quality "
     "figure (training cells are in the Training section)", _title_point, _caption_fal),
    ("fsp", "speedup", "Speedup per method", "no method other than the baseline has a measured speedup",
     _title_point, _caption_fsp),
    ("fre", "realized", "Realized vs theoretical speedup", "no method has both a measured and a theoretical speedup",
     _title_backend, _caption_fre),
    ("fsa", "size-accuracy", "Size vs quality", "no record has status ok with both a model size and a quality "
     "figure",
     lambda spec: " · ".join(str(v) for v in spec["key"]), _caption_fsa),
    ("ffs", "fidelity-speedup", "Fidelity vs speedup", "no method has both a measured speedup and a cosine "
     "similarity to its baseline's outputs", _title_backend, _caption_ffs),
)


def _figure_sections(data: dict[str, Any], training: bool) -> tuple[str, int]:
    """The figures' containers and captions (drawn in the browser from the page's data); none at
    all for a suite of training cells only, whose figures are in its Training section."""
    if training and not any(data["figures"].values()):
        return "", 0
    machines = len(data["machines"])
    parts, count = [], 0
    for kind, anchor, heading, empty, title, caption in FIGURE_SECTIONS:
        parts.append(f'<h2 id="{anchor}">{heading}</h2>')
        specs = data["figures"][kind]
        if not specs:
            parts.append(f'<p class="skip">No figure: {empty}.</p>')  # the harness's own text
        for spec in specs:
            parts.append(f'<h3>{esc(title(spec))}</h3><div class="plot" id="fig-{kind}-{spec["id"]}" '
                         f'data-kind="{kind}" data-id="{spec["id"]}"></div><p class="caption">'
                         f'{caption(spec, machines)}</p>')
            count += 1
    return "\n".join(parts), count


def _training_section(runs: list[Run], machines: dict[str, dict], first_plot: int) -> tuple[str, int]:
    """Per machine, the training problems of its latest run with training cells (older runs: their reports)."""
    from harness.report.training import TRAINING_NOTE, load_curves, training_problems

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
        records = fill_relative_figures(read_records(run.path, warn=False))  # process_run warned already
        html, count = training_problems(records, load_curves(run.path, records), n, level=4)
        if not count and not html:
            continue
        m = machines[mid]
        parts.append(f'<h3><span class="chip" style="background:{m["colour"]}"></span>{esc(m["short"])}: run '
                     f'<a href="../{esc(run.href)}/{REPORT_FILE}">{esc(run.run_id)}</a> '
                     f'({esc(_when(run.started))})</h3><p class="meta">{esc(m["label"])}</p>{html}')
        n += count
    return "\n".join(parts), n - first_plot


def _board_note(ref_named: str) -> str:
    """What the leaderboard's rows and figures are, said once above it."""
    return f"""<p class="note">One row per cell (model × dataset × method × params × backend × seed) and batch size on each
machine, over every run of the suite there. Its figures are the median over the runs whose measurement was clean
(status ok and not contended), with the range over them below a figure where they differ; the runs column says
how many runs there are and how many were left out (contended, failed), and its ▸ button lists the runs behind the
row, each with its own figures, its 95% speedup interval and a link to its report. A row whose every run was
contended (other processes used the CPU while it was timed, even after re-measuring) takes the median of those and
is marked <span class="contended">contended</span>: it is hidden, and left out of best under constraints and of the
figures' fronts, unless “show contended rows” is ticked. Speedup, theoretical speedup, size ratio and Δ accuracy are
relative to the baseline of the same run, model, dataset, backend, seed and batch size: above 1× is faster /
smaller, <span class="worse-text">red</span> is worse than the baseline. Vs reference is the reference backend's
baseline p50 (same run, model, dataset, seed and batch size) divided by the row's{ref_named}, so rows of different
backends rank on one scale: above 1× is faster than the reference baseline; across backends it is a ratio of medians
measured in different processes, with no interval. A backend whose runtime ran in a precision other than fp32 says
so (e.g. “openvino · bf16”). Rows that fail the suite's accuracy gate
or whose timing was noisy (IQR over 10% of the median) in a run behind them are marked. The machine button shows
the machine and software of the row's latest run. Click a column header to sort (empty values always sort
last).</p>"""


#: The "best under constraints" box: its form, and what the answer is.
BEST_FORM = """<details id="best" class="best" open><summary>Best under constraints</summary>
<form id="best-form" class="filters">
<label>maximise <select id="best-objective">
<option value="acc">quality (accuracy, or the rows' metric)</option><option value="p50">speed (lowest p50 latency)</option>
<option value="speedup">speedup</option><option value="ref">vs reference (speedup over the reference backend's
baseline)</option><option value="size">size ratio (smallest model)</option>
</select></label>
<label>p50 latency ≤ <input id="best-max-p50" type="number" min="0" step="any" placeholder="any"> ms</label>
<label>quality loss ≤ <input id="best-max-drop" type="number" min="0" step="any" placeholder="any"></label>
<label>speedup ≥ <input id="best-min-speedup" type="number" min="0" step="any" placeholder="any"> ×</label>
<label>agreement ≥ <input id="best-min-agreement" type="number" min="0" max="1" step="any" placeholder="any"></label>
<label>cosine ≥ <input id="best-min-cosine" type="number" min="-1" max="1" step="any" placeholder="any"></label>
<label><input id="best-gate" type="checkbox" checked> skip rows that fail the quality gate</label>
<label><input id="best-quiet" type="checkbox"> skip noisy rows</label>
</form>
<p class="note">Among the rows the filters above select, with status ok (contended ones only while they are
shown): the one that maximises the objective
within the bounds (ties: the faster, then the better quality). Quality is accuracy, or the metric the rows are
scored by (rmse, mIoU, ...: ranked in its own direction, and only among rows of one metric); quality loss is how
much worse than its baseline's the row's is (the accuracy drop, the rise of an error); agreement and cosine compare the row's outputs with its baseline's (no labels needed); a bound leaves
out rows without that figure. With several machines there is one answer per machine.</p>
<div id="best-result" aria-live="polite"></div>
</details>"""


def suite_page(suite: str, runs: list[Run], machines: dict[str, dict], plotly: str) -> tuple[str, dict[str, Any]]:
    """The suite's page and its data (returned for tests and the size budget)."""
    used = {m: machines[m] for m in dict.fromkeys(r.machine for r in runs)}
    data = suite_data(runs, used)
    training, n_training = _training_section(runs, used, 0)
    figures, n_figs = _figure_sections(data, n_training > 0)
    n_records = sum(len(r.records) for r in runs)
    n_rows = data["nAgg"]
    dates = sorted(str(r.started) for r in runs if r.started)
    span = f"{_when(dates[0])} to {_when(dates[-1])}" if dates else "dates unknown"
    mixed = (f'<p class="warn">These runs come from {len(used)} machines. Latency and speedup are only comparable '
             f'within one machine: figures keep one colour and one Pareto front per machine, and the table says when '
             f'the rows it ranks mix machines (filter by machine to rank within one).</p>' if len(used) > 1 else "")
    plotly_js = _plotly_tag(plotly) if n_figs + n_training else ""
    refs = data["reference"]
    ref_named = (f" (the reference backend here: {esc(refs[0])})" if len(refs) == 1 else
                 f" (the reference backends here, each run naming its own: {esc(', '.join(refs))})" if refs else "")
    page_js = FIGURES_JS + _asset("leaderboard.js")
    body = f"""<p class="crumbs"><a href="../index.html">← all suites</a></p>
<h1>optbench leaderboard: {esc(suite)}</h1>
<p class="meta">{len(runs)} run{"s" * (len(runs) != 1)} · {n_records} records · {n_rows}
leaderboard row{"s" * (n_rows != 1)} · {len(used)} machine{"s" * (len(used) != 1)} · {esc(span)}</p>
{mixed}
<h2 id="leaderboard-head">Leaderboard</h2>
{_board_note(ref_named)}
<noscript><p class="warn">The table, its filters and the figures need JavaScript.</p></noscript>
<div id="filters" class="filters"></div>
<p class="filters"><label><input id="show-contended" type="checkbox"> show contended rows</label>
<span id="contended-count" class="meta"></span></p>
<p id="machine-warning" class="warn" hidden></p>
{BEST_FORM}
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
<script type="application/json" id="board-data">{script_json(json.dumps(data, separators=(",", ":"),
                                                                         allow_nan=False))}</script>
{plotly_js}
<script>{page_js}</script>"""
    return _page(f"optbench leaderboard · {suite}", body, (page_js,), plotly if plotly_js else None), data
