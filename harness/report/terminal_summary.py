"""The table ``optbench run`` ends with: per model, dataset, backend and batch size, one row per
method with its p50 latency, speedup and 95% interval, size ratio, accuracy delta (or fidelity
when the run has no accuracy) and flags, followed by where the records and the report are. When
the run has more than one backend, a "vs ref" column ranks them all on one scale (the reference
backend's baseline p50 / the row's); a backend whose runtime ran in a precision other than f32
says so in its label ("openvino · bf16").

Figures are the records' own, read as the report reads them (``run_records``: the latest
record per cell x batch size, baseline-relative figures filled); nothing is re-timed or
recomputed here. Record text (model and method names, params, errors, reasons) comes from
suites, plugins and possibly hand-edited files, so every string goes through ``printable``
into a rich ``Text``: no rich markup, emoji code or terminal escape in a record is ever
interpreted. On a terminal the table is coloured and as wide as the terminal; anywhere else
(a pipe, CI) it is plain text 120 columns wide, so logs are stable.
"""
from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from harness.results.labels import (
    NULL,
    batch_label,
    finite,
    fmt_float,
    fmt_generation,
    fmt_ms,
    method_label,
    printable,
    variant_label,
)
from harness.results.load import run_records
from harness.results.records import RECORDS_FILE, STATUSES
from harness.results.seeds import is_training

#: Width of the table when stdout is not a terminal.
PLAIN_WIDTH = 120
#: Characters of a failed cell's error shown in its flags (the report and the cell's log.txt have it all).
ERROR_CHARS = 50
#: Characters of the contended reason quoted under the table.
REASON_CHARS = 200
COLUMNS = ("method", "p50 ms", "speedup [95% CI]", "size", "Δacc/fid", "flags")
#: The column added after the speedup when the run has more than one backend.
REFERENCE_COLUMN = "vs ref"
LEGEND = ("speedup: above 1 is faster; with a [95% interval], the method and a copy of the baseline were timed "
          "in alternating blocks in one process and it is the ratio of their medians there (the baseline row's "
          "p50 comes from its own process), else baseline p50 / method p50; "
          "size: baseline bytes / method bytes; Δacc: accuracy - baseline's, else fidelity (agr: top-1 "
          "agreement, cos: cosine)")
#: Added to the legend when the run has language-model records.
LM_LEGEND = ("language models: ppl is the perplexity on the held-out text, kl the mean KL divergence of the "
             "next-token distributions from the baseline's on the same tokens; with a prompt, a row times "
             "generations: p50 is one generation end to end, TTFT the prefill, TPOT a token after the first")

Piece = tuple[str, str]  # (text, rich style; "" for none)


def text(value: Any) -> str:
    """Record text as the terminal may show it: control characters (ESC, bidi overrides) written
    out as escapes, and a lone surrogate (valid JSON, unencodable) as ``\\udxxx``."""
    return printable(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _short(value: Any, limit: int) -> str:
    one_line = " ".join(str(value).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def fmt_speedup(r: dict[str, Any]) -> Piece:
    """"1.00" for the baseline (exactly 1 by definition); "0.38 [0.36, 0.43]" with an interval;
    "0.38" without one (not timed paired); "—" when the record has no speedup. Green when the
    interval is above 1, red when it is below."""
    s = finite(r.get("speedup"))
    if r.get("status") != "ok" or s is None:
        return NULL, ""
    if r.get("method") == "baseline":
        return f"{s:.2f}", ""
    low, high = finite(r.get("speedup_ci_low")), finite(r.get("speedup_ci_high"))
    if low is None or high is None:
        return f"{s:.2f}", ""
    return f"{s:.2f} [{low:.2f}, {high:.2f}]", "green" if low > 1 else "red" if high < 1 else ""


def fmt_reference(r: dict[str, Any]) -> str:
    """The reference backend's baseline p50 / this p50 ("0.38×"), "—" when the record has none."""
    v = finite(r.get("reference_speedup"))
    return NULL if v is None or r.get("status") != "ok" else f"{v:.2f}×"


def backend_label(r: dict[str, Any]) -> str:
    """The backend with its params, and the precision its runtime ran in where that is not f32
    ("openvino · bf16"): a bf16 row beside fp32 ones never hides it."""
    label, precision = variant_label(r, "backend"), r.get("runtime_precision")
    return f"{label} · {precision}" if precision and precision != "f32" else label


def _label(r: dict[str, Any], key: str) -> str:
    return backend_label(r) if key == "backend" else variant_label(r, key)


def has_reference_column(records: list[dict[str, Any]]) -> bool:
    """Whether the table gets "vs ref": only when the records span more than one backend (on one, it is
    the speedup)."""
    return len({variant_label(r, "backend") for r in records}) > 1


def reference_legend(records: list[dict[str, Any]]) -> str:
    """What "vs ref" is, naming the reference backend the records name."""
    names = list(dict.fromkeys(
        text(variant_label({"backend": r["reference_backend"], "backend_params": r.get("reference_backend_params")},
                           "backend")) for r in records if r.get("reference_backend")))
    which = ", ".join(names) if names else "none named in these records"
    return (f"vs ref: baseline p50 on the reference backend ({which}) / this p50, same model, dataset, seed and "
            "batch size, so every backend ranks on one scale (above 1 is faster than that baseline; across "
            "backends a ratio of medians measured in different processes, no interval)")


def fmt_size(r: dict[str, Any]) -> str:
    v = finite(r.get("size_ratio"))
    return NULL if v is None else f"{v:.2f}×"


def fmt_quality(r: dict[str, Any]) -> Piece:
    """The accuracy delta ("+0.0012"), a language model's perplexity and drift ("ppl 20.7 kl 1.9e-05"),
    else the fidelity to the baseline ("agr 0.9990", "cos 0.9999")."""
    ppl, kl = finite(r.get("perplexity")), finite(r.get("kl_div"))
    if ppl is not None or r.get("ppl_ratio") is not None or r.get("perplexity_tokens") is not None:
        parts = ([f"ppl {ppl:.4g}"] if ppl is not None else []) + ([f"kl {kl:.2g}"] if kl is not None else [])
        return " ".join(parts) or NULL, ""
    delta = finite(r.get("accuracy_delta"))
    if delta is not None:
        return f"{delta:+.4f}".replace("-0.0000", "+0.0000"), "red" if delta < 0 else ""
    for key, short in (("agreement", "agr"), ("cosine", "cos")):
        v = finite(r.get(key))
        if v is not None:
            return f"{short} {v:.4f}", ""
    return NULL, ""


def fmt_training(r: dict[str, Any]) -> str:
    """A training cell's own figures: "trained 12.3 s, target at 4.50 s" (or "target never"; no
    target part when the suite set none); "" for a cell that did not train."""
    if not is_training(r):
        return ""
    train = finite(r.get("train_time_s"))
    parts = [f"trained {fmt_float(train)} s"] if train is not None else []
    ttt = finite(r.get("time_to_target_s"))
    if ttt is not None:
        parts.append(f"target at {fmt_float(ttt)} s")
    elif r.get("status") == "ok" and (r.get("target_accuracy") is not None or r.get("target_loss") is not None):
        parts.append("target never")
    return ", ".join(parts)


def flags(r: dict[str, Any]) -> list[Piece]:
    """What a reader must know before trusting the row: a status other than ok (with the start of
    its error), noisy timing, contended timing, an imprecise interval, a failed
    accuracy gate, a diverged training; then a training cell's time to train and to its target."""
    out: list[Piece] = []
    status = r.get("status")
    if status != "ok":
        out.append((text(status), "yellow" if status == "skipped" else "bold red"))
        error = r.get("error")
        if error:  # its first line, cut short: the report and the cell's log.txt have it all
            lines = str(error).strip().splitlines()
            out.append((": " + _short(text(lines[0] if lines else ""), ERROR_CHARS), ""))
    if r.get("noisy") is True:
        out.append(("noisy", "yellow"))
    if r.get("contended") is True:  # its reason is long: quoted once under the table (``contended_note``)
        out.append(("contended", "yellow"))
    if r.get("precision_reached") is False:
        out.append(("imprecise", "yellow"))
    if r.get("passes_gate") is False:
        out.append(("fails gate", "red"))
    if r.get("diverged") is True:
        out.append(("diverged", "red"))
    training = fmt_training(r)
    if training:
        out.append((training, ""))
    generation = fmt_generation(r) if r.get("status") == "ok" else ""
    if generation:
        out.append((generation, ""))
    return out


@dataclass
class Row:
    """One record as the table shows it: plain strings, each with a style."""

    group: tuple[str, str]  # (model label, batch size), shown on a group's first row only
    method: str
    p50: str
    speedup: Piece
    size: str
    quality: Piece
    flags: list[Piece] = field(default_factory=list)
    reference: str = NULL  # "vs ref", shown only when the run has more than one backend


def _ordered(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Grouped by model, dataset and backend in the order the run met them (the suite's), then by
    batch size; in a group the baseline first, then the methods in the suite's order, then seeds."""
    first: dict[tuple[str, str], int] = {}

    def at(kind: str, value: str) -> int:
        return first.setdefault((kind, value), len(first))

    def key(r: dict[str, Any]) -> tuple:
        b, seed, prompt = r.get("batch_size"), r.get("seed"), r.get("prompt_tokens")
        return (at("model", str(r.get("model"))), at("dataset", variant_label(r, "dataset")),
                at("backend", backend_label(r)), b if isinstance(b, int) else 0,
                prompt if isinstance(prompt, int) else 0,
                r.get("method") != "baseline", at("method", method_label(r)), seed if isinstance(seed, int) else 0)

    keys = [key(r) for r in records]  # in file order, so "first met" is the run's order
    return [r for _, r in sorted(zip(keys, records, strict=True), key=lambda kr: kr[0])]


def folded(records: list[dict[str, Any]]) -> dict[str, str]:
    """Dataset and backend when every record shares them: said once in the title, not per row."""
    out = {}
    for key in ("dataset", "backend"):
        values = {_label(r, key) for r in records}
        if len(values) == 1:
            out[key] = text(values.pop())
    return out


def rows(records: list[dict[str, Any]]) -> list[Row]:
    """The table's rows in order (see ``_ordered``)."""
    fold = folded(records)
    seeds = {r.get("seed") for r in records}
    out = []
    for r in _ordered(records):
        model = " · ".join([text(r.get("model"))] + [text(_label(r, k)) for k in ("dataset", "backend")
                                                      if k not in fold])
        method = text(method_label(r)) + (f" seed {text(r.get('seed'))}" if len(seeds) > 1 else "")
        out.append(Row(group=(model, batch_label(r)), method=method,
                       p50=fmt_ms(r.get("latency_p50_ms")) if r.get("status") == "ok" else NULL,
                       speedup=fmt_speedup(r), size=fmt_size(r), quality=fmt_quality(r), flags=flags(r),
                       reference=fmt_reference(r)))
    return out


def _flags_text(pieces: Iterable[Piece]) -> Any:
    from rich.text import Text

    out = Text()
    for i, (shown, style) in enumerate(pieces):
        if i and not shown.startswith(": "):
            out.append(", ")
        out.append(shown, style=style or "")
    return out


def title(records: list[dict[str, Any]], run_dir: Path | None = None) -> str:
    """"quickstart · run 20261201-… · digits · cpu: 16 records (16 ok)"."""
    suite = next((r.get("suite") for r in records if r.get("suite")), None) or (run_dir.parent.name if run_dir else None)
    run_id = next((r.get("run_id") for r in records if r.get("run_id")), None) or (run_dir.name if run_dir else None)
    counts = {s: sum(1 for r in records if r.get("status") == s) for s in STATUSES}
    other = len(records) - sum(counts.values())
    counts_text = ", ".join([f"{n} {s}" for s, n in counts.items() if n] + ([f"{other} other"] if other else []))
    head = [text(p) for p in (suite, f"run {run_id}" if run_id else None) if p] + list(folded(records).values())
    if not records:
        return " · ".join(head) + ": no records (no cell has finished)"
    return " · ".join(head) + f": {len(records)} records ({counts_text})"


def contended_note(records: list[dict[str, Any]]) -> str:
    """"contended: 3 of 16 records ...; for example: <the first one's reason>", or "" when none is."""
    contended = [r for r in records if r.get("contended") is True]
    if not contended:
        return ""
    reason = next((r.get("contended_reason") for r in contended if r.get("contended_reason")), None)
    return (f"contended: {len(contended)} of {len(records)} records were timed while other processes "
            "disturbed the machine, even after re-measuring"
            + (f"; for example: {_short(text(reason), REASON_CHARS)}" if reason else ""))


def summary_table(records: list[dict[str, Any]], run_dir: Path | None = None) -> Any:
    """A rich Table of ``records`` (already read with the relative figures filled): a heading row
    per model (with dataset and backend where they vary) and batch size, then one row per method."""
    from rich import box
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    table_rows = rows(records)
    with_reference = has_reference_column(records)
    columns = COLUMNS[:3] + (REFERENCE_COLUMN,) + COLUMNS[3:] if with_reference else COLUMNS
    language = any(r.get("perplexity_tokens") is not None or r.get("prompt_tokens") is not None for r in records)
    caption = Text(LEGEND + ("; " + reference_legend(records) if with_reference else "")
                   + ("; " + LM_LEGEND if language else ""), style="dim")
    note = contended_note(records)
    if note:
        caption.append("\n" + note, style="yellow")
    table = Table(title=Text(title(records, run_dir), style="bold"), title_justify="left", box=box.SIMPLE_HEAD,
                  caption=caption, caption_justify="left", pad_edge=False, highlight=False)
    for name in columns:
        wraps = name in ("method", "flags")  # the figures never wrap
        table.add_column(Text(name), justify="left" if wraps else "right", no_wrap=not wraps, overflow="fold")
    for i, row in enumerate(table_rows):
        if i == 0 or table_rows[i - 1].group != row.group:
            if i:
                table.add_section()
            model, batch = row.group
            table.add_row(Text(f"{model} · batch {batch}", style="bold"), *[Text("")] * (len(columns) - 1))
        table.add_row(Padding(Text(row.method), (0, 0, 0, 2)), Text(row.p50),
                      Text(row.speedup[0], style=row.speedup[1]), *([Text(row.reference)] if with_reference else []),
                      Text(row.size), Text(row.quality[0], style=row.quality[1]), _flags_text(row.flags))
    return table


def console_for(stream: TextIO) -> Any:
    """A rich Console for ``stream``: coloured, at the terminal's width, on a terminal; otherwise
    one that renders plain text (no escape codes, whatever FORCE_COLOR says) PLAIN_WIDTH columns
    wide into a buffer (``print_summary`` writes it out without trailing blanks)."""
    from rich.console import Console

    if bool(getattr(stream, "isatty", None)) and stream.isatty():
        return Console(file=stream, markup=False, emoji=False, highlight=False)
    return Console(file=io.StringIO(), width=PLAIN_WIDTH, force_terminal=False, color_system=None, no_color=True,
                   markup=False, emoji=False, highlight=False, legacy_windows=False)


def print_summary(run_dir: Path, stream: TextIO | None = None) -> None:
    """Print the run's summary table, then the path of its records file. (``optbench run`` prints
    the report's path after it, as the last line: scripts read that line.)"""
    from rich.text import Text

    stream = stream or sys.stdout
    run_dir = Path(run_dir)
    records = run_records(run_dir)
    console = console_for(stream)
    console.print()
    if records:
        console.print(summary_table(records, run_dir))
    else:
        console.print(Text(title(records, run_dir)))
    console.print(Text(f"records: {text(run_dir / RECORDS_FILE)}"), soft_wrap=True)  # a path stays on one line
    if isinstance(console.file, io.StringIO):  # not a terminal: plain lines, no blanks padding them out
        stream.write("".join(line.rstrip() + "\n" for line in console.file.getvalue().splitlines()))
        stream.flush()
