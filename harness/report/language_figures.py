"""The run report's section for causal language models: per model, dataset and backend, three figures
from the generation and quality records, as the field reads them (vLLM's and optimum-benchmark's
throughput-vs-batch and latency-vs-prompt plots, llama.cpp's drift figures):

- decode tokens/s against batch size, one line per method (and prompt length);
- time to first token against prompt length, one line per method (at the smallest batch size);
- drift against speedup: each method's KL divergence from the baseline's next-token distributions
  (log scale) against its paired end-to-end speedup, at the smallest batch size and prompt length.

Only records with status ok are drawn; a contended record is drawn as a cross.
"""
from __future__ import annotations

from typing import Any

from harness.record.status import BASELINE, Status
from harness.report.markup import esc, figure_json, script_json
from harness.results.labels import finite, fmt_float, fmt_params, variant_label
from harness.results.table_spec import is_language_record


def _method(r: dict[str, Any]) -> str:
    return f"{r.get('method')} {fmt_params(r.get('params'))}".strip()


def _lines(rs: list[dict[str, Any]], x_key: str, y_key: str, series: Any) -> list[dict[str, Any]]:
    from plotly.colors import qualitative

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rs:
        if finite(r.get(x_key)) is not None and finite(r.get(y_key)) is not None:
            groups.setdefault(series(r), []).append(r)
    traces = []
    for i, (name, pts) in enumerate(groups.items()):
        pts.sort(key=lambda r: r[x_key])
        traces.append({
            "type": "scatter", "mode": "lines+markers", "name": esc(name),
            "x": [r[x_key] for r in pts], "y": [r[y_key] for r in pts],
            "text": [esc(f"{name} · batch {r.get('batch_size')} · prompt {r.get('prompt_tokens')} · "
                         f"{fmt_float(r[y_key])}") + (" · contended" if r.get("contended") else "") for r in pts],
            "hoverinfo": "text",
            "line": {"color": qualitative.Plotly[i % len(qualitative.Plotly)]},
            "marker": {"size": 8, "symbol": ["x" if r.get("contended") else "circle" for r in pts]}})
    return traces


def _layout(x: str, y: str, *, log_x: bool = False, log_y: bool = False) -> dict[str, Any]:
    return {"height": 380, "margin": {"l": 70, "r": 20, "t": 20, "b": 50},
            "xaxis": {"type": "log" if log_x else "linear", "title": {"text": x}},
            "yaxis": {"type": "log" if log_y else "linear", "title": {"text": y}}}


def _plot(n: int, traces: list[dict[str, Any]], layout: dict[str, Any], caption: str) -> str:
    # The legend goes under the plot, a row per trace (method labels with their params are long, and beside
    # the plot they squeeze its axes); the figure grows by the rows it needs, so none is cut off.
    rows = len(traces)
    layout = {**layout, "height": layout["height"] + 20 * rows,
              "margin": {**layout["margin"], "b": 90 + 20 * rows},
              "legend": {"orientation": "h", "yanchor": "top", "y": -90 / 330, "xanchor": "left", "x": 0}}
    figure = script_json(figure_json(traces, layout))
    return (f'<div class="plot" id="plot-{n}" style="height:{layout["height"]}px"></div>'
            f'<script type="application/json" data-figure="plot-{n}">{figure}</script>'
            f'<p class="caption">{caption}</p>')


def language_section(records: list[dict[str, Any]], first_figure: int) -> tuple[str, int]:
    """The section's HTML (empty when the run has no language-model record) and how many figures it has;
    figure ids start at ``first_figure``."""
    lm = [r for r in records if is_language_record(r) and r.get("status") == Status.OK]
    if not lm:
        return "", 0
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in lm:
        groups.setdefault((str(r.get("model")), variant_label(r, "dataset"), variant_label(r, "backend")), []).append(r)
    parts, n = ["<h2>Language models: generation and drift</h2>"], first_figure
    for (model, dataset, backend), rs in groups.items():
        parts.append(f"<h3>{esc(model)} · {esc(dataset)} · {esc(backend)}</h3>")
        gen = [r for r in rs if r.get("prompt_tokens") is not None]
        if gen:
            traces = _lines(gen, "batch_size", "decode_tokens_per_s",
                            lambda r: f"{_method(r)} · prompt {r.get('prompt_tokens')}")
            parts.append(_plot(n, traces, _layout("batch size (sequences generated at once)", "decode tokens/s"),
                               "Decode throughput: batch × (new tokens − 1) / the median time after the first "
                               "token, per method and prompt length. Greedy, a fixed number of new tokens."))
            n += 1
            smallest = min(r["batch_size"] for r in gen)
            traces = _lines([r for r in gen if r["batch_size"] == smallest], "prompt_tokens", "ttft_p50_ms", _method)
            parts.append(_plot(n, traces, _layout("prompt length (tokens)", "TTFT p50 (ms)"),
                               f"Time to first token (the prefill and the first token's choice), median, at batch "
                               f"{esc(smallest)}, per method."))
            n += 1
        drift = [r for r in rs if r.get("method") != BASELINE and finite(r.get("kl_div")) is not None
                 and finite(r.get("speedup")) is not None and (finite(r.get("kl_div")) or 0) > 0]
        if drift:
            b0 = min(r["batch_size"] for r in drift)
            p0 = min((r["prompt_tokens"] for r in drift if r.get("prompt_tokens") is not None), default=None)
            pts = [r for r in drift if r["batch_size"] == b0 and r.get("prompt_tokens") == p0]
            traces = [{"type": "scatter", "mode": "markers+text", "name": esc(_method(r)),
                       "x": [r["speedup"]], "y": [r["kl_div"]], "text": [esc(str(r.get("method")))],
                       "textposition": "top center", "hovertext": [esc(
                           f"{_method(r)} · speedup {fmt_float(r['speedup'])} · KL {r['kl_div']:.3g} · "
                           f"agreement {fmt_float(finite(r.get('agreement')) or 0)}")], "hoverinfo": "text",
                       "marker": {"size": 10, "symbol": "x" if r.get("contended") else "circle"}} for r in pts]
            where = f"batch {b0}" + (f", prompt {p0}" if p0 is not None else "")
            parts.append(_plot(n, traces, _layout("speedup over the baseline (×)", "KL from the baseline (nats/token)",
                                                  log_x=True, log_y=True),
                               f"Drift against speed ({esc(where)}): the mean KL divergence of the baseline's "
                               "next-token distributions from the method's on the held-out text, against the "
                               "speedup (paired, end to end). Lower right is better: faster and closer."))
            n += 1
    return "\n".join(parts), n - first_figure
