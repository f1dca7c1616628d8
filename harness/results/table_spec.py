"""One spec of every table of records, in the spirit of ``torch.utils.benchmark.Compare``: each column says
which field it shows, how the figure reads (``FORMATS``: the site's page has the same formats by name),
when it is worse than the baseline's, and which views show it, in what order (``VIEWS``). The run
report, the terminal summary, the site, the markdown export and ``optbench compare`` render these
columns; only their markup is their own.

A column's ``show(record)`` gives a ``Shown``: the text, the raw value to sort by, a tone (worse than the
baseline, better, a caveat), a detail beside the figure (a speedup's interval) and a hover title. Values
come from records.jsonl, which a plugin or a hand edit may have filled with anything: nothing here
raises on a value.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.record.schema import CORE_SCHEMA
from harness.record.status import BASELINE, STATUSES, Status
from harness.registry.installed_schema import installed_schema
from harness.results.labels import (
    NULL,
    finite,
    fmt_float,
    fmt_generation,
    fmt_ms,
    fmt_params,
    method_label,
    variant_label,
)
from harness.results.seeds import is_training

REPORT, TERMINAL, SITE, EXPORT = "report", "terminal", "site", "export"
#: Tones a renderer marks up: worse than the baseline, an interval above 1, a caveat a reader must see, a fault.
WORSE, BETTER, CAVEAT, FAULT = "worse", "better", "caveat", "fault"


def _bytes(n: float) -> str:
    """Binary units: "512 B", "1.5 MiB"."""
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


#: How a figure reads, by name (leaderboard.js has a function of each name that reads the same).
FORMATS: dict[str, Callable[[float], str]] = {
    "ms": fmt_ms,                        # three significant digits: 0.0272, 1.23, 45.6, 1,234
    "times": lambda v: f"{v:.2f}×",      # a ratio: speedup, size ratio
    "fraction": lambda v: f"{v:.4f}",    # accuracy, agreement, cosine
    "signed": lambda v: f"{v:+.4f}".replace("-0.0000", "+0.0000"),  # a difference from the baseline's
    "sig4": lambda v: f"{v:.4g}",        # perplexity
    "sig3": lambda v: f"{v:.3g}",        # KL divergence, KV cache
    "count": lambda v: f"{v:,.0f}",      # tokens/s, parameters
    "bytes": _bytes,
    "int": lambda v: str(int(v)) if float(v).is_integer() else f"{v:g}",  # batch size, prompt length, seed
}


@dataclass(frozen=True)
class Shown:
    """A record's figure as a table shows it."""

    text: str = NULL
    sort: Any = None
    tone: str = ""
    detail: str = ""
    title: str = ""
    pieces: tuple[tuple[str, str, str], ...] = ()  # flags: (text, tone, title) each

    @property
    def null(self) -> bool:
        return self.text == NULL and not self.pieces


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    show: Callable[[dict[str, Any]], Shown]
    numeric: bool = True
    #: The record field it shows, when it shows one (None: composed of several).
    record_field: str | None = None
    #: The name of its format in FORMATS (the site's page reads the figure with the same).
    format: str | None = None
    #: Below this the figure is worse than the baseline's (red).
    worse_below: float | None = None
    #: How it renders beyond text: "status", "flags", "gate", "error", "speedup" (a figure with its interval).
    kind: str = "figure"
    #: What it is, once, for a header's hover.
    title: str = ""
    #: Shown only where some record needs it: "language" (a language model's), "backends" (records of several),
    #: "tasks" (a quality metric other than accuracy).
    only: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def label_in(self, view: str) -> str:
        return self.labels.get(view, self.label)


def declared_label(field_: str) -> str:
    """How a table heads a field: its declared label, with "(×)" for a ratio (``harness.record.core_fields``)."""
    declared = CORE_SCHEMA.get(field_)
    if declared is None:
        return field_
    return declared.label + (" (×)" if declared.unit == "x" else "")


def _figure(key: str, field_: str, fmt: str, worse_below: float | None = None, **kw: Any) -> Column:
    """A column showing one field's figure, headed by its declared label."""
    read = FORMATS[fmt]
    label = kw.pop("label", None) or declared_label(field_)

    def show(r: dict[str, Any]) -> Shown:
        v = finite(r.get(field_))
        if v is None:
            return Shown()
        tone = WORSE if worse_below is not None and v < worse_below - 1e-9 else ""
        return Shown(read(v), v, tone)

    return Column(key, label, show, record_field=field_, format=fmt, worse_below=worse_below, **kw)


def _text(key: str, get: Callable[[dict[str, Any]], Any], field_: str | None = None, label: str = "",
          **kw: Any) -> Column:
    label = label or declared_label(field_ or key)

    def show(r: dict[str, Any]) -> Shown:
        v = get(r)
        v = "" if v is None else str(v)
        return Shown(v, v) if v else Shown()

    return Column(key, label, show, numeric=False, record_field=field_, **kw)


def backend_qualifiers(r: dict[str, Any]) -> list[str]:
    """What the record's fields declared ``qualifies="backend"`` say where it is not their usual value: the
    precision a runtime ran in ("bf16" where f32 is usual)."""
    out = []
    for name, f in installed_schema().fields.items():
        if f.qualifies == "backend":
            value = r.get(name)
            if value and value != f.usual:
                out.append(str(value))
    return out


def backend_label(r: dict[str, Any]) -> str:
    """The backend with its params and its qualifiers ("openvino · bf16"): a bf16 row beside fp32 ones never
    hides it."""
    return " · ".join([variant_label(r, "backend"), *backend_qualifiers(r)])


def _backend(r: dict[str, Any]) -> Shown:
    label, qualifiers = variant_label(r, "backend"), backend_qualifiers(r)
    return Shown(label, " · ".join([label, *qualifiers]), detail=" · ".join(qualifiers),
                 title=f"ran in {', '.join(qualifiers)}" if qualifiers else "")


def _ok(r: dict[str, Any]) -> bool:
    return r.get("status") == Status.OK


def _speedup(r: dict[str, Any]) -> Shown:
    """"1.90×" with its 95% interval "[1.80, 2.05]" where it was timed paired; "1.00×" for the baseline (exactly
    1 by definition). Worse below 1; better when the whole interval is above 1."""
    s = finite(r.get("speedup"))
    if not _ok(r) or s is None:
        return Shown()
    if r.get("method") == BASELINE:
        return Shown(FORMATS["times"](s), s)
    low, high = finite(r.get("speedup_ci_low")), finite(r.get("speedup_ci_high"))
    if low is None or high is None:  # no interval: a ratio of medians, worse when below 1
        return Shown(FORMATS["times"](s), s, WORSE if s < 1.0 - 1e-9 else "")
    tone = BETTER if low > 1 else WORSE if high < 1 else ""  # only what the interval says
    return Shown(FORMATS["times"](s), s, tone, detail=f"[{low:.2f}, {high:.2f}]",
                 title="95% interval from the paired blocks")


def _reference(r: dict[str, Any]) -> Shown:
    v = finite(r.get("reference_speedup"))
    if v is None or not _ok(r):
        return Shown()
    ref = str(r.get("reference_backend") or "the reference backend")
    return Shown(FORMATS["times"](v), v, WORSE if v < 1.0 - 1e-9 else "",
                 title=f"{ref}'s baseline p50 / this p50; across backends a ratio of medians from different processes "
                       "(no interval)")


def _p50(r: dict[str, Any]) -> Shown:
    v = finite(r.get("latency_p50_ms"))
    return Shown(fmt_ms(v), v) if v is not None and _ok(r) else Shown()


def _status(r: dict[str, Any]) -> Shown:
    s = str(r.get("status") or "")
    tone = "" if s == Status.OK else CAVEAT if s == Status.SKIPPED else FAULT
    return Shown(s or "?", s or None, tone)


def _status_error(r: dict[str, Any], width: int = 60) -> Shown:
    """The status, and a failure's error cut short: "failed: RuntimeError: shapes do not ..."."""
    status = str(r.get("status") or "?")
    if status == Status.OK or not r.get("error"):
        return Shown(status, status)
    error = " ".join(str(r["error"]).split())
    return Shown(f"{status}: {error if len(error) <= width else error[: width - 1] + '…'}", status, FAULT)


def _error(r: dict[str, Any], width: int = 80) -> Shown:
    e = r.get("error")
    if not e:
        return Shown()
    e = str(e)
    return Shown(e if len(e) <= width else e[: width - 1] + "…", e, FAULT, title=e)


def _gate(r: dict[str, Any]) -> Shown:
    g = r.get("passes_gate")
    if g is None:
        return Shown()
    if g:
        return Shown("pass", 1)
    return Shown("fail", 0, WORSE, title="below the suite's accuracy_gate (accuracy, agreement or cosine)")


def _timing(r: dict[str, Any]) -> Shown:
    """The timing's flags: noisy (IQR over 10% of the median), contended (other processes took the CPU while it
    was measured, even after re-measuring; left out of rankings), imprecise (the precision target was not reached
    within max_seconds)."""
    pieces = []
    if r.get("noisy"):
        pieces.append(("noisy", CAVEAT, "timing spread (IQR) is large for its median"))
    if r.get("contended"):
        pieces.append(("contended", CAVEAT, str(r.get("contended_reason") or "other processes used the CPU while it "
                                                                               "was timed")))
    if r.get("precision_reached") is False:
        pieces.append(("imprecise", CAVEAT, "the 95% interval did not reach measure.repeat.target_rel_ci within "
                                            "max_seconds"))
    if not pieces:
        return Shown() if r.get("noisy") is None and r.get("contended") is None else Shown("", 0)
    return Shown(", ".join(p[0] for p in pieces), len(pieces), pieces=tuple(pieces))


def _nonzero(r: dict[str, Any]) -> Shown:
    nz, total = finite(r.get("nonzero_params")), finite(r.get("params_count"))
    if nz is None:
        return Shown()
    return Shown(f"{nz:,.0f}", nz, title=f"of {total:,.0f} params ({nz / total:.1%})" if total else "")


def other_metric(r: dict[str, Any]) -> bool:
    """Whether the record's quality is another metric than accuracy (a regression's rmse, a user's own)."""
    return r.get("quality_metric") not in (None, "accuracy")


def _worse(r: dict[str, Any], delta: float) -> bool:
    """Whether a change of the quality metric by ``delta`` is for the worse (a rise of an error is)."""
    return delta > 0 if r.get("quality_higher_is_better") is False else delta < 0


def _quality_delta(r: dict[str, Any]) -> Shown:
    delta = finite(r.get("quality_delta"))
    if delta is None:
        return Shown()
    return Shown(f"{delta:+.3g}", delta, WORSE if _worse(r, delta) else "")


def _quality(r: dict[str, Any]) -> Shown:
    """The accuracy delta ("+0.0012"), another quality metric's ("rmse +3.12"), a language model's perplexity and
    drift ("ppl 20.7 kl 1.9e-05"), else the fidelity to the baseline ("agr 0.9990", "cos 0.9999", "rel 0.0031")."""
    ppl, kl = finite(r.get("perplexity")), finite(r.get("kl_div"))
    if ppl is not None or r.get("ppl_ratio") is not None or r.get("perplexity_tokens") is not None:
        parts = ([f"ppl {ppl:.4g}"] if ppl is not None else []) + ([f"kl {kl:.2g}"] if kl is not None else [])
        return Shown(" ".join(parts) or NULL, ppl)
    if other_metric(r) and finite(r.get("quality_delta")) is not None:
        delta = _quality_delta(r)
        return Shown(f"{r.get('quality_metric')} {delta.text}", delta.sort, delta.tone)
    delta = finite(r.get("accuracy_delta"))
    if delta is not None:
        return Shown(FORMATS["signed"](delta), delta, WORSE if delta < 0 else "")
    for key, short in (("agreement", "agr"), ("cosine", "cos"), ("rel_err", "rel"), ("map_vs_baseline", "mAPb")):
        v = finite(r.get(key))
        if v is not None:
            return Shown(f"{short} {v:.4f}", v)
    return Shown()


def _fmt_training(r: dict[str, Any]) -> str:
    """A training cell's own figures: "trained 12.3 s, target at 4.50 s" (or "target never"; no target part when
    the suite set none); "" for a cell that did not train."""
    if not is_training(r):
        return ""
    train = finite(r.get("train_time_s"))
    parts = [f"trained {fmt_float(train)} s"] if train is not None else []
    ttt = finite(r.get("time_to_target_s"))
    if ttt is not None:
        parts.append(f"target at {fmt_float(ttt)} s")
    elif _ok(r) and (r.get("target_accuracy") is not None or r.get("target_loss") is not None):
        parts.append("target never")
    return ", ".join(parts)


def _flags(r: dict[str, Any], error_chars: int = 50) -> Shown:
    """What a reader must know before trusting the row: a status other than ok (with the start of its error),
    noisy, contended or imprecise timing, a failed accuracy gate, a diverged training; then a training cell's time
    to train and to its target, and a generation record's own figures."""
    pieces: list[tuple[str, str, str]] = []
    status = r.get("status")
    if status != Status.OK:
        pieces.append((str(status), CAVEAT if status == Status.SKIPPED else FAULT, ""))
        error = r.get("error")
        if error:  # its first line, cut short: the report and the cell's log.txt have it all
            lines = str(error).strip().splitlines()
            first = " ".join((lines[0] if lines else "").split())
            pieces.append((": " + (first if len(first) <= error_chars else first[: error_chars - 1] + "…"), "", ""))
    pieces += list(_timing(r).pieces)
    if r.get("passes_gate") is False:
        pieces.append(("fails gate", WORSE, ""))
    if r.get("diverged") is True:
        pieces.append(("diverged", WORSE, ""))
    for extra in (_fmt_training(r), fmt_generation(r) if _ok(r) else ""):
        if extra:
            pieces.append((extra, "", ""))
    return Shown(", ".join(p[0] for p in pieces).replace(", : ", ": "), None, pieces=tuple(pieces)) if pieces \
        else Shown("", None)


def _keyed(columns: tuple[Column, ...]) -> dict[str, Column]:
    keys = [c.key for c in columns]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ValueError(f"table spec: column keys {twice} are given twice")
    return {c.key: c for c in columns}


COLUMNS: dict[str, Column] = _keyed((
    _text("model", lambda r: r.get("model"), "model"),
    _text("dataset", lambda r: variant_label(r, "dataset"), "dataset"),
    _text("method", lambda r: r.get("method"), "method"),
    _text("method_label", method_label, label="method"),
    _text("kind", lambda r: r.get("method_kind"), "method_kind"),
    _text("params", lambda r: fmt_params(r.get("params")), "params"),
    Column("backend", declared_label("backend"), _backend, numeric=False, record_field="backend", kind="backend"),
    _figure("batch", "batch_size", "int"),
    _figure("prompt", "prompt_tokens", "int", only="language"),
    Column("status", declared_label("status"), _status, numeric=False, record_field="status", kind="status"),
    Column("status_error", declared_label("status"), _status_error, numeric=False, record_field="status",
           kind="status"),
    Column("p50", declared_label("latency_p50_ms"), _p50, record_field="latency_p50_ms", format="ms"),
    _figure("p99", "latency_p99_ms", "ms"),
    _figure("iqr", "latency_iqr_ms", "ms"),
    Column("timing", "timing", _timing, kind="flags",
           title="noisy: IQR over 10% of the median; contended: other processes took the CPU while it was timed; "
                 "imprecise: the precision target was not reached"),
    _figure("throughput", "throughput_per_s", "count"),
    _figure("acc", "accuracy", "fraction"),
    _figure("dacc", "accuracy_delta", "signed", worse_below=0.0),
    _figure("top5", "top5_accuracy", "fraction"),
    _text("metric", lambda r: r.get("quality_metric"), "quality_metric", only="tasks"),
    _figure("quality", "quality", "sig4", only="tasks"),
    Column("dq", declared_label("quality_delta"), _quality_delta, record_field="quality_delta", only="tasks"),
    _figure("agree", "agreement", "fraction", worse_below=1.0),
    _figure("cos", "cosine", "fraction", worse_below=1.0),
    _figure("kl", "kl_div", "sig3"),
    _figure("ppl", "perplexity", "sig4", only="language"),
    _figure("ttft", "ttft_p50_ms", "ms", only="language"),
    _figure("tpot", "tpot_p50_ms", "ms", only="language"),
    _figure("tps", "decode_tokens_per_s", "count", only="language"),
    _figure("kv", "kv_cache_mb", "sig3", only="language"),
    Column("speedup", declared_label("speedup"), _speedup, record_field="speedup", format="times", worse_below=1.0,
           kind="speedup", labels={view: "speedup [95% CI]" for view in (REPORT, TERMINAL, EXPORT)},
           title="the baseline's p50 / this p50, timed paired with a copy of the baseline where the interval is given"),
    Column("ref", declared_label("reference_speedup"), _reference, record_field="reference_speedup", format="times",
           worse_below=1.0, only="backends", labels={TERMINAL: "vs ref"},
           title="the reference backend's baseline p50 / this p50 (same model, dataset, seed and batch size): above "
                 "1 is faster than the reference baseline; across backends a ratio of medians measured in different "
                 "processes, no interval"),
    _figure("theo", "theoretical_speedup", "times"),
    Column("gate", declared_label("passes_gate"), _gate, record_field="passes_gate", kind="gate"),
    _figure("size", "size_ratio", "times", worse_below=1.0, labels={TERMINAL: "size"}),
    _figure("bytes", "model_bytes", "bytes"),
    Column("nonzero", declared_label("nonzero_params"), _nonzero, record_field="nonzero_params", format="count"),
    Column("error", declared_label("error"), _error, numeric=False, record_field="error", kind="error"),
    Column("change", "Δquality", _quality, numeric=True),
    Column("flags", "flags", _flags, numeric=False, kind="flags"),
    Column("noisy", declared_label("noisy"), lambda r: Shown("noisy", 1, CAVEAT) if r.get("noisy") else
           Shown() if r.get("noisy") is None else Shown("", 0), record_field="noisy", kind="flags"),
    _figure("seed", "seed", "int"),
))

#: Each view's columns, in order.
VIEWS: dict[str, tuple[str, ...]] = {
    REPORT: ("model", "dataset", "method", "kind", "params", "backend", "batch", "prompt", "status", "p50", "p99",
             "iqr", "timing", "throughput", "metric", "quality", "dq", "acc", "dacc", "top5", "agree", "cos", "kl",
             "ppl", "ttft", "tpot", "tps", "kv", "speedup", "ref", "theo", "gate", "size", "bytes", "nonzero",
             "error"),
    TERMINAL: ("method_label", "p50", "speedup", "ref", "size", "change", "flags"),
    SITE: ("model", "method", "params", "batch", "status", "p50", "speedup", "ref", "theo", "acc", "dacc", "quality",
           "dq", "agree",
           "cos", "gate", "ppl", "kl", "ttft", "tpot", "tps", "size", "noisy", "p99", "bytes", "kind", "dataset",
           "backend", "seed"),
    EXPORT: ("model", "dataset", "method_label", "backend", "batch", "status_error", "p50", "speedup", "metric",
             "quality", "dq", "acc", "dacc", "size", "gate", "noisy"),
}


def is_language_record(r: dict[str, Any]) -> bool:
    return r.get("prompt_tokens") is not None or r.get("perplexity_tokens") is not None


def columns(view: str, records: Sequence[dict[str, Any]] | None = None) -> list[Column]:
    """The columns ``view`` shows, in order; with ``records``, without those only some records need (a language
    model's figures where none is one, "vs reference" where every record is on one backend)."""
    out = [COLUMNS[k] for k in VIEWS[view]]
    if records is None:
        return out
    language = any(is_language_record(r) for r in records)
    backends = len({variant_label(r, "backend") for r in records}) > 1
    tasks = any(other_metric(r) for r in records)
    return [c for c in out if c.only is None or (c.only == "language" and language)
            or (c.only == "backends" and backends) or (c.only == "tasks" and tasks)]


def known_status(status: Any) -> str:
    """A status fit for a CSS class name: itself when it is one of STATUSES, else "other" (untrusted text never
    goes into a class name)."""
    return status if status in STATUSES else "other"
