"""HTML report for one run: header, sortable leaderboard, accuracy-vs-latency figures.

The page is a single file that opens offline from disk: plotly.js is inlined once and
nothing is fetched from anywhere (``optbench publish --plotly cdn`` alone asks for plotly's
CDN instead). Model names, params, errors and environment strings
come from suites and plugins we do not control, so every one of them is HTML-escaped,
and JSON embedded in ``<script>`` is made unable to close its tag.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from harness.records import STATUSES, fill_relative_figures, read_records

REPORT_FILE = "report.html"
NULL = "—"
ERROR_CHARS = 80
P = TypeVar("P", bound=tuple)


def _esc(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def _script_json(text: str) -> str:
    """Make a JSON text safe inside <script>: nothing in it can close the tag or start markup."""
    for raw, safe in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                      ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, safe)
    return text


def _num(value: Any) -> float | None:
    """A finite number or None, so a stray NaN/inf or a string never reaches the page as a figure."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _fmt_float(v: float) -> str:
    """Three or so significant digits, without switching to exponent notation for big values."""
    a = abs(v)
    return f"{v:,.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 1 else f"{v:.3f}"


def _fmt_bytes(n: float) -> str:
    """Human-readable size (binary units); the raw number stays in data-sort for sorting."""
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


def _fmt_params(params: Any) -> str:
    """Compact "k=v, k=v" so a row stays one line; non-scalar values keep their JSON form."""
    if params is None or params == {}:
        return ""
    if not isinstance(params, dict):
        return str(params)

    def val(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v, default=str)
    steps = params.get("steps")
    if isinstance(steps, list) and set(params) == {"steps"}:  # a pipeline: one "name(params)" per step
        return " > ".join(f"{s.get('name')}({_fmt_params(s.get('params'))})" for s in steps if isinstance(s, dict))
    return ", ".join(f"{k}={val(v)}" for k, v in params.items())


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


def _number(key: str, fmt: Callable[[float], str] = _fmt_float, worse_below: float | None = None
            ) -> Callable[[dict], Cell]:
    """A numeric column: formatted text, raw value to sort by, red when worse than baseline."""
    def cell(r: dict) -> Cell:
        v = _num(r.get(key))
        if v is None:
            return NULL, None, "null"
        cls = "worse" if worse_below is not None and v < worse_below - 1e-9 else ""
        return _esc(fmt(v)), v, cls
    return cell


def _text(get: Callable[[dict], Any]) -> Callable[[dict], Cell]:
    """A text column; empty text becomes "—" and sorts last like a missing number."""
    def cell(r: dict) -> Cell:
        s = get(r)
        s = "" if s is None else str(s)
        return (_esc(s), s, "") if s else (NULL, None, "null")
    return cell


def _status(r: dict) -> Cell:
    s = str(r.get("status") or "")
    cls = s if s in STATUSES else "other"  # untrusted text never goes into a class name
    return f'<span class="pill st-{cls}">{_esc(s or "?")}</span>', s or None, ""


def _noisy(r: dict) -> Cell:
    n = r.get("noisy")
    if n is None:
        return NULL, None, "null"
    if n:
        return '<span class="noisy" title="timing spread (IQR) is large for its median">noisy</span>', 1, ""
    return "", 0, ""


def _error(r: dict) -> Cell:
    e = r.get("error")
    if not e:
        return NULL, None, "null"
    e = str(e)
    short = e if len(e) <= ERROR_CHARS else e[: ERROR_CHARS - 1] + "…"
    return f'<span title="{_esc(e)}">{_esc(short)}</span>', e, "err"


def _gate(r: dict) -> Cell:
    g = r.get("passes_gate")
    if g is None:
        return NULL, None, "null"
    if g:
        return '<span class="gate-pass">pass</span>', 1, ""
    return '<span class="gate-fail" title="accuracy below the suite\'s accuracy_gate">fail</span>', 0, "worse"


def _nonzero(r: dict) -> Cell:
    nz, total = _num(r.get("nonzero_params")), _num(r.get("params_count"))
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
    ("params", False, _text(lambda r: _fmt_params(r.get("params")))),
    ("backend", False, _text(lambda r: _variant(r, "backend"))),
    ("batch", True, _number("batch_size", lambda v: f"{v:g}")),
    ("status", False, _status),
    ("p50 ms", True, _number("latency_p50_ms")),
    ("p99 ms", True, _number("latency_p99_ms")),
    ("IQR ms", True, _number("latency_iqr_ms")),
    ("noisy", True, _noisy),
    ("throughput/s", True, _number("throughput_per_s", lambda v: f"{v:,.1f}")),
    ("accuracy", True, _number("accuracy", lambda v: f"{v:.4f}")),
    ("Δ accuracy", True, _number("accuracy_delta", lambda v: f"{v:+.4f}", worse_below=0.0)),
    ("speedup (×)", True, _number("speedup", lambda v: f"{v:.2f}×", worse_below=1.0)),
    ("theoretical (×)", True, _number("theoretical_speedup", lambda v: f"{v:.2f}×")),
    ("gate", True, _gate),
    ("size ratio (×)", True, _number("size_ratio", lambda v: f"{v:.2f}×", worse_below=1.0)),
    ("model bytes", True, _number("model_bytes", _fmt_bytes)),
    ("nonzero params", True, _nonzero),
    ("error", False, _error),
]


def _variant(r: dict, key: str) -> str:
    """A dataset or backend named with its non-null params, so variants stay apart."""
    params = {k: v for k, v in (r.get(f"{key}_params") or {}).items() if v is not None}
    name = str(r.get(key))
    return f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})" if params else name


def _row_order(r: dict) -> tuple:
    """Group rows the way they are compared: per model/dataset/backend/batch, baseline first."""
    b = _num(r.get("batch_size"))
    return (str(r.get("model")), _variant(r, "dataset"), _variant(r, "backend"), b is None, b or 0,
            r.get("method") != "baseline", str(r.get("method")), _fmt_params(r.get("params")))


def _table(records: list[dict]) -> str:
    if not records:
        return '<p class="empty">No records: this run has not finished any cell yet.</p>'
    head = "".join(
        f'<th tabindex="0" data-type="{"num" if numeric else "text"}">{_esc(label)}'
        f'<span class="arrow"></span></th>' for label, numeric, _ in COLUMNS)
    rows = []
    for r in sorted(records, key=_row_order):
        classes = [c for c, on in (("baseline", r.get("method") == "baseline"),
                                   ("not-ok", r.get("status") != "ok"),
                                   ("is-noisy", bool(r.get("noisy")))) if on]
        tds = []
        for _, numeric, fn in COLUMNS:
            inner, raw, cls = fn(r)
            cls = f"{cls} num".strip() if numeric else cls
            sort = "" if raw is None else (repr(raw) if isinstance(raw, float) else str(raw))
            attr = f' class="{cls}"' if cls else ""
            tds.append(f'<td{attr} data-sort="{_esc(sort)}">{inner}</td>')
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
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    fig = go.Figure()
    batches = sorted({p[2].get("batch_size") for p in points},
                     key=lambda b: (_num(b) is None, _num(b) or 0, str(b)))
    for i, batch in enumerate(batches):
        pts = [p for p in points if p[2].get("batch_size") == batch]
        colour = qualitative.Plotly[i % len(qualitative.Plotly)]
        group = _esc(f"batch {batch}")
        hover = [_esc(f"{r.get('method')} {_fmt_params(r.get('params'))}".strip())
                 + _esc(f" · batch {batch} · p50 {_fmt_float(x)} ms · acc {y:.4f}") for x, y, r in pts]
        fig.add_scatter(
            x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers", name=group, legendgroup=group,
            text=hover, hoverinfo="text", marker=dict(
                color=colour, size=10,
                symbol=["star" if r.get("method") == "baseline" else "circle" for _, _, r in pts]))
        front = pareto_front(pts)
        fig.add_scatter(x=[p[0] for p in front], y=[p[1] for p in front], mode="lines",
                        line=dict(shape="hv", dash="dash", color=colour), name=f"{group} Pareto front",
                        legendgroup=group, hoverinfo="skip")
    fig.update_layout(template="plotly_white", height=420, margin=dict(l=60, r=20, t=20, b=50),
                      xaxis=dict(type="log", title="p50 latency per call (ms, log scale)"),
                      yaxis=dict(title="top-1 accuracy (test split)"))
    return fig.to_json()


def _caption(model: str, dataset: str, backend: str) -> str:
    """Say what was measured and how, so a figure read on its own is not misread."""
    return (f'<p class="caption">Each point is one method (hover for its params) applied to {_esc(model)} '
            f'on {_esc(dataset)}. x is the p50 (median) latency of the timed calls at that batch size on '
            f'the {_esc(backend)} backend; y is top-1 accuracy on the held-out test split after the method '
            f'was applied. Stars are the baseline. The dashed step line is the Pareto front of each batch '
            f'size: a point is on it when no other point of that batch size is at least as fast and as '
            f'accurate and strictly better in one. Only records with status ok and both figures are shown.</p>')


def _figures(records: list[dict]) -> tuple[str, int]:
    """One section per (model, dataset, backend); returns HTML and the number of figures."""
    if not records:
        return '<p class="empty">No records, so no figures.</p>', 0
    groups: dict[tuple[str, str, str], list[dict]] = {}
    variants: dict[str, set[str]] = {}
    for r in records:
        variants.setdefault(str(r.get("dataset")), set()).add(_variant(r, "dataset"))

    def dataset(r: dict) -> str:  # name alone unless one suite used the dataset with several params
        return _variant(r, "dataset") if len(variants[str(r.get("dataset"))]) > 1 else str(r.get("dataset"))

    for r in sorted(records, key=_row_order):
        groups.setdefault((str(r.get("model")), dataset(r), _variant(r, "backend")), []).append(r)
    parts, n = [], 0
    for (model, dataset, backend), rs in groups.items():
        title = f'<h3>{_esc(model)} · {_esc(dataset)} · {_esc(backend)}</h3>'
        timed = [r for r in rs if r.get("status") == "ok" and (_num(r.get("latency_p50_ms")) or 0) > 0]
        points = [(_num(r["latency_p50_ms"]), _num(r.get("accuracy")), r) for r in timed
                  if _num(r.get("accuracy")) is not None]
        if not points:
            why = ("no record of it finished with status ok and a latency" if not timed else
                   "its records have no accuracy (the dataset has no meaningful labels, "
                   "e.g. synthetic data)")
            parts.append(f'{title}<p class="skip">No accuracy-vs-latency figure: {why}.</p>')
            continue
        figure = _script_json(_figure_json(points))
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
        f'<span class="pill st-{k if k in STATUSES else "other"}">{_esc(k)} {_esc(counts.get(k, 0))}</span>'
        for k in keys)
    machine = [env.get("cpu_model"), f"{env['cores']} cores" if env.get("cores") else None,
               env.get("gpu"), f"torch {env['torch']}" if env.get("torch") else None,
               f"Python {env['python']}" if env.get("python") else None, env.get("platform")]
    facts = [("run", run_id), ("started", run.get("started_at")), ("finished", run.get("finished_at"))]
    return (f'<h1>optbench report: {_esc(suite or "unnamed suite")}</h1>'
            f'<p class="meta">{" · ".join(f"{k} <b>{_esc(v)}</b>" for k, v in facts if v)}</p>'
            f'<p class="meta">{unit}: {pills}</p>'
            f'<p class="meta">machine: {_esc(" · ".join(str(m) for m in machine if m) or "unknown")}</p>')


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:15px;margin:20px 0 4px}
.meta{margin:2px 0;color:#555}.note,.caption,.skip,.empty{color:#555;max-width:70em}
.caption{font-size:12.5px}.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:12.5px;white-space:nowrap}
th,td{padding:4px 8px;border-bottom:1px solid #e3e3e3;text-align:left}
th{background:#f4f4f6;cursor:pointer;user-select:none;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.baseline td{background:#eef4ff;font-weight:600}tr.not-ok td{color:#777}
td.null{color:#aaa}td.worse,.worse-text{color:#c62828;font-weight:600}td.err{color:#a33}
.pill{display:inline-block;padding:0 7px;border-radius:9px;font-size:11.5px;color:#fff;background:#888}
.st-ok{background:#2e7d32}.st-failed{background:#c62828}.st-timeout{background:#ef6c00}.st-skipped{background:#757575}
.gate-fail{background:#fdecea;color:#c62828;padding:0 5px;border-radius:4px;font-weight:600}
.gate-pass{color:#2e7d32}
.noisy{background:#fff3cd;color:#8a6d00;padding:0 5px;border-radius:4px;font-size:11.5px}
.plot{width:100%;max-width:900px;height:420px}
table.training td{vertical-align:top}.params{white-space:normal;max-width:48em;color:#888;font-size:11px}
.arrow{margin-left:4px;color:#555}
"""

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

#: Draws every figure whose plotly JSON sits in a <script type="application/json" data-figure=ID>.
FIGURES_JS = """
function drawJsonFigures() {
  document.querySelectorAll("script[data-figure]").forEach(function (s) {
    var fig = JSON.parse(s.textContent);
    Plotly.newPlot(s.dataset.figure, fig.data, fig.layout, {displaylogo: false, responsive: true});
  });
}
"""
PLOTLY_MODES = ("inline", "cdn")


def plotly_script(mode: str = "inline") -> str:
    """The <script> that brings plotly.js: the whole bundle inline (the page works offline), or
    plotly.py's own CDN URL with a Subresource Integrity hash of the bundle it ships (the
    browser refuses a CDN file that differs from it)."""
    from plotly.offline import get_plotlyjs

    if mode == "inline":
        return f"<script>{get_plotlyjs()}</script>"
    if mode != "cdn":
        raise ValueError(f"plotly mode must be one of {PLOTLY_MODES}, not {mode!r}")
    from plotly.io._utils import plotly_cdn_url

    digest = base64.b64encode(hashlib.sha256(get_plotlyjs().encode("utf-8")).digest()).decode("ascii")
    return (f'<script charset="utf-8" src="{_esc(plotly_cdn_url())}" integrity="sha256-{digest}" '
            f'crossorigin="anonymous"></script>')


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
    from harness.report_training import training_section

    figures, n_figs = _figures(records)
    training, n_training = training_section(records, curves or {}, n_figs)
    n_figs += n_training
    plotly_js = plotly_script(plotly) if n_figs else ""
    suite, run_id = _names(records, run)
    title = f"optbench · {suite or 'unnamed suite'} · {run_id or ''}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<link rel="icon" href="data:,"><title>{_esc(title)}</title><style>{CSS}</style>{plotly_js}</head>
<body>
{_header(records, run, env)}
<h2>Leaderboard</h2>
<p class="note">One row per record (model × dataset × method × params × backend × batch size). Speedup and size
ratio are the baseline's p50 latency and model bytes divided by this row's, at the same model, dataset, backend
and batch size: above 1× is faster / smaller, <span class="worse-text">red</span> is worse than the baseline.
Baseline rows are shaded. Click a column header to sort; empty values (—) always sort last.</p>
{_table(records)}
<h2>Accuracy vs latency</h2>
{figures}
{training}
<script>{SORT_JS}{FIGURES_JS}drawJsonFigures();</script>
</body></html>
"""


def read_json(path: Path) -> dict:
    """A JSON object from disk, or {} when absent or unreadable: a report must still render."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def render_run_report(run_dir: Path, plotly: str = "inline") -> str:
    """The report page of a run directory (records, run.json, env.json, curves), as a string."""
    from harness.report_training import load_curves

    run_dir = Path(run_dir)
    records = fill_relative_figures(read_records(run_dir))
    meta = {"run": read_json(run_dir / "run.json"), "env": read_json(run_dir / "env.json")}
    return render_report(records, meta, load_curves(run_dir, records), plotly)


def write_atomic(target: Path, text: str) -> Path:
    """Write ``text`` to ``target`` through a temp file in the same folder and os.replace, so a
    reader (a browser, a publisher) never sees half a page; readable by all like any web page."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=f"{target.suffix}.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a static host must be able to serve it
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_report(run_dir: Path) -> Path:
    """Write ``report.html`` into the run directory atomically and return its path.

    Atomic (temp file in the same directory, then os.replace) so a browser or a
    publisher never sees a half-written page while a run is re-reported.
    """
    run_dir = Path(run_dir)
    return write_atomic(run_dir / REPORT_FILE, render_run_report(run_dir))
