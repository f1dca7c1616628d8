"""HTML report for one run: header, sortable leaderboard, quality-vs-latency figures (accuracy, or the task's metric).

The page is a single file that opens offline from disk: plotly.js is inlined once and
nothing is fetched from anywhere (``optbench publish --plotly cdn`` alone asks for plotly's
CDN instead). Model names, params, errors and environment strings
come from suites and plugins we do not control, so every one of them is HTML-escaped,
and JSON embedded in ``<script>`` is made unable to close its tag.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from harness.record.status import BASELINE, STATUSES, Status
from harness.report.language_figures import language_section
from harness.report.markup import (
    CSS,
    FIGURES_JS,
    content_security_policy,
    esc,
    figure_json,
    plotly_script,
    script_json,
    write_atomic,
)
from harness.report.training import load_curves, training_section
from harness.results.labels import NULL, finite, fmt_float, fmt_params, variant_label
from harness.results.load import read_json
from harness.results.records import fill_relative_figures, read_records
from harness.results.table_spec import (
    BETTER,
    CAVEAT,
    FAULT,
    REPORT,
    WORSE,
    Column,
    Shown,
    columns,
    known_status,
    other_metric,
)

REPORT_FILE = "report.html"
P = TypeVar("P", bound=tuple)


def pareto_front(points: Iterable[P]) -> list[P]:
    """Points (latency, accuracy, ...) that no other point beats on both; sorted by latency.

    A point is dominated when another has latency <= and accuracy >= with at least one
    strict; equal points do not dominate each other. One sort and one sweep, since a
    leaderboard figure can hold thousands of points. Extra tuple items ride along (they
    are never compared), so callers can attach the record.
    """
    ordered = sorted(points, key=lambda p: (p[0], -p[1]))
    front: list[P] = []
    best_before = -math.inf  # highest accuracy among points strictly faster than the current group
    i = 0
    while i < len(ordered):
        j = i
        while j < len(ordered) and ordered[j][0] == ordered[i][0]:
            j += 1
        top = ordered[i][1]  # the group's highest accuracy comes first
        front += [p for p in ordered[i:j] if p[1] == top and top > best_before]
        best_before = max(best_before, top)
        i = j
    return front


# --- leaderboard ---------------------------------------------------------------------

#: A tone of the table spec as a class of the report's stylesheet.
TONE_CLASS = {WORSE: "worse", BETTER: "", CAVEAT: "", FAULT: "err"}


def _inner(column: Column, shown: Shown) -> str:
    """A cell's HTML from the table spec's ``Shown``: record text escaped, the column's own markup around it."""
    if shown.null:
        return NULL
    text = esc(shown.text)
    if column.kind == "status":
        return f'<span class="pill st-{known_status(shown.text)}">{text}</span>'
    if column.kind == "flags":
        return " ".join(f'<span class="{esc(word)}" title="{esc(title)}">{esc(word)}</span>'
                        for word, _, title in shown.pieces)
    if column.kind == "gate":
        if shown.tone == WORSE:
            return f'<span class="gate-fail" title="{esc(shown.title)}">fail</span>'
        return '<span class="gate-pass">pass</span>'
    if column.kind == "backend" and shown.detail:
        return f'{text} <span class="precision" title="{esc(shown.title)}">· {esc(shown.detail)}</span>'
    if shown.detail:  # a speedup's interval
        return f'{text} <span class="ci" title="{esc(shown.title)}">{esc(shown.detail)}</span>'
    if shown.title:
        return f'<span title="{esc(shown.title)}">{text}</span>'
    return text


def _td(column: Column, shown: Shown) -> str:
    classes = ["null"] if shown.null else [TONE_CLASS.get(shown.tone, "")]
    if column.numeric:
        classes.append("num")
    cls = " ".join(c for c in classes if c)
    sort = "" if shown.sort is None else (repr(shown.sort) if isinstance(shown.sort, float) else str(shown.sort))
    return f'<td{f" class={chr(34)}{cls}{chr(34)}" if cls else ""} data-sort="{esc(sort)}">{_inner(column, shown)}</td>'


def row_order(r: dict) -> tuple:
    """Group rows the way they are compared: per model/dataset/backend/batch, baseline first."""
    b = finite(r.get("batch_size"))
    return (str(r.get("model")), variant_label(r, "dataset"), variant_label(r, "backend"), b is None, b or 0,
            finite(r.get("prompt_tokens")) or 0, r.get("method") != BASELINE, str(r.get("method")),
            fmt_params(r.get("params")))


def _table(records: list[dict]) -> str:
    if not records:
        return '<p class="empty">No records: this run has not finished any cell yet.</p>'
    cols = columns(REPORT, records)
    head = "".join(
        f'<th tabindex="0" data-type="{"num" if c.numeric else "text"}"'
        + (f' title="{esc(c.title)}"' if c.title else "")
        + f'>{esc(c.label_in(REPORT))}<span class="arrow"></span></th>' for c in cols)
    rows = []
    for r in sorted(records, key=row_order):
        classes = [c for c, on in (("baseline", r.get("method") == BASELINE),
                                   ("not-ok", r.get("status") != Status.OK),
                                   ("is-noisy", bool(r.get("noisy"))),
                                   ("is-contended", bool(r.get("contended")))) if on]
        attr = f' class="{" ".join(classes)}"' if classes else ""
        rows.append(f'<tr{attr}>{"".join(_td(c, c.show(r)) for c in cols)}</tr>')
    return (f'<div class="scroll"><table id="leaderboard"><thead><tr>{head}</tr></thead>'
            f'<tbody>\n{chr(10).join(rows)}\n</tbody></table></div>')


# --- figures ------------------------------------------------------------------------

def _y_axis(metric: str | None, lower: bool) -> str:
    """What a quality figure's y is: top-1 accuracy, or the cell's metric and its direction."""
    if metric is None:
        return "top-1 accuracy (test split)"
    return f"{metric} (test split; {'lower' if lower else 'higher'} is better)"


def _figure_json(points: list[tuple[float, float, dict]], metric: str | None = None, lower: bool = False) -> str:
    """Plotly figure JSON: one trace per batch size plus its Pareto front as a step line (for a metric where
    lower is better, the front of the lowest).

    Batch sizes get their own front because latency is per call, so a larger batch is
    slower by construction and comparing across batch sizes would be meaningless.
    """
    from plotly.colors import qualitative

    traces: list[dict[str, Any]] = []
    batches = sorted({p[2].get("batch_size") for p in points},
                     key=lambda b: (finite(b) is None, finite(b) or 0, str(b)))
    for i, batch in enumerate(batches):
        pts = [p for p in points if p[2].get("batch_size") == batch]
        colour = qualitative.Plotly[i % len(qualitative.Plotly)]
        group = esc(f"batch {batch}")
        hover = [esc(f"{r.get('method')} {fmt_params(r.get('params'))}".strip())
                 + esc(f" · batch {batch} · p50 {fmt_float(x)} ms · {metric or 'acc'} {y:.4g}")
                 + (" · contended: not on the front" if r.get("contended") else "") for x, y, r in pts]
        traces.append({
            "type": "scatter", "x": [p[0] for p in pts], "y": [p[1] for p in pts], "mode": "markers",
            "name": group, "legendgroup": group, "text": hover, "hoverinfo": "text", "marker": {
                "color": colour, "size": 10,
                "symbol": ["star" if r.get("method") == BASELINE else "x" if r.get("contended") else "circle"
                           for _, _, r in pts]}})
        sign = -1 if lower else 1
        front = [(x, sign * y, r) for x, y, r in
                 pareto_front([(x, sign * y, r) for x, y, r in pts if not r.get("contended")])]
        traces.append({"type": "scatter", "x": [p[0] for p in front], "y": [p[1] for p in front], "mode": "lines",
                       "line": {"shape": "hv", "dash": "dash", "color": colour}, "name": f"{group} Pareto front",
                       "legendgroup": group, "hoverinfo": "skip"})
    return figure_json(traces, {
        "height": 420, "margin": {"l": 60, "r": 20, "t": 20, "b": 50},
        "xaxis": {"type": "log", "title": {"text": "p50 latency per call (ms, log scale)"}},
        "yaxis": {"title": {"text": _y_axis(metric, lower)}}})


def _caption(model: str, dataset: str, backend: str, metric: str | None = None, lower: bool = False) -> str:
    """Say what was measured and how, so a figure read on its own is not misread."""
    y = "top-1 accuracy" if metric is None else f"{esc(metric)} ({'lower' if lower else 'higher'} is better)"
    return (f'<p class="caption">Each point is one method (hover for its params) applied to {esc(model)} '
            f'on {esc(dataset)}. x is the p50 (median) latency of the timed calls at that batch size on '
            f'the {esc(backend)} backend; y is {y} on the held-out test split after the method '
            f'was applied. Stars are the baseline. The dashed step line is the Pareto front of each batch '
            f'size: a point is on it when no other point of that batch size is at least as fast and as '
            f'good and strictly better in one. Only records with status ok and both figures are shown; '
            f'a cross is a record timed under contention (other processes took the CPU), which is left out '
            f'of the front.</p>')


def _quality_of(r: dict, metric: str | None) -> float | None:
    """A record's y in the quality figure: its accuracy, or its score of ``metric``."""
    if metric is None:
        return finite(r.get("accuracy"))
    return finite(r.get("quality")) if r.get("quality_metric") == metric else None


def _figures(records: list[dict]) -> tuple[str, int]:
    """One section per (model, dataset, backend); returns HTML and the number of figures."""
    if not records:
        return '<p class="empty">No records, so no figures.</p>', 0
    groups: dict[tuple[str, str, str], list[dict]] = {}
    variants: dict[str, set[str]] = {}
    for r in records:
        variants.setdefault(str(r.get("dataset")), set()).add(variant_label(r, "dataset"))

    def dataset(r: dict) -> str:  # name alone unless one suite used the dataset with several params
        return variant_label(r, "dataset") if len(variants[str(r.get("dataset"))]) > 1 else str(r.get("dataset"))

    for r in sorted(records, key=row_order):
        groups.setdefault((str(r.get("model")), dataset(r), variant_label(r, "backend")), []).append(r)
    parts, n = [], 0
    for (model, dataset, backend), rs in groups.items():
        title = f'<h3>{esc(model)} · {esc(dataset)} · {esc(backend)}</h3>'
        timed = [r for r in rs if r.get("status") == Status.OK and (finite(r.get("latency_p50_ms")) or 0) > 0]
        # y: the records' quality metric (accuracy for a classifier); a group scored by another metric too
        # (a suite that changed its metrics between runs) is drawn by its first record's
        metric = next((str(r["quality_metric"]) for r in timed if other_metric(r)), None)
        lower = any(r.get("quality_higher_is_better") is False for r in timed if r.get("quality_metric") == metric)
        points = [(finite(r["latency_p50_ms"]), y, r) for r in timed
                  if (y := _quality_of(r, metric)) is not None]
        if not points:
            why = ("no record of it finished with status ok and a latency" if not timed else
                   "its records have no quality figure (the dataset has no meaningful labels, "
                   "e.g. synthetic data)")
            parts.append(f'{title}<p class="skip">No quality-vs-latency figure: {why}.</p>')
            continue
        figure = script_json(_figure_json(points, metric, lower))
        parts.append(f'{title}<div class="plot" id="plot-{n}"></div>'
                     f'<script type="application/json" data-figure="plot-{n}">{figure}</script>'
                     f'{_caption(model, dataset, backend, metric, lower)}')
        n += 1
    return "\n".join(parts), n


# --- page ---------------------------------------------------------------------------

def _names(records: list[dict], run: dict) -> tuple[Any, Any]:
    """Suite and run id from run.json, else from the records (run.json may be missing)."""
    def first(key: str) -> Any:
        return run.get(key) or next((r.get(key) for r in records if r.get(key)), None)
    return first("suite"), first("run_id")


def _header(records: list[dict], run: dict, env: dict) -> str:
    suite, run_id = _names(records, run)
    counts, unit = run.get("status_counts"), "cells"
    if not isinstance(counts, dict):  # older or missing run.json: count the records instead
        counts, unit = Counter(str(r.get("status")) for r in records), "records"
    keys = list(STATUSES) + sorted(str(k) for k in counts if k not in STATUSES)
    pills = " ".join(
        f'<span class="pill st-{k if k in STATUSES else "other"}">{esc(k)} {esc(counts.get(k, 0))}</span>'
        for k in keys)
    machine = [env.get("cpu_model"), f"{env['cores']} cores" if env.get("cores") else None,
               env.get("gpu"), f"torch {env['torch']}" if env.get("torch") else None,
               f"Python {env['python']}" if env.get("python") else None, env.get("platform")]
    facts = [("run", run_id), ("started", run.get("started_at")), ("finished", run.get("finished_at"))]
    return (f'<h1>optbench report: {esc(suite or "unnamed suite")}</h1>'
            f'<p class="meta">{" · ".join(f"{k} <b>{esc(v)}</b>" for k, v in facts if v)}</p>'
            f'<p class="meta">{unit}: {pills}</p>'
            f'<p class="meta">machine: {esc(" · ".join(str(m) for m in machine if m) or "unknown")}</p>')


SORT_JS = """
document.querySelectorAll("#leaderboard th").forEach(function (th, col) {
  function sortBy() {
    var table = th.closest("table"), body = table.tBodies[0], num = th.dataset.type === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); h.lastChild.textContent = ""; });
    th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    th.lastChild.textContent = dir > 0 ? "\\u25B2" : "\\u25BC";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
      if (x === "" || y === "") { return (x === "") - (y === ""); }  // nulls last either way
      var c = num ? parseFloat(x) - parseFloat(y) : x.localeCompare(y, undefined, {numeric: true});
      return dir * c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  th.addEventListener("click", sortBy);
  th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortBy(); } });
});
"""


def render_report(records: list[dict], meta: dict, curves: dict[str, Any] | None = None,
                  plotly: str = "inline") -> str:
    """The whole page as one string; ``meta`` holds ``run`` (run.json) and ``env`` (env.json),
    ``curves`` the training cells' curve.json by cell id (for the training section);
    ``plotly`` is "inline" (default: the page works offline) or "cdn".

    Records are expected to have their relative figures filled already (write_report
    does that), so the page shows exactly what is in the data.
    """
    run = meta.get("run") if isinstance(meta.get("run"), dict) else {}
    env = meta.get("env") if isinstance(meta.get("env"), dict) else {}

    figures, n_figs = _figures(records)
    training, n_training = training_section(records, curves or {}, n_figs)
    n_figs += n_training
    language, n_language = language_section(records, n_figs)
    n_figs += n_language
    plotly_js = plotly_script(plotly) if n_figs else ""
    suite, run_id = _names(records, run)
    title = f"optbench · {suite or 'unnamed suite'} · {run_id or ''}"
    page_js = f"{SORT_JS}{FIGURES_JS}drawJsonFigures();"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
{content_security_policy([page_js], plotly=plotly if n_figs else None)}
<link rel="icon" href="data:,"><title>{esc(title)}</title><style>{CSS}</style>{plotly_js}</head>
<body>
{_header(records, run, env)}
<h2>Leaderboard</h2>
<p class="note">One row per record (model × dataset × method × params × backend × batch size). Speedup and size
ratio are the baseline's p50 latency and model bytes divided by this row's, at the same model, dataset, backend
and batch size: above 1× is faster / smaller, <span class="worse-text">red</span> is worse than the baseline.
Agreement, cosine and KL compare this row's outputs with the baseline's on the same test inputs (no labels
needed): the share of equal top-1 predictions, the mean cosine similarity of the outputs, the mean KL divergence
of the baseline's softmax from this row's. Baseline rows are shaded. Click a column header to sort; empty values
(—) always sort last.</p>
{_table(records)}
<h2>Quality vs latency</h2>
{figures}
{training}
{language}
<script>{page_js}</script>
</body></html>
"""


def render_run_report(run_dir: Path, plotly: str = "inline") -> str:
    """The report page of a run directory (records, run.json, env.json, curves), as a string."""

    run_dir = Path(run_dir)
    records = fill_relative_figures(read_records(run_dir))
    meta = {"run": read_json(run_dir / "run.json"), "env": read_json(run_dir / "env.json")}
    return render_report(records, meta, load_curves(run_dir, records), plotly)


def write_report(run_dir: Path) -> Path:
    """Write ``report.html`` into the run directory atomically and return its path.

    Atomic (temp file in the same directory, then os.replace) so a browser or a
    publisher never sees a half-written page while a run is re-reported.
    """
    run_dir = Path(run_dir)
    return write_atomic(run_dir / REPORT_FILE, render_run_report(run_dir))
