"""The report's training section: per problem, tuned methods over seeds, curves, time to target.

Fed by records and each training cell's curve.json (harness.train.fit); the aggregation and
the choice of the tuned hyperparameters live in harness.results.seeds. Every string
from a suite or plugin is escaped, as in the rest of the report.
"""
from __future__ import annotations

from typing import Any

from harness.record.status import Status
from harness.report.markup import esc, script_json
from harness.results.labels import NULL, fmt_float, fmt_params
from harness.results.seeds import Config, Stat, configurations, mean_curve, tuned


def _pm(stat: Stat, fmt=fmt_float, spread=None) -> str:
    if stat.mean is None:
        return f'<span class="null">{NULL}</span>'
    return fmt(stat.mean) + (f" ± {(spread or fmt)(stat.std)}" if stat.std is not None else "")


def _acc(v: float) -> str:
    return f"{v:.4f}"


def _percent(v: float) -> str:
    return f"{100 * v:.2f}%".replace("-0.00%", "0.00%")


def _gain(v: float) -> str:
    return f"{v:+.4f}"


def _ttt(c: Config) -> str:
    n = len(c.ok)
    if not c.has_target:
        return f'<span class="null">{NULL} (no target)</span>'
    if c.reached == 0:
        return f'<span class="worse-text">never ({n} seeds)</span>'
    text = _pm(c.stat("time_to_target_s"))
    return text + (f' <span class="worse-text">({c.reached}/{n} reached)</span>' if c.reached < n else f" ({n}/{n})")


def _status(c: Config) -> str:
    notes = []
    if c.diverged:
        notes.append(f'<span class="gate-fail">diverged {c.diverged}/{len(c.records)}</span>')
    if c.not_ok:
        statuses = sorted({str(r.get("status")) for r in c.records if r.get("status") != Status.OK})
        notes.append(f'<span class="gate-fail">{esc("/".join(statuses))} {c.not_ok}</span>')
    return " ".join(notes)


def _labels(rows: list[tuple[Config, list[Config]]]) -> dict[int, str]:
    """Short names: the method, the fixed params that tell its rows apart, the tuned values."""
    by_method: dict[str, list[Config]] = {}
    for best, _ in rows:
        by_method.setdefault(best.method, []).append(best)
    out = {}
    for method, configs in by_method.items():
        keys = sorted({k for c in configs for k in c.params if k not in c.search})
        varying = [k for k in keys if len({repr(c.params.get(k)) for c in configs}) > 1]
        for c in configs:
            shown = {k: c.params.get(k) for k in varying} | c.searched
            out[id(c)] = method + (f" ({fmt_params(shown)})" if shown else "")
    return out


def _tuned_table(rows: list[tuple[Config, list[Config]]], metric: str, labels: dict[int, str]) -> str:
    quality = (("final accuracy", "best accuracy") if metric == "accuracy"
               else ("final objective above its floor", "final held-out loss"))
    head = ["method", "tuned", "seeds", *quality, "time to target (s)", "epochs to target", "steps to target",
            "accuracy gain", "train time (s)", ""]
    out = []
    for best, candidates in rows:
        if metric == "accuracy":
            q = (_pm(best.stat("final_accuracy"), _acc), _pm(best.stat("best_accuracy"), _acc))
        else:
            gap = best.stat("floor_gap")
            q = (_pm(gap, _percent) if gap.n else _pm(best.stat("final_objective")), _pm(best.stat("final_loss")))
        fixed = {k: v for k, v in best.params.items() if k not in best.search}
        name = esc(labels[id(best)]) + (f'<div class="params">{esc(fmt_params(fixed))}</div>' if fixed else "")
        searched = (esc(fmt_params(best.searched)) + f" <small>of {len(candidates)}</small>"
                    if best.search else f'<span class="null">{NULL}</span>')
        cells = [name, searched, str(len(best.ok)), *q, _ttt(best),
                 _pm(best.stat("epochs_to_target")), _pm(best.stat("steps_to_target")),
                 _pm(best.stat("accuracy_gain"), _gain, _acc), _pm(best.stat("train_time_s")), _status(best)]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ('<div class="scroll"><table class="training"><thead><tr>'
            + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>" + "".join(out)
            + "</tbody></table></div>")


def _sweep_table(rows: list[tuple[Config, list[Config]]], metric: str) -> str:
    key, fmt = ("final_accuracy", _acc) if metric == "accuracy" else ("final_loss", fmt_float)
    out = []
    for best, candidates in rows:
        for c in candidates:
            mark = " ★" if c is best else ""
            out.append(f"<tr><td>{esc(c.method)}{mark}</td><td>{esc(fmt_params(c.params))}</td>"
                       f"<td>{len(c.records)}</td><td>{_pm(c.stat(key), fmt)}</td><td>{_ttt(c)}</td>"
                       f"<td>{_status(c)}</td></tr>")
    label = "final accuracy" if metric == "accuracy" else "final held-out loss"
    return ('<details><summary>Every configuration of the search (★ = chosen)</summary><div class="scroll">'
            '<table class="training"><thead><tr><th>method</th><th>params</th><th>seeds</th>'
            f'<th>{label}</th><th>time to target (s)</th><th></th></tr></thead><tbody>'
            + "".join(out) + "</tbody></table></div></details>")


def _figure(traces: list[dict], layout: dict) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    for t in traces:
        fig.add_scatter(**t)
    fig.update_layout(template="plotly_white", height=380, margin={"l": 60, "r": 20, "t": 20, "b": 50}, **layout)
    return fig.to_json()


def _curve_traces(rows: list[tuple[Config, list[Config]]], curves: dict[str, Any], metric: str,
                  x: str, labels: dict[int, str]) -> list[dict]:
    """One mean curve per tuned configuration, and the paired reference once per method."""
    from plotly.colors import qualitative

    key = "test_accuracy" if metric == "accuracy" else "floor_gap" if _has_floor(rows) else "objective"
    traces, referenced = [], set()
    for i, (best, _) in enumerate(rows):
        colour = qualitative.Plotly[i % len(qualitative.Plotly)]
        for role, dash in (("main", "solid"), ("reference", "dot")):
            if role == "reference" and best.method in referenced:
                continue
            per_seed = [_gap_points(curves[r["cell_id"]][role]) if key == "floor_gap" else
                        curves[r["cell_id"]][role]["points"] for r in best.ok
                        if isinstance(curves.get(r["cell_id"]), dict) and role in curves[r["cell_id"]]]
            pts = mean_curve(per_seed, key)
            if not pts:
                continue
            if role == "reference":
                referenced.add(best.method)
            label = labels[id(best)] if role == "main" else f"{best.method}: paired reference"
            traces.append({
                "x": [p["elapsed_s" if x == "time" else "epoch"] for p in pts], "y": [p["value"] for p in pts],
                "error_y": {"type": "data", "array": [p["std"] for p in pts], "thickness": 1,
                            "visible": len(pts) <= MAX_ERROR_BARS},
                "mode": "lines+markers", "name": esc(label), "line": {"color": colour, "dash": dash},
                "marker": {"size": 4}, "legendgroup": esc(best.method),
            })
    return traces


#: Curves with more evaluations than this are drawn without error bars (they would hide the lines).
MAX_ERROR_BARS = 30
#: A gap to the floor is drawn on a log axis; float32 rounding can put it at or just below 0.
MIN_GAP = 1e-7


def _has_floor(rows: list[tuple[Config, list[Config]]]) -> bool:
    return any(best.stat("loss_floor").n for best, _ in rows)


def _gap_points(curve: dict) -> list[dict]:
    """A loss curve as the relative gap of the training objective above the run's own floor."""
    floor = curve.get("loss_floor")
    out = []
    for p in curve.get("points", []):
        obj = p.get("objective")
        gap = (max((obj - floor) / abs(floor), MIN_GAP)
               if isinstance(obj, (int, float)) and isinstance(floor, (int, float)) and floor else None)
        out.append({**p, "floor_gap": gap})
    return out


def _ttt_figure(rows: list[tuple[Config, list[Config]]], labels: dict[int, str]) -> str | None:
    bars = [(best, best.stat("time_to_target_s")) for best, _ in rows if best.has_target]
    if not bars:
        return None
    names = [esc(labels[id(b)]) for b, _ in bars]
    trace = {
        "x": names, "y": [s.mean if s.mean is not None else 0 for _, s in bars], "type": "bar",
        "error_y": {"type": "data", "array": [s.std or 0 for _, s in bars], "visible": True},
        "text": [f"{b.reached}/{len(b.ok)} reached" for b, _ in bars], "textposition": "outside",
        "name": "time to target",
    }
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(**{k: v for k, v in trace.items() if k != "type"}))
    fig.update_layout(template="plotly_white", height=340, margin={"l": 60, "r": 20, "t": 30, "b": 80},
                      yaxis={"title": "seconds to target"})
    return fig.to_json()


def _problem_names(configs: list[Config]) -> dict[tuple, tuple[str, ...]]:
    """Dataset and backend by name alone unless the run used one with several params."""
    names: dict[tuple, tuple[str, ...]] = {}
    for part in (1, 2):
        variants: dict[str, set[str]] = {}
        for c in configs:
            variants.setdefault(c.problem[part].split("(")[0], set()).add(c.problem[part])
        for c in configs:
            base = c.problem[part].split("(")[0]
            current = list(names.get(c.problem, c.problem))
            current[part] = c.problem[part] if len(variants[base]) > 1 else base
            names[c.problem] = tuple(current)
    return names


#: What the training figures mean; the run report and the leaderboard both show it above them.
TRAINING_NOTE = (
    '<p class="note">Training-time methods (optimizers, distillers, transfer) trained '
    'the model from fresh, seeded weights through one shared loop: the same data order per seed, the '
    'clock paused while evaluating on the held-out split. Figures are the mean ± sample std over seeds. '
    'Searched hyperparameters (e.g. <code>lr: {log_grid: ...}</code>) are tuned per method: the value '
    'with the best mean final held-out accuracy (lowest held-out loss for a loss problem) is shown, and a '
    'value where any seed diverged or failed is never chosen over one where none did. Accuracy gain is '
    'the method minus its paired reference (the student trained alone on the same labels, or training '
    'from scratch) at the same budget and seed.</p>')


def training_section(records: list[dict], curves: dict[str, Any], first_plot: int) -> tuple[str, int]:
    """HTML for every problem with training cells; returns (html, number of plots)."""
    problems, n = training_problems(records, curves, first_plot)
    return (f"<h2>Training</h2>{TRAINING_NOTE}\n{problems}", n) if problems else ("", 0)


def training_problems(records: list[dict], curves: dict[str, Any], first_plot: int,
                      level: int = 3) -> tuple[str, int]:
    """Per problem: the tuned table, the search, curves against time and epoch, time-to-target
    bars; headings at ``<h{level}>``, plots numbered ``plot-{first_plot}`` on. Returns (html, plots)."""
    configs = configurations(records)
    if not configs:
        return "", 0
    by_problem: dict[tuple, list[tuple[Config, list[Config]]]] = {}
    for best, candidates in tuned(configs):
        by_problem.setdefault(best.problem, []).append((best, candidates))
    parts = []
    n = first_plot
    shown = _problem_names(configs)
    for problem, rows in by_problem.items():
        metric = rows[0][0].metric
        rows.sort(key=lambda row: row[0].score())
        labels = _labels(rows)
        parts.append(f"<h{level}>{esc(' · '.join(shown[problem]))}</h{level}>")
        parts.append(_tuned_table(rows, metric, labels))
        parts.append(_sweep_table(rows, metric))
        floor = metric == "loss" and _has_floor(rows)
        ylabel = ("held-out top-1 accuracy" if metric == "accuracy" else
                  "training objective above its floor, relative" if floor else "training objective (full pass)")
        for x, xlabel in (("time", "training seconds (evaluation excluded)"), ("epoch", "epoch")):
            traces = _curve_traces(rows, curves, metric, x, labels)
            if not traces:
                continue
            if floor:
                xs = [v for t in traces for v in t["x"]]
                traces.append({"x": [min(xs), max(xs)], "y": [0.01, 0.01], "mode": "lines",
                               "name": "default target (1% above the floor)", "line": {"color": "#888", "dash": "dash"}})
            layout = {"xaxis": {"title": xlabel}, "yaxis": {"title": ylabel, **({"type": "log"} if floor else {})}}
            parts.append(f'<div class="plot" id="plot-{n}"></div><script type="application/json" '
                         f'data-figure="plot-{n}">{script_json(_figure(traces, layout))}</script>')
            parts.append(f'<p class="caption">{esc(ylabel)} against {esc(xlabel)} for the tuned configuration '
                         'of each method: the mean over seeds at each evaluation, error bars one std; dotted lines '
                         'are the paired references. Held-out evaluation is not counted as training time. Error '
                         f'bars are left out of curves with more than {MAX_ERROR_BARS} evaluations.'
                         + (" y is (objective - floor) / |floor| for each seed's exact loss floor, on a log axis "
                            f"(values at or below {MIN_GAP:g} are float32 rounding at the floor); the dashed line is "
                            "the default target." if floor else "") + "</p>")
            n += 1
        bars = _ttt_figure(rows, labels)
        if bars is not None:
            parts.append(f'<div class="plot" id="plot-{n}"></div><script type="application/json" '
                         f'data-figure="plot-{n}">{script_json(bars)}</script>')
            parts.append('<p class="caption">Training seconds until the first evaluation at or past the target, '
                         'mean over the seeds that reached it with one std as error bar; the label says how many '
                         'seeds reached it (a bar of 0 with 0/n means none did).</p>')
            n += 1
    return "\n".join(parts), n - first_plot


def load_curves(run_dir: Any, records: list[dict]) -> dict[str, Any]:
    """cell_id -> curve.json content for the training cells of a run directory."""
    import json
    from pathlib import Path

    from harness.results.seeds import is_training

    out: dict[str, Any] = {}
    for r in records:
        cid = r.get("cell_id")
        if not is_training(r) or not isinstance(cid, str) or cid in out or "/" in cid or ".." in cid:
            continue
        try:
            data = json.loads((Path(run_dir) / "cells" / cid / "curve.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        curve = clean_curve(data)
        if curve:
            out[cid] = curve
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def clean_curve(data: Any) -> dict[str, Any]:
    """What the report can draw of one curve.json, a file it did not write in this process and must
    not crash on: each role (``main``, ``reference``) that is an object with a ``points`` list, its
    points those that are objects with a numeric ``epoch`` (the key seeds are matched on), and
    ``loss_floor`` only where it is a number. Anything else is left out, not guessed at."""
    if not isinstance(data, dict):
        return {}
    out: dict[str, Any] = {}
    for role in ("main", "reference"):
        curve = data.get(role)
        if not isinstance(curve, dict) or not isinstance(curve.get("points"), list):
            continue
        points = [p for p in curve["points"] if isinstance(p, dict) and _number(p.get("epoch"))]
        kept = {k: v for k, v in curve.items() if k not in ("points", "loss_floor")}
        if _number(curve.get("loss_floor")):
            kept["loss_floor"] = curve["loss_floor"]
        out[role] = {**kept, "points": points}
    return out

