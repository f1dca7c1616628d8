"""A run's records as a pandas DataFrame (for notebooks), and ``optbench export``.

``load(path)`` reads what the report reads: the latest record of each cell x batch size
(a resumed run may have rerun a cell) with the baseline-relative figures recomputed, so a
notebook and report.html show the same numbers. Two columns come from the run's env.json:
``machine`` (hostname, CPU, cores, GPUs: what the latency depends on) and ``torch``.

Exports: csv and parquet hold every field (nested values such as ``params`` as JSON
text, so any reader can parse them back); markdown is a compact table for a pull-request
comment.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import OptbenchError
from harness.records import FIELDS, RECORDS_FILE, STATUSES, fill_relative_figures, read_records

if TYPE_CHECKING:  # pandas is imported on use: the CLI starts without it
    import pandas as pd

ENV_FILE = "env.json"
FORMATS = ("csv", "parquet", "markdown")
ENV_COLUMNS = ("machine", "torch")  # from env.json, last in a frame
NULL = "—"

# Column types of the known record fields; a field not listed here gets its type from its values.
TEXT = ("run_id", "cell_id", "suite", "model", "model_name", "dataset", "dataset_name", "method", "method_kind",
        "method_id", "backend", "status", "error", "machine", "torch")
BOOLEAN = ("noisy", "passes_gate", "finetuned", "diverged", "task_changed")
INTEGER = ("seed", "batch_size", "latency_n", "gpu_other_processes", "world_size", "ranks_used", "model_bytes",
           "serialized_bytes", "params_count", "nonzero_params", "flops", "effective_flops", "epochs_run",
           "steps_run", "grad_evals", "epochs_to_target", "steps_to_target", "train_labels", "threads")
NESTED = ("dataset_params", "params", "search_params", "train", "backend_params", "rank_p50_ms", "rank_p99_ms")
TIMESTAMP = ("started_at",)


# --- finding runs -------------------------------------------------------------------

def find_runs(root: Path | str) -> list[Path]:
    """Run directories at or below ``root`` (any folder holding a records.jsonl), sorted by path.

    ``root`` may be one run, a suite's folder (results/<suite>/) or a whole results tree.
    """
    root = Path(root)
    if (root / RECORDS_FILE).is_file():
        return [root]
    if not root.is_dir():
        return []
    runs = []
    for folder, dirs, files in os.walk(root):  # os.walk shrugs off folders vanishing mid-walk; rglob does not
        if RECORDS_FILE in files:
            runs.append(Path(folder))
            dirs.clear()  # a run's cells/ hold no runs
        dirs.sort()
    return sorted(runs)


def run_dir_of(path: Path | str, what: str = "run") -> Path:
    """The run directory ``path`` names (the folder, or its records.jsonl); errors say which path and why."""
    path = Path(path)
    if path.is_file() and path.name == RECORDS_FILE:
        return path.parent
    if not path.exists():
        raise OptbenchError(f"{path}: no such {what} directory")
    if not path.is_dir():
        raise OptbenchError(f"{path}: expected a run directory (results/<suite>/<run-id>/), got a file")
    if not (path / RECORDS_FILE).is_file():
        raise OptbenchError(f"{path}: not a run directory (no {RECORDS_FILE} in it); "
                            "expected results/<suite>/<run-id>/ as printed by `optbench run`")
    return path


def run_records(run_dir: Path) -> list[dict[str, Any]]:
    """The records as the report shows them: latest per (cell_id, batch_size), relative figures filled."""
    return fill_relative_figures(read_records(run_dir))


# --- the machine a run was measured on ------------------------------------------------

def read_env(run_dir: Path) -> dict[str, Any] | None:
    """env.json of a run, or None when it is missing or unreadable."""
    try:
        env = json.loads((Path(run_dir) / ENV_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return env if isinstance(env, dict) else None


def gpu_names(env: dict[str, Any]) -> list[str]:
    """GPU names from the backends' hardware details (cuda backend), else one "GPU i" per visible index."""
    names: list[str] = []
    for info in (env.get("backends") or {}).values():
        gpus = info.get("gpus") if isinstance(info, dict) else None
        names += [str(g["name"]) for g in gpus or [] if isinstance(g, dict) and g.get("name")]
    if names:
        return sorted(names)
    return [f"GPU {g.get('index')}" for g in env.get("gpus") or [] if isinstance(g, dict)]


def machine_fingerprint(env: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a latency depends on in hardware: host, CPU model, logical cores, GPUs. Software
    versions are not part of it: comparing torch 2.4 with 2.5 on one machine is a normal use."""
    if not env:
        return None
    return {"hostname": env.get("hostname"), "cpu_model": env.get("cpu_model"), "cores": env.get("cores"),
            "gpus": gpu_names(env)}


def machine_label(env: dict[str, Any] | None) -> str | None:
    """A one-line machine name: "vm · AMD EPYC · 2 cores · no GPU"."""
    fp = machine_fingerprint(env)
    if fp is None:
        return None
    gpus = fp["gpus"]
    gpu = "no GPU" if not gpus else (f"{len(gpus)}x {gpus[0]}" if len(set(gpus)) == 1 else ", ".join(gpus))
    cores = f"{fp['cores']} cores" if fp.get("cores") else None
    return " · ".join(str(p) for p in (fp.get("hostname"), fp.get("cpu_model"), cores, gpu) if p)


# --- the DataFrame --------------------------------------------------------------------

def run_groups(path: Path | str) -> list[tuple[Path, list[dict[str, Any]]]]:
    """(run directory, its records) for every run ``path`` names: a run, its records.jsonl, or a folder of runs."""
    path = Path(path)
    if not path.exists():
        raise OptbenchError(f"{path}: no such file or directory; expected a run directory, a {RECORDS_FILE} "
                            "file or a folder of runs")
    if path.is_file():
        if path.suffix != ".jsonl":
            raise OptbenchError(f"{path}: expected a run directory, a {RECORDS_FILE} file or a folder of runs")
        return [(path.parent, fill_relative_figures(read_records(path)))]
    runs = find_runs(path)
    if not runs:
        raise OptbenchError(f"{path}: no runs in it (no {RECORDS_FILE} in it or below it); expected a run "
                            "directory (results/<suite>/<run-id>/) or a folder of runs (results/)")
    return [(run, run_records(run)) for run in runs]


def _rows(groups: list[tuple[Path, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    rows = []
    for run, records in groups:
        env = read_env(run)
        machine, torch = machine_label(env), (env or {}).get("torch")
        rows += [{**r, "machine": machine, "torch": torch} for r in records]
    return rows


def _column_kind(name: str, values: Sequence[Any]) -> str:
    if name in NESTED:
        return "nested"
    if name in TIMESTAMP:
        return "timestamp"
    for kind, names in (("text", TEXT), ("boolean", BOOLEAN), ("integer", INTEGER)):
        if name in names:
            return kind
    present = [v for v in values if v is not None]
    if not present:
        return "float"
    if any(isinstance(v, (dict, list)) for v in present):
        return "nested"
    if all(isinstance(v, bool) for v in present):
        return "boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "integer"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float"
    if all(isinstance(v, str) for v in present):
        return "text"
    return "nested"  # mixed values: kept as they are


def _series(name: str, values: list[Any], kind: str) -> pd.Series:
    import pandas as pd

    if kind == "nested":
        return pd.Series(values, dtype=object, name=name)
    if kind == "timestamp":
        return pd.Series(pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce", format="ISO8601"),
                         name=name)
    if kind == "text":
        return pd.Series([None if v is None else str(v) for v in values], dtype="string", name=name)
    if kind == "boolean":
        return pd.Series([v if isinstance(v, bool) else None for v in values], dtype="boolean", name=name)
    if kind == "integer":
        ok = all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values)
        if ok:
            return pd.Series(values, dtype="Int64", name=name)
    # float, or an "integer" field that holds fractions in some record: float keeps every value
    return pd.Series([_float(v) for v in values], dtype="float64", name=name)


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return math.nan
    return float(v)


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A DataFrame of records: the record fields in their order, then extra fields, one typed column each.

    Text is ``string``, counts ``Int64``, flags ``boolean`` (all nullable), measurements
    ``float64`` (NaN when not measured), ``started_at`` a UTC timestamp; dict and list
    fields (params, train, rank_p50_ms, ...) stay Python objects.
    """
    import pandas as pd

    seen = dict.fromkeys(FIELDS)
    for r in rows:
        seen.update(dict.fromkeys(k for k in r if k not in seen))
    columns = [c for c in seen if c not in ENV_COLUMNS] + list(ENV_COLUMNS)
    data = {}
    for name in columns:
        values = [r.get(name) for r in rows]
        data[name] = _series(name, values, _column_kind(name, values))
    return pd.DataFrame(data, columns=columns)


def load(path: Path | str) -> pd.DataFrame:
    """Records of one run or many, as a DataFrame with one row per cell x batch size.

    ``path``: a run directory, its records.jsonl, or a folder of runs (results/ or
    results/<suite>/), whose runs are concatenated; ``run_id`` and ``suite`` tell them apart.
    Figures are the report's: the latest record per cell x batch size, speedup and the other
    baseline-relative figures recomputed. ``machine`` and ``torch`` come from env.json.
    """
    return frame(_rows(run_groups(path)))


# --- exports --------------------------------------------------------------------------

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


def fmt_number(v: Any, spec: str) -> str:
    """A finite number formatted with ``spec``; "—" for null, NaN or anything not a number."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return NULL
    return format(v, spec)


def fmt_ms(v: Any) -> str:
    """Milliseconds with about three significant digits (0.0412, 1.23, 45.6, 1,234)."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return NULL
    a = abs(v)
    return f"{v:,.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 1 else f"{v:#.3g}"


def fmt_params(params: Any) -> str:
    """"k=v, k=v"; a pipeline as "step(params) > step(params)"."""
    if not params:
        return ""
    if not isinstance(params, dict):
        return str(params)
    steps = params.get("steps")
    if isinstance(steps, list) and set(params) == {"steps"}:
        return " > ".join(f"{s.get('name')}({fmt_params(s.get('params'))})" for s in steps if isinstance(s, dict))

    def val(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v, default=str)
    return ", ".join(f"{k}={val(v)}" for k, v in params.items())


def method_label(r: dict[str, Any]) -> str:
    """The method with its params (and its id when the suite named it): "prune.magnitude sparsity=0.5"."""
    name = str(r.get("method_id") or r.get("method"))
    params = fmt_params(r.get("params"))
    return f"{name} {params}" if params else name


def variant_label(r: dict[str, Any], key: str) -> str:
    """A dataset or backend with its non-null params: "cpu(threads=1)"."""
    params = r.get(f"{key}_params") or {}
    params = {k: v for k, v in params.items() if v is not None} if isinstance(params, dict) else {}
    name = str(r.get(key))
    return f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})" if params else name


def md_cell(text: Any) -> str:
    """Text safe inside a markdown table cell: no pipes, no line breaks, no HTML tags (names come from
    suites and plugins; GitHub renders HTML in a comment)."""
    text = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.split())


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] = ()) -> str:
    """A GitHub-flavoured markdown table; ``right[i]`` right-aligns column i (numbers)."""
    align = ["---:" if i < len(right) and right[i] else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(md_cell(h) for h in headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(md_cell(c) or " " for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _status_text(r: dict[str, Any], width: int = 60) -> str:
    status = str(r.get("status") or "?")
    if status == "ok" or not r.get("error"):
        return status
    error = " ".join(str(r["error"]).split())
    return f"{status}: {error if len(error) <= width else error[: width - 1] + '…'}"


def _row_order(r: dict[str, Any]) -> tuple:
    """Per model, dataset and backend: baseline first, then methods by name; batch sizes together."""
    b = r.get("batch_size")
    return (str(r.get("model")), variant_label(r, "dataset"), variant_label(r, "backend"),
            r.get("method") != "baseline", method_label(r), str(r.get("seed")),
            not isinstance(b, (int, float)), b if isinstance(b, (int, float)) else 0)


MARKDOWN_COLUMNS = ("model", "dataset", "method", "backend", "batch", "status", "p50 ms", "speedup",
                    "accuracy", "Δ accuracy", "size ratio", "gate", "noisy")
NUMERIC_COLUMNS = ("batch", "p50 ms", "speedup", "accuracy", "Δ accuracy", "size ratio")
FOLDABLE = ("dataset", "backend")  # the same on every row: said once above the table instead


def markdown_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """One row per record in MARKDOWN_COLUMNS order, sorted as the report groups them."""
    seeds = {r.get("seed") for r in records}
    out = []
    for r in sorted(records, key=_row_order):
        gate = r.get("passes_gate")
        method = method_label(r) + (f" (seed {r.get('seed')})" if len(seeds) > 1 else "")
        batch = r.get("batch_size")
        out.append([
            str(r.get("model")), variant_label(r, "dataset"), method, variant_label(r, "backend"),
            str(batch) if isinstance(batch, int) else NULL,
            _status_text(r), fmt_ms(r.get("latency_p50_ms")), fmt_number(r.get("speedup"), ".2f"),
            fmt_number(r.get("accuracy"), ".4f"), fmt_number(r.get("accuracy_delta"), "+.4f"),
            fmt_number(r.get("size_ratio"), ".2f"), NULL if gate is None else ("pass" if gate else "**fail**"),
            "noisy" if r.get("noisy") else "",
        ])
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
    head = [f"**{md_cell(suite)}** run `{md_cell(run_id)}`: {len(records)} records ({counts_text})"]
    machine = machine_label(env)
    if machine:
        head.append(f"machine: {md_cell(machine)}" + (f", torch {md_cell(env['torch'])}" if env.get("torch") else ""))
    if not records:
        return "  \n".join(head) + "\n\n_No records: the run has not finished any cell yet._\n"
    rows = markdown_rows(records)
    columns = list(MARKDOWN_COLUMNS)
    for name in FOLDABLE:
        i = columns.index(name)
        values = {row[i] for row in rows}
        if len(values) == 1:
            head.append(f"{name}: {md_cell(values.pop())}")
            columns.pop(i)
            rows = [row[:i] + row[i + 1:] for row in rows]
    table = markdown_table(columns, rows, [c in NUMERIC_COLUMNS for c in columns])
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
    df = flat_frame(frame(_rows(groups)))
    if fmt == "csv":
        return _write_text(df.to_csv(index=False, lineterminator="\n"), out)
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
