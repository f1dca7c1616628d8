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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from harness.record.status import BASELINE, STATUSES
from harness.results.labels import batch_label, method_label, printable, variant_label
from harness.results.load import run_records
from harness.results.records import RECORDS_FILE
from harness.results.table_spec import (
    BETTER,
    CAVEAT,
    FAULT,
    TERMINAL,
    WORSE,
    Column,
    Shown,
    backend_label,
    columns,
    is_language_record,
)

#: Width of the table when stdout is not a terminal.
PLAIN_WIDTH = 120
#: Characters of the contended reason quoted under the table.
REASON_CHARS = 200
LEGEND = ("speedup: above 1 is faster; with a [95% interval], the method and a copy of the baseline were timed "
          "in alternating blocks in one process and it is the ratio of their medians there (the baseline row's "
          "p50 comes from its own process), else baseline p50 / method p50; "
          "size: baseline bytes / method bytes; Δquality: accuracy - baseline's (or the named metric's: "
          "\"rmse +3.1\", red where worse), else fidelity to the baseline (agr: top-1 agreement, cos: cosine, "
          "rel: relative error, mAPb: mAP against its boxes)")
#: Added to the legend when the run has language-model records.
LM_LEGEND = ("language models: ppl is the perplexity on the held-out text, kl the mean KL divergence of the "
             "next-token distributions from the baseline's on the same tokens; with a prompt, a row times "
             "generations: p50 is one generation end to end, TTFT the prefill, TPOT a token after the first")

def text(value: Any) -> str:
    """Record text as the terminal may show it: control characters (ESC, bidi overrides) written
    out as escapes, and a lone surrogate (valid JSON, unencodable) as ``\\udxxx``."""
    return printable(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _short(value: Any, limit: int) -> str:
    one_line = " ".join(str(value).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


#: How a tone of the table spec reads on a terminal.
STYLES = {WORSE: "red", BETTER: "green", CAVEAT: "yellow", FAULT: "bold red"}


def _label(r: dict[str, Any], key: str) -> str:
    return backend_label(r) if key == "backend" else variant_label(r, key)


def reference_legend(records: list[dict[str, Any]]) -> str:
    """What "vs ref" is, naming the reference backend the records name."""
    names = list(dict.fromkeys(
        text(variant_label({"backend": r["reference_backend"], "backend_params": r.get("reference_backend_params")},
                           "backend")) for r in records if r.get("reference_backend")))
    which = ", ".join(names) if names else "none named in these records"
    return (f"vs ref: baseline p50 on the reference backend ({which}) / this p50, same model, dataset, seed and "
            "batch size, so every backend ranks on one scale (above 1 is faster than that baseline; across "
            "backends a ratio of medians measured in different processes, no interval)")


@dataclass
class Row:
    """One record as the table shows it: each column's ``Shown`` (the table spec's), under its group."""

    group: tuple[str, str]  # (model label, batch size), shown on a group's first row only
    cells: dict[str, Shown] = field(default_factory=dict)


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
                r.get("method") != BASELINE, at("method", method_label(r)), seed if isinstance(seed, int) else 0)

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


def rows(records: list[dict[str, Any]], cols: list[Column] | None = None) -> list[Row]:
    """The table's rows in order (see ``_ordered``), a ``Shown`` per column of the terminal view."""
    fold = folded(records)
    seeds = {r.get("seed") for r in records}
    cols = cols if cols is not None else columns(TERMINAL, records)
    out = []
    for r in _ordered(records):
        model = " · ".join([text(r.get("model"))] + [text(_label(r, k)) for k in ("dataset", "backend")
                                                      if k not in fold])
        cells = {c.key: c.show(r) for c in cols}
        if "method_label" in cells:
            cells["method_label"] = Shown(text(method_label(r)) + (f" seed {text(r.get('seed'))}" if len(seeds) > 1
                                                                  else ""))
        out.append(Row(group=(model, batch_label(r)), cells=cells))
    return out


def _cell(column: Column, shown: Shown) -> Any:
    """A rich Text of one cell: record text through ``text`` (never read as markup), styled by its tone; a figure
    with its detail beside it ("1.90× [1.80, 2.05]"); flags joined, each in its own style."""
    from rich.text import Text

    if column.kind == "flags":
        out = Text()
        for i, (piece, tone, _) in enumerate(shown.pieces):
            if i and not piece.startswith(": "):
                out.append(", ")
            out.append(text(piece), style=STYLES.get(tone, ""))
        return out
    value = text(shown.text) + (f" {shown.detail}" if shown.detail else "")
    return Text(value, style=STYLES.get(shown.tone, "") if column.key != "method_label" else "")


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

    cols = columns(TERMINAL, records)
    table_rows = rows(records, cols)
    with_reference = any(c.key == "ref" for c in cols)
    language = any(is_language_record(r) for r in records)
    caption = Text(LEGEND + ("; " + reference_legend(records) if with_reference else "")
                   + ("; " + LM_LEGEND if language else ""), style="dim")
    note = contended_note(records)
    if note:
        caption.append("\n" + note, style="yellow")
    table = Table(title=Text(title(records, run_dir), style="bold"), title_justify="left", box=box.SIMPLE_HEAD,
                  caption=caption, caption_justify="left", pad_edge=False, highlight=False)
    for c in cols:
        wraps = not c.numeric  # the figures never wrap
        table.add_column(Text(c.label_in(TERMINAL)), justify="left" if wraps else "right", no_wrap=not wraps,
                         overflow="fold")
    for i, row in enumerate(table_rows):
        if i == 0 or table_rows[i - 1].group != row.group:
            if i:
                table.add_section()
            model, batch = row.group
            table.add_row(Text(f"{model} · batch {batch}", style="bold"), *[Text("")] * (len(cols) - 1))
        cells = [_cell(c, row.cells[c.key]) for c in cols]
        table.add_row(Padding(cells[0], (0, 0, 0, 2)), *cells[1:])
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
