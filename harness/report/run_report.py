"""HTML report for one run: header, sortable leaderboard, accuracy-vs-latency figures.

The page is a single file that opens offline from disk: plotly.js is inlined once and
nothing is fetched from anywhere (``optbench publish --plotly cdn`` alone asks for plotly's
CDN instead). Model names, params, errors and environment strings
come from suites and plugins we do not control, so every one of them is HTML-escaped,
and JSON embedded in ``<script>`` is made unable to close its tag.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from harness.report.language_figures import is_language_record, language_section
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
from harness.results.records import STATUSES, fill_relative_figures, read_records

REPORT_FILE = "report.html"
ERROR_CHARS = 80
P = TypeVar("P", bound=tuple)


def _fmt_bytes(n: float) -> str:
    """Human-readable size (binary units); the raw number stays in data-sort for sorting."""
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


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


# --- leaderboard --------------------------------------------------------------------

Cell = tuple[str, Any, str]  # (inner HTML, raw sort value or None, extra CSS class)


def _number(key: str, fmt: Callable[[float], str] = fmt_float, worse_below: float | None = None
            ) -> Callable[[dict], Cell]:
    """A numeric column: formatted text, raw value to sort by, red when worse than baseline."""
    def cell(r: dict) -> Cell:
        v = finite(r.get(key))
        if v is None:
            return NULL, None, "null"
        cls = "worse" if worse_below is not None and v < worse_below - 1e-9 else ""
        return esc(fmt(v)), v, cls
    return cell


def _text(get: Callable[[dict], Any]) -> Callable[[dict], Cell]:
    """A text column; empty text becomes "—" and sorts last like a missing number."""
    def cell(r: dict) -> Cell:
        s = get(r)
        s = "" if s is None else str(s)
        return (esc(s), s, "") if s else (NULL, None, "null")
    return cell


def _status(r: dict) -> Cell:
    s = str(r.get("status") or "")
    cls = s if s in STATUSES else "other"  # untrusted text never goes into a class name
    return f'<span class="pill st-{cls}">{esc(s or "?")}</span>', s or None, ""


def _timing(r: dict) -> Cell:
    """The timing's flags: noisy (IQR over 10% of the median), contended (other processes took the
    CPU while it was measured, even after re-measuring; left out of the Pareto fronts), imprecise
    (the precision target was not reached within max_seconds)."""
    flags = []
    if r.get("noisy"):
        flags.append('<span class="noisy" title="timing spread (IQR) is large for its median">noisy</span>')
    if r.get("contended"):
        why = str(r.get("contended_reason") or "other processes used the CPU while it was timed")
        flags.append(f'<span class="contended" title="{esc(why)}">contended</span>')
    if r.get("precision_reached") is False:
        flags.append('<span class="imprecise" title="the 95% interval did not reach measure.repeat.target_rel_ci '
                     'within max_seconds">imprecise</span>')
    if not flags and r.get("noisy") is None and r.get("contended") is None:
        return NULL, None, "null"
    return " ".join(flags), len(flags), ""


def _speedup(r: dict) -> Cell:
    """The speedup, with its 95% interval where it was timed paired with the baseline."""
    v = finite(r.get("speedup"))
    if v is None:
        return NULL, None, "null"
    lo, hi = finite(r.get("speedup_ci_low")), finite(r.get("speedup_ci_high"))
    text = f"{v:.2f}×"
    if lo is not None and hi is not None and r.get("method") != "baseline":
        text += f' <span class="ci" title="95% interval from paired blocks">[{lo:.2f}, {hi:.2f}]</span>'
    return text, v, "worse" if v < 1.0 - 1e-9 else ""


def _reference_speedup(r: dict) -> Cell:
    """Against the reference backend's baseline (same model, dataset, batch): one scale for every backend."""
    v = finite(r.get("reference_speedup"))
    if v is None:
        return NULL, None, "null"
    ref = esc(str(r.get("reference_backend") or "the reference backend"))
    title = f"{ref}'s baseline p50 / this p50; across backends a ratio of medians from different processes (no interval)"
    return f'<span title="{title}">{v:.2f}×</span>', v, "worse" if v < 1.0 - 1e-9 else ""


def _backend(r: dict) -> Cell:
    """The backend with its params, and the precision a runtime ran in when it is not fp32."""
    label = variant_label(r, "backend")
    precision = r.get("runtime_precision")
    if precision and precision != "f32":
        ops = r.get("precision_ops")
        title = f' title="ran in {esc(str(precision))}' + (f": {esc(str(ops))} nodes" if ops else "") + '"'
        return f'{esc(label)} <span class="precision"{title}>· {esc(str(precision))}</span>', label, ""
    return esc(label), label, ""


def _error(r: dict) -> Cell:
    e = r.get("error")
    if not e:
        return NULL, None, "null"
    e = str(e)
    short = e if len(e) <= ERROR_CHARS else e[: ERROR_CHARS - 1] + "…"
    return f'<span title="{esc(e)}">{esc(short)}</span>', e, "err"


def _gate(r: dict) -> Cell:
    g = r.get("passes_gate")
    if g is None:
        return NULL, None, "null"
    if g:
        return '<span class="gate-pass">pass</span>', 1, ""
    return '<span class="gate-fail" title="below the suite\'s accuracy_gate (accuracy, agreement or cosine)">fail</span>', 0, "worse"


def _nonzero(r: dict) -> Cell:
    nz, total = finite(r.get("nonzero_params")), finite(r.get("params_count"))
    if nz is None:
        return NULL, None, "null"
    if total:
        return f'<span title="of {total:,.0f} params ({nz / total:.1%})">{nz:,.0f}</span>', nz, ""
    return f"{nz:,.0f}", nz, ""


COLUMNS: list[tuple[str, bool, Callable[[dict], Cell]]] = [
    ("model", False, _text(lambda r: r.get("model"))),
    ("dataset", False, _text(lambda r: r.get("dataset"))),
    ("method", False, _text(lambda r: r.get("method"))),
    ("kind", False, _text(lambda r: r.get("method_kind"))),
    ("params", False, _text(lambda r: fmt_params(r.get("params")))),
    ("backend", False, _backend),
    ("batch", True, _number("batch_size", lambda v: f"{v:g}")),
    ("prompt", True, _number("prompt_tokens", lambda v: f"{v:g}")),
    ("status", False, _status),
    ("p50 ms", True, _number("latency_p50_ms")),
    ("p99 ms", True, _number("latency_p99_ms")),
    ("IQR ms", True, _number("latency_iqr_ms")),
    ("timing", True, _timing),
    ("throughput/s", True, _number("throughput_per_s", lambda v: f"{v:,.1f}")),
    ("accuracy", True, _number("accuracy", lambda v: f"{v:.4f}")),
    ("Δ accuracy", True, _number("accuracy_delta", lambda v: f"{v:+.4f}", worse_below=0.0)),
    ("top-5", True, _number("top5_accuracy", lambda v: f"{v:.4f}")),
    ("agreement", True, _number("agreement", lambda v: f"{v:.4f}", worse_below=1.0)),
    ("cosine", True, _number("cosine", lambda v: f"{v:.4f}", worse_below=1.0)),
    ("KL", True, _number("kl_div", lambda v: f"{v:.3g}")),
    ("perplexity", True, _number("perplexity", lambda v: f"{v:.4g}")),
    ("TTFT ms", True, _number("ttft_p50_ms")),
    ("TPOT ms", True, _number("tpot_p50_ms")),
    ("decode tok/s", True, _number("decode_tokens_per_s", lambda v: f"{v:,.0f}")),
    ("KV cache MB", True, _number("kv_cache_mb", lambda v: f"{v:.3g}")),
    ("speedup (×) [95% CI]", True, _speedup),
    ("vs reference (×)", True, _reference_speedup),
    ("theoretical (×)", True, _number("theoretical_speedup", lambda v: f"{v:.2f}×")),
    ("gate", True, _gate),
    ("size ratio (×)", True, _number("size_ratio", lambda v: f"{v:.2f}×", worse_below=1.0)),
    ("model bytes", True, _number("model_bytes", _fmt_bytes)),
    ("nonzero params", True, _nonzero),
    ("error", False, _error),
]


#: Columns shown only when the run has a language model's records.
LANGUAGE_COLUMNS = ("prompt", "perplexity", "TTFT ms", "TPOT ms", "decode tok/s", "KV cache MB")


def row_order(r: dict) -> tuple:
    """Group rows the way they are compared: per model/dataset/backend/batch, baseline first."""
    b = finite(r.get("batch_size"))
    return (str(r.get("model")), variant_label(r, "dataset"), variant_label(r, "backend"), b is None, b or 0,
            finite(r.get("prompt_tokens")) or 0, r.get("method") != "baseline", str(r.get("method")), fmt_params(r.get("params")))


def _table(records: list[dict]) -> str:
    if not records:
        return '<p class="empty">No records: this run has not finished any cell yet.</p>'
    # against the reference backend: a column only where the run has more than one backend to rank
    several = len({variant_label(r, "backend") for r in records}) > 1
    columns = [c for c in COLUMNS if several or c[2] is not _reference_speedup]
    if not any(is_language_record(r) for r in records):  # the language-model columns only where they mean something
        columns = [c for c in columns if c[0] not in LANGUAGE_COLUMNS]
    head = "".join(
        f'<th tabindex="0" data-type="{"num" if numeric else "text"}">{esc(label)}'
        f'<span class="arrow"></span></th>' for label, numeric, _ in columns)
    rows = []
    for r in sorted(records, key=row_order):
        classes = [c for c, on in (("baseline", r.get("method") == "baseline"),
                                   ("not-ok", r.get("status") != "ok"),
                                   ("is-noisy", bool(r.get("noisy"))),
                                   ("is-contended", bool(r.get("contended")))) if on]
        tds = []
        for _, numeric, fn in columns:
            inner, raw, cls = fn(r)
            cls = f"{cls} num".strip() if numeric else cls
            sort = "" if raw is None else (repr(raw) if isinstance(raw, float) else str(raw))
            attr = f' class="{cls}"' if cls else ""
            tds.append(f'<td{attr} data-sort="{esc(sort)}">{inner}</td>')
        attr = f' class="{" ".join(classes)}"' if classes else ""
        rows.append(f'<tr{attr}>{"".join(tds)}</tr>')
    return (f'<div class="scroll"><table id="leaderboard"><thead><tr>{head}</tr></thead>'
            f'<tbody>\n{chr(10).join(rows)}\n</tbody></table></div>')


# --- figures ------------------------------------------------------------------------

def _figure_json(points: list[tuple[float, float, dict]]) -> str:
    """Plotly figure JSON: one trace per batch size plus its Pareto front as a step line.

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
                 + esc(f" · batch {batch} · p50 {fmt_float(x)} ms · acc {y:.4f}")
                 + (" · contended: not on the front" if r.get("contended") else "") for x, y, r in pts]
        traces.append({
            "type": "scatter", "x": [p[0] for p in pts], "y": [p[1] for p in pts], "mode": "markers",
            "name": group, "legendgroup": group, "text": hover, "hoverinfo": "text", "marker": {
                "color": colour, "size": 10,
                "symbol": ["star" if r.get("method") == "baseline" else "x" if r.get("contended") else "circle"
                           for _, _, r in pts]}})
        front = pareto_front([p for p in pts if not p[2].get("contended")])
        traces.append({"type": "scatter", "x": [p[0] for p in front], "y": [p[1] for p in front], "mode": "lines",
                       "line": {"shape": "hv", "dash": "dash", "color": colour}, "name": f"{group} Pareto front",
                       "legendgroup": group, "hoverinfo": "skip"})
    return figure_json(traces, {
        "height": 420, "margin": {"l": 60, "r": 20, "t": 20, "b": 50},
        "xaxis": {"type": "log", "title": {"text": "p50 latency per call (ms, log scale)"}},
        "yaxis": {"title": {"text": "top-1 accuracy (test split)"}}})


def _caption(model: str, dataset: str, backend: str) -> str:
    """Say what was measured and how, so a figure read on its own is not misread."""
    return (f'<p class="caption">Each point is one method (hover for its params) applied to {esc(model)} '
            f'on {esc(dataset)}. x is the p50 (median) latency of the timed calls at that batch size on '
            f'the {esc(backend)} backend; y is top-1 accuracy on the held-out test split after the method '
            f'was applied. Stars are the baseline. The dashed step line is the Pareto front of each batch '
            f'size: a point is on it when no other point of that batch size is at least as fast and as '
            f'accurate and strictly better in one. Only records with status ok and both figures are shown; '
            f'a cross is a record timed under contention (other processes took the CPU), which is left out '
            f'of the front.</p>')


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
        timed = [r for r in rs if r.get("status") == "ok" and (finite(r.get("latency_p50_ms")) or 0) > 0]
        points = [(finite(r["latency_p50_ms"]), finite(r.get("accuracy")), r) for r in timed
                  if finite(r.get("accuracy")) is not None]
        if not points:
            why = ("no record of it finished with status ok and a latency" if not timed else
                   "its records have no accuracy (the dataset has no meaningful labels, "
                   "e.g. synthetic data)")
            parts.append(f'{title}<p class="skip">No accuracy-vs-latency figure: {why}.</p>')
            continue
        figure = script_json(_figure_json(points))
        parts.append(f'{title}<div class="plot" id="plot-{n}"></div>'
                     f'<script type="application/json" data-figure="plot-{n}">{figure}</script>'
                     f'{_caption(model, dataset, backend)}')
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
<h2>Accuracy vs latency</h2>
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
