"""Records: one flat JSON object per cell x batch size, appended to records.jsonl.

The file is append-only. Each cell's records are written in one ``write`` followed by
``flush`` and ``fsync`` as the cell ends, so a run killed at any moment loses no
finished cell. A torn last line (the process died mid-write) is ignored on reading
and cut off before the next append. When a cell appears more than once (a resumed
run reran it), the last record for each (cell_id, batch_size, prompt_tokens) wins.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from harness.errors import OptbenchError
from harness.results.labels import printable

RECORDS_FILE = "records.jsonl"

#: Every record carries these keys, in this order (null where not measured).
FIELDS: tuple[str, ...] = (
    "run_id",
    "cell_id",
    "suite",
    "model",
    "dataset",
    "dataset_params",
    "method",
    "method_kind",
    "method_id",
    "params",
    "search_params",
    "train",
    "backend",
    "backend_params",
    "seed",
    "batch_size",
    "prompt_tokens",
    "new_tokens",
    "status",
    "error",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "latency_mean_ms",
    "latency_std_ms",
    "latency_iqr_ms",
    "latency_n",
    "noisy",
    "throughput_per_s",
    "host_peak_mb",
    "host_other_cpu",
    "host_run_wait",
    "device_peak_allocated_mb",
    "device_peak_reserved_mb",
    "device_used_mb",
    "energy_j_per_sample",
    "mean_power_w",
    "gpu_other_processes",
    "world_size",
    "ranks_used",
    "rank_p50_ms",
    "rank_p99_ms",
    "scaling_efficiency",
    "model_bytes",
    "serialized_bytes",
    "bits_per_param",
    "params_count",
    "nonzero_params",
    "flops",
    "effective_flops",
    "accuracy",
    "top5_accuracy",
    "agreement",
    "kl_div",
    "cosine",
    "max_abs_err",
    "fidelity_n",
    "perplexity",
    "nll_per_token",
    "baseline_perplexity",
    "ppl_ratio",
    "perplexity_tokens",
    "perplexity_window",
    "perplexity_stride",
    "ttft_p50_ms",
    "ttft_p90_ms",
    "tpot_p50_ms",
    "tpot_p90_ms",
    "e2e_p50_ms",
    "prefill_tokens_per_s",
    "decode_tokens_per_s",
    "generations_n",
    "first_generation_ms",
    "kv_cache_mb",
    "baseline_ttft_p50_ms",
    "baseline_tpot_p50_ms",
    "ttft_speedup",
    "decode_speedup",
    "speedup",
    "speedup_ci_low",
    "speedup_ci_high",
    "paired",
    "unpaired_reason",
    "baseline_p50_ms",
    "paired_speedup",
    "pair_blocks",
    "precision_reached",
    "contended",
    "contended_reason",
    "contention_retries",
    "timing_s",
    "theoretical_speedup",
    "size_ratio",
    "accuracy_delta",
    "passes_gate",
    "setup_s",
    "setup_peak_mb",
    "compile_s",
    "finetuned",
    "train_time_s",
    "epochs_run",
    "steps_run",
    "grad_evals",
    "final_accuracy",
    "best_accuracy",
    "final_loss",
    "final_objective",
    "loss_floor",
    "target_accuracy",
    "target_loss",
    "time_to_target_s",
    "epochs_to_target",
    "steps_to_target",
    "diverged",
    "train_labels",
    "train_samples_per_s",
    "train_single_rank_samples_per_s",
    "train_scaling_efficiency",
    "train_skipped_steps",
    "reference_accuracy",
    "accuracy_gain",
    "pretrain_s",
    "task_changed",
    "threads",
    "runtime",
    "runtime_version",
    "provider",
    "exporter",
    "export_s",
    "quantize_s",
    "onnx_bytes",
    "ir_bytes",
    "default_precision",
    "runtime_precision",
    "precision_ops",
    "reference_backend",
    "reference_backend_params",
    "reference_speedup",
    "duration_s",
    "started_at",
)
STATUSES = ("ok", "failed", "oom", "timeout", "skipped")
#: Fields computed against the baseline record of the same model, dataset, backend, batch size.
RELATIVE_FIELDS = ("speedup", "theoretical_speedup", "size_ratio", "accuracy_delta")

# What each field holds, for ``validate_record``. A field of FIELDS in none of these is a number:
# a new field that is not must be listed here, or every reader reads it as null.
#: Text that every reader keys on or labels a row with: a record without it is skipped.
REQUIRED_TEXT = ("cell_id", "model", "dataset", "method", "backend", "status")
#: Text or null (``model_name`` and ``dataset_name`` are written too, though not in FIELDS).
TEXT_FIELDS = ("run_id", "cell_id", "suite", "model", "model_name", "dataset", "dataset_name", "method",
               "method_kind", "method_id", "backend", "status", "error", "started_at", "unpaired_reason",
               "contended_reason", "runtime", "runtime_version", "provider", "exporter", "default_precision",
               "runtime_precision", "precision_ops", "reference_backend")
BOOL_FIELDS = ("noisy", "passes_gate", "finetuned", "diverged", "task_changed", "paired", "precision_reached",
               "contended")
#: Objects (params) or null.
DICT_FIELDS = ("dataset_params", "params", "train", "backend_params", "reference_backend_params")
#: Lists or null.
LIST_FIELDS = ("search_params", "rank_p50_ms", "rank_p99_ms")
#: Numbers or null: every other field of FIELDS (latencies, sizes, accuracies, seconds, counts, seed).
NUMERIC_FIELDS = tuple(f for f in FIELDS if f not in (*TEXT_FIELDS, *BOOL_FIELDS, *DICT_FIELDS, *LIST_FIELDS,
                                                      "batch_size"))
#: At most this many warnings per file read; then one saying how many more lines were bad.
MAX_WARNINGS = 20
_INT_LIMIT = 2**63  # what an int64 column (pandas, parquet) holds; past it a float overflows soon


class RecordWarning(UserWarning):
    """A line of records.jsonl that was skipped, or whose bad fields were read as null."""


def _shown(value: Any, limit: int = 60) -> str:
    """A value as a warning quotes it: ascii() (no control character reaches a terminal), cut short."""
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bad_number(value: Any) -> bool:
    """A bool, a non-number, NaN or infinity, or an int no float or int64 column holds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    if isinstance(value, int):
        return abs(value) >= _INT_LIMIT
    return not math.isfinite(value)


def cell_folder(run_dir: Path, cell_id: Any) -> Path | None:
    """``run_dir/cells/<cell_id>``, or None when the cell_id could name another folder (a path
    separator, "..", a NUL: a hand-edited record), which then is not read."""
    if not isinstance(cell_id, str) or cell_id in ("", ".", "..") or any(c in cell_id for c in "/\\\0"):
        return None
    return Path(run_dir) / "cells" / cell_id


def own_file(run_dir: Path, path: Path) -> bool:
    """Whether ``path`` is a regular file of the run folder itself: neither it nor a folder between it
    and ``run_dir`` is a symbolic link (a link planted in a run folder is never followed by a reader)."""
    run_dir, path = Path(run_dir), Path(path)
    try:
        rel = path.relative_to(run_dir)
    except ValueError:
        return False
    here = run_dir
    for part in rel.parts:
        here = here / part
        if here.is_symlink():
            return False
    return path.is_file()


def latency_samples(values: Any) -> list[float] | None:
    """A batch size's raw per-call latencies (ns) from a cell's samples.json, or None unless they are a
    non-empty list of finite numbers (a hand-edited or truncated file is not judged on)."""
    if not isinstance(values, list) or not values:
        return None
    kinds = set(map(type, values))  # the checks below run in C: a run's files hold millions of samples
    if kinds == {int}:
        return values if -_INT_LIMIT < min(values) and max(values) < _INT_LIMIT else None
    if kinds == {float}:
        return values if all(map(math.isfinite, values)) else None
    if kinds <= {int, float} and not any(_bad_number(v) for v in values):
        return values
    return None


def validate_record(obj: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Check one parsed line of records.jsonl: ``(record, problem)``.

    ``(None, problem)``: not a record a reader can use (not an object; cell_id, model, dataset,
    method, backend or status missing or not text; cell_id empty; batch_size not a positive
    integer; run_id neither text nor null). A cell_id is not a safe folder name for that: whoever
    opens cells/<cell_id>/ checks it (``cell_folder``). ``(record, problem)``:
    usable, with the fields of the wrong type read as null (a copy; ``problem`` says which).
    ``(record, None)``: the record as it was. Numbers must be finite (NaN and infinity are
    read as null, in any field); a bool is not a number. Fields outside FIELDS are kept as they are.
    """
    if not isinstance(obj, dict):
        return None, f"not a JSON object (a {type(obj).__name__})"
    fatal = []
    for key in REQUIRED_TEXT:
        if key not in obj or obj[key] is None:
            fatal.append(f"{key} missing")
        elif not isinstance(obj[key], str):
            fatal.append(f"{key} is {_shown(obj[key])}, not text")
    if obj.get("cell_id") == "":
        fatal.append("cell_id is empty")
    bs = obj.get("batch_size")
    if "batch_size" not in obj or bs is None:
        fatal.append("batch_size missing")
    elif isinstance(bs, bool) or not isinstance(bs, int) or not 0 < bs < _INT_LIMIT:
        fatal.append(f"batch_size is {_shown(bs)}, not a positive integer")
    if obj.get("run_id") is not None and not isinstance(obj["run_id"], str):
        fatal.append(f"run_id is {_shown(obj['run_id'])}, not text")
    if fatal:
        return None, "; ".join(fatal)
    nulled = []
    for key, value in obj.items():
        if value is None:
            continue
        if key in TEXT_FIELDS:
            bad = not isinstance(value, str)
            want = "text"
        elif key in BOOL_FIELDS:
            bad = not isinstance(value, bool)
            want = "true or false"
        elif key in DICT_FIELDS:
            bad = not isinstance(value, dict)
            want = "an object"
        elif key in LIST_FIELDS:
            bad = not isinstance(value, list)
            want = "a list"
        elif key in NUMERIC_FIELDS:
            bad = _bad_number(value)
            want = "a finite number"
        else:  # a field of a plugin's own: any JSON value, but a number must be finite
            bad = isinstance(value, float) and not math.isfinite(value)
            want = "a finite number"
        if bad:
            nulled.append((key, f"{key} is {_shown(value)}, not {want}"))
    if not nulled:
        return obj, None
    record = {**obj, **{key: None for key, _ in nulled}}
    return record, "; ".join(text for _, text in nulled) + " (read as null)"


def point_key(batch_size: Any, prompt_tokens: Any = None) -> str:
    """The key of one measured point of a cell (its samples, its per-point results): the batch size,
    and a generation record's prompt length after an ``@``."""
    return str(batch_size) if prompt_tokens is None else f"{batch_size}@{prompt_tokens}"


def record_point(record: dict[str, Any]) -> str:
    """``point_key`` of a record."""
    return point_key(record.get("batch_size"), record.get("prompt_tokens"))


def baseline_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """Records compared with each other: same model, dataset and backend (params included),
    seed, batch size and (for generation) prompt length."""

    def canon(value: Any) -> str:
        return json.dumps(value or {}, sort_keys=True)

    return (
        record["model"], record["dataset"], canon(record.get("dataset_params")),
        record["backend"], canon(record.get("backend_params")), record.get("seed"), record["batch_size"],
        record.get("prompt_tokens"),
    )


def add_relative_figures(record: dict[str, Any], baseline: dict[str, Any] | None, gate: Any = None) -> dict[str, Any]:
    """Fill the baseline-relative figures from the matching baseline record.

    speedup = baseline p50 / p50 (above 1 is faster), or for a cell timed paired with its baseline
    (``paired_speedup``) the ratio of the pairs, whose interval is already in the record; theoretical_speedup = baseline
    effective_flops / effective_flops (what skipping every zero weight would give);
    size_ratio = baseline model_bytes / model_bytes (above 1 is smaller);
    accuracy_delta = accuracy - baseline accuracy. Null when either side lacks the
    figure, or when the method changed the task (``task_changed``: transfer learning).
    With a ``gate`` (harness.suite.schema.AccuracyGate: accuracy against the baseline's, and/or
    minimum agreement and cosine), passes_gate too; without one, passes_gate is left as it is.
    """

    def ratio(num: Any, den: Any) -> float | None:
        if num is None or den is None or den == 0:
            return None
        return float(num) / float(den)

    ok = baseline is not None and baseline.get("status") == "ok" and record.get("status") == "ok"
    b = baseline or {}
    if record.get("status") == "ok" and record.get("paired_speedup") is not None:
        # Timed against the baseline in alternating blocks of one process: the pairs' ratio, with its interval.
        record["speedup"] = record["paired_speedup"]
    else:
        record["speedup"] = ratio(b.get("latency_p50_ms"), record.get("latency_p50_ms")) if ok else None
        if record.get("method") == "baseline" and record["speedup"] is not None:
            record["speedup_ci_low"] = record["speedup_ci_high"] = record["speedup"]  # exactly 1
    record["theoretical_speedup"] = ratio(b.get("effective_flops"), record.get("effective_flops")) if ok else None
    record["size_ratio"] = ratio(b.get("model_bytes"), record.get("model_bytes")) if ok else None
    acc, bacc = record.get("accuracy"), b.get("accuracy")
    if record.get("task_changed"):  # evaluated on another task (transfer): not comparable
        acc = None
    record["accuracy_delta"] = (acc - bacc) if ok and acc is not None and bacc is not None else None
    if gate is not None:
        record["passes_gate"] = gate.verdict(acc if ok else None, bacc if ok else None,
                                             record.get("agreement"), record.get("cosine")) if ok else None
    return record


def reference_key(record: dict[str, Any]) -> tuple[Any, ...] | None:
    """The baseline key of the record's reference: the same model, dataset, seed and batch size on
    the suite's ``reference_backend`` (None for a record that names no reference)."""
    if not record.get("reference_backend"):
        return None
    return baseline_key({**record, "backend": record["reference_backend"],
                         "backend_params": record.get("reference_backend_params")})


def add_reference_speedup(record: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    """reference_speedup = the reference backend's baseline p50 / this record's p50 (above 1 is
    faster than the reference baseline), so methods on different backends rank on one scale. On the
    reference backend itself it is the record's ``speedup`` (paired, where it was timed paired);
    across backends it is a plain ratio of medians measured in different processes. Null when
    either is not ok, or the reference baseline is missing."""
    ok = reference is not None and reference.get("status") == "ok" and record.get("status") == "ok"
    if not ok:
        record["reference_speedup"] = None
    elif baseline_key(record) == baseline_key(reference):  # the reference backend's own records
        record["reference_speedup"] = record.get("speedup")
    else:
        num, den = reference.get("latency_p50_ms"), record.get("latency_p50_ms")
        record["reference_speedup"] = float(num) / float(den) if num is not None and den else None
    return record


def fill_relative_figures(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recompute the relative figures of every record from the baselines among them."""
    baselines = {baseline_key(r): r for r in records if r.get("method") == "baseline"}
    for r in records:
        add_relative_figures(r, baselines.get(baseline_key(r)))
    for r in records:  # after every speedup is set: a reference record's is read
        key = reference_key(r)
        if key is not None:
            add_reference_speedup(r, baselines.get(key))
    return records


def normalise(record: dict[str, Any]) -> dict[str, Any]:
    """Order the known fields first and give every one of them a value (null if absent)."""
    out = {k: record.get(k) for k in FIELDS}
    out.update({k: v for k, v in record.items() if k not in out})
    return out


def repair_torn_tail(path: Path) -> int:
    """Cut a partial last line left by a killed writer; returns the bytes removed."""
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # Walk back to the last newline; everything after it is torn.
        pos = size - 1
        chunk = 4096
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            data = f.read(pos - start)
            idx = data.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                break
            pos = start
        else:
            keep = 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        return size - keep


def append_records(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Append records as JSON lines in a single write, then flush and fsync."""
    payload = "".join(json.dumps(normalise(r), allow_nan=False, default=str) + "\n" for r in records)
    if not payload:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def parse_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """``(line number, record, problem)`` for each complete, non-blank line of a records file, as
    ``validate_record`` judges it (``record`` None: the line is unusable). A torn last line (no
    newline: a killed writer) is not yielded. Raises OptbenchError when the file cannot be read."""
    path = Path(path)
    if path.is_symlink():
        raise OptbenchError(f"{printable(path)}: is a symbolic link; a run's records are read only from its own "
                            "folder, never through a link")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                if not line.endswith("\n"):
                    break  # torn tail from a killed writer
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError) as exc:  # JSONDecodeError, too many digits, too deep
                    yield number, None, f"not JSON ({ascii(str(exc))[1:-1][:80]})"
                    continue
                record, problem = validate_record(obj)
                yield number, record, problem
    except OSError as exc:
        raise OptbenchError(f"{printable(path)}: cannot read ({exc.strerror or exc})") from None


_warned: set[tuple[Any, ...]] = set()  # (file, its size and mtime, message): said once per process


def _warn_once(path: Path, message: str) -> None:
    """A RecordWarning, unless this process already gave it for this file as it is now (the report,
    an export and the site may read one file several times; an edited file is warned about anew)."""
    try:
        st = path.stat()
        key: tuple[Any, ...] = (str(path.resolve()), st.st_size, st.st_mtime_ns, message)
    except OSError:
        key = (str(path), message)
    if key in _warned:
        return
    if len(_warned) > 100_000:
        _warned.clear()
    _warned.add(key)
    warnings.warn(message, RecordWarning, stacklevel=4)


def iter_records(path: Path, *, warn: bool = True) -> Iterator[dict[str, Any]]:
    """The usable records of a records file, in file order; with ``warn``, a ``RecordWarning`` per
    bad line naming the file, the line and what was wrong (at most MAX_WARNINGS, then one with the
    count of the rest; each once per process while the file is unchanged)."""
    path = Path(path)
    shown = more = 0
    for number, record, problem in parse_lines(path):
        if problem is not None and warn:
            if shown < MAX_WARNINGS:
                what = "line skipped: " if record is None else ""
                _warn_once(path, f"{printable(path)}:{number}: {what}{problem}")
                shown += 1
            else:
                more += 1
        if record is not None:
            yield record
    if more:
        _warn_once(path, f"{printable(path)}: {more} more bad lines (skipped, or fields read as null)")


def read_records(path: Path, *, latest_only: bool = True, warn: bool = True) -> list[dict[str, Any]]:
    """Read records.jsonl, skipping a torn or bad line instead of failing (``iter_records``:
    with ``warn``, one RecordWarning per bad line, naming the file and line; fields of the
    wrong type read as null). Raises OptbenchError only when the file exists but cannot be read.

    With ``latest_only`` the last record of each (cell_id, batch_size, prompt_tokens) is kept, in
    the order each key first appeared.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RECORDS_FILE
    if not path.exists():
        return []
    rows = list(iter_records(path, warn=warn))
    if not latest_only:
        return rows
    latest: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in rows:
        latest[(row.get("cell_id"), row.get("batch_size"), row.get("prompt_tokens"))] = row
    return list(latest.values())
