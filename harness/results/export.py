"""``optbench export``: a run's records as csv or parquet (every field; nested values such as
``params`` as JSON text, so any reader can parse them back) or as a compact markdown table for
a pull-request comment.

Records come from plugins and hand edits, so the text formats are made inert: in csv a text
cell (or column name) starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading ``'`` (OWASP's rule against formula injection: a spreadsheet shows it as text instead of
running ``=HYPERLINK(...)``), and control characters other than tab and line breaks are written
as escapes (``\\x1b``), since csv goes to a terminal by default; numbers stay numbers. Markdown
cells go through ``harness.results.markdown.md_cell``. Parquet keeps every value as recorded."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import OptbenchError
from harness.record.status import BASELINE, STATUSES
from harness.results.labels import (
    method_label,
    printable,
    variant_label,
)
from harness.results.load import (
    frame,
    machine_label,
    read_env,
    rows_with_machine,
    run_groups,
)
from harness.results.markdown import Markup, markdown_table, md_cell, md_code
from harness.results.table_spec import EXPORT, VIEWS, WORSE, Column, Shown, columns

if TYPE_CHECKING:  # pandas is imported on use: the CLI starts without it
    import pandas as pd

FORMATS = ("csv", "parquet", "markdown")


def _json_text(v: Any) -> Any:
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True, default=str)
    return v


def flat_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The frame with every nested (object) column as JSON text, for csv and parquet."""
    out = df.copy()
    for name in out.columns:
        if out[name].dtype == object:
            out[name] = out[name].map(_json_text).astype("string")
    return out


#: A csv cell starting with one of these is a formula to a spreadsheet (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: Any) -> Any:
    """A text cell as csv writes it: controls escaped (tab and line breaks kept), a leading ``'``
    when a spreadsheet would read it as a formula. Anything else (numbers, nulls) as it is."""
    if not isinstance(value, str):
        return value
    value = printable(value, keep="\t\n\r")
    return "'" + value if value.startswith(FORMULA_START) else value


def csv_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``flat_frame``'s output made inert for a spreadsheet and a terminal: every text cell and column
    name through ``csv_text``; numeric, boolean and timestamp columns untouched."""
    out = df.rename(columns=lambda c: csv_text(str(c)))
    for name in out.columns:
        if str(out[name].dtype) in ("string", "object"):
            out[name] = out[name].map(csv_text, na_action="ignore").astype(out[name].dtype)
    return out


def _row_order(r: dict[str, Any]) -> tuple:
    """Per model, dataset and backend: baseline first, then methods by name; batch sizes together."""
    b = r.get("batch_size")
    return (str(r.get("model")), variant_label(r, "dataset"), variant_label(r, "backend"),
            r.get("method") != BASELINE, method_label(r), str(r.get("seed")),
            not isinstance(b, (int, float)), b if isinstance(b, (int, float)) else 0)


FOLDABLE = ("dataset", "backend")  # the same on every row: said once above the table instead


def _md(column: Column, shown: Shown) -> Any:
    """A cell of the markdown table: the figure with its interval beside it; a failed gate in bold."""
    if column.kind == "gate" and shown.tone == WORSE:
        return Markup("**fail**")
    if column.kind == "backend":
        return " · ".join(p for p in (shown.text, shown.detail) if p)
    return shown.text + (f" {shown.detail}" if shown.detail else "")


def markdown_rows(records: list[dict[str, Any]], cols: list[Column] | None = None) -> list[list[Any]]:
    """One row per record in the export view's column order (the table spec's), sorted as the report groups them."""
    cols = cols if cols is not None else columns(EXPORT, records)
    seeds = {r.get("seed") for r in records}
    out = []
    for r in sorted(records, key=_row_order):
        row = [_md(c, c.show(r)) for c in cols]
        if len(seeds) > 1 and "method_label" in VIEWS[EXPORT]:
            i = [c.key for c in cols].index("method_label")
            row[i] = f"{row[i]} (seed {r.get('seed')})"
        out.append(row)
    return out


def markdown(run_dir: Path, records: list[dict[str, Any]]) -> str:
    """One run as a pull-request comment: suite, run, machine and status counts, then one row per record.

    A dataset or backend shared by every row is said once in the heading, to keep the table narrow.
    """
    env = read_env(run_dir) or {}
    suite = next((r.get("suite") for r in records if r.get("suite")), None) or run_dir.parent.name
    run_id = next((r.get("run_id") for r in records if r.get("run_id")), None) or run_dir.name
    counts = {s: sum(1 for r in records if r.get("status") == s) for s in STATUSES}
    counts_text = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no records"
    head = [f"**{md_cell(suite)}** run {md_code(run_id)}: {len(records)} records ({counts_text})"]
    machine = machine_label(env)
    if machine:
        head.append(f"machine: {md_cell(machine)}" + (f", torch {md_cell(env['torch'])}" if env.get("torch") else ""))
    if not records:
        return "  \n".join(head) + "\n\n_No records: the run has not finished any cell yet._\n"
    cols = columns(EXPORT, records)
    rows = markdown_rows(records, cols)
    for name in FOLDABLE:
        i = [c.key for c in cols].index(name)
        values = {row[i] for row in rows}
        if len(values) == 1:
            head.append(f"{name}: {md_cell(values.pop())}")
            cols.pop(i)
            rows = [row[:i] + row[i + 1:] for row in rows]
    table = markdown_table([c.label_in(EXPORT) for c in cols], rows, [c.numeric for c in cols])
    notes = ("p50: median latency per call at that batch size; speedup and size ratio: baseline / method "
             "(above 1 is faster or smaller); Δ accuracy: method - baseline")
    return "\n\n".join(["  \n".join(head), table, f"<sub>{notes}</sub>"]) + "\n"


def cmd_export(args: argparse.Namespace) -> int:
    """``optbench export RUN_DIR --format csv|parquet|markdown [-o FILE]``."""
    fmt = getattr(args, "format", "csv")
    if fmt not in FORMATS:
        raise OptbenchError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    path = Path(args.run_dir)
    out = Path(args.out) if getattr(args, "out", None) else None
    if out is not None and not out.parent.is_dir():
        raise OptbenchError(f"-o {out}: folder {out.parent} does not exist")
    if out is not None and out.is_dir():
        raise OptbenchError(f"-o {out}: is a folder; expected a file name")

    groups = run_groups(path)
    if fmt == "markdown":
        return _write_text("\n".join(markdown(run, records) for run, records in groups), out)
    df = flat_frame(frame(rows_with_machine(groups)))
    if fmt == "csv":
        return _write_text(csv_frame(df).to_csv(index=False, lineterminator="\n"), out)
    target = out or ((path.parent if path.is_file() else path) / "records.parquet")
    try:
        df.to_parquet(target, index=False)
    except OSError as exc:
        raise OptbenchError(f"{target}: cannot write ({exc.strerror or exc})") from None
    print(target)
    return 0


def _write_text(text: str, out: Path | None) -> int:
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OptbenchError(f"{out}: cannot write ({exc.strerror or exc})") from None
    print(out)
    return 0
