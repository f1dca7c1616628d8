"""Records: one flat JSON object per cell x batch size, appended to records.jsonl.

The file is append-only. Each cell's records are written in one ``write`` followed by
``flush`` and ``fsync`` as the cell ends, so a run killed at any moment loses no
finished cell. A torn last line (the process died mid-write) is ignored on reading
and cut off before the next append. When a cell appears more than once (a resumed
run reran it), the last record for each (cell_id, batch_size) wins.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
    "speedup",
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
    "duration_s",
    "started_at",
)
STATUSES = ("ok", "failed", "oom", "timeout", "skipped")
#: Fields computed against the baseline record of the same model, dataset, backend, batch size.
RELATIVE_FIELDS = ("speedup", "theoretical_speedup", "size_ratio", "accuracy_delta")


def baseline_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """Records compared with each other: same model, dataset and backend (params included),
    seed and batch size."""

    def canon(value: Any) -> str:
        return json.dumps(value or {}, sort_keys=True)

    return (
        record["model"], record["dataset"], canon(record.get("dataset_params")),
        record["backend"], canon(record.get("backend_params")), record.get("seed"), record["batch_size"],
    )


def add_relative_figures(record: dict[str, Any], baseline: dict[str, Any] | None, gate: Any = None) -> dict[str, Any]:
    """Fill the baseline-relative figures from the matching baseline record.

    speedup = baseline p50 / p50 (above 1 is faster); theoretical_speedup = baseline
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
    record["speedup"] = ratio(b.get("latency_p50_ms"), record.get("latency_p50_ms")) if ok else None
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


def fill_relative_figures(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recompute the relative figures of every record from the baselines among them."""
    baselines = {baseline_key(r): r for r in records if r.get("method") == "baseline"}
    for r in records:
        add_relative_figures(r, baselines.get(baseline_key(r)))
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


def read_records(path: Path, *, latest_only: bool = True) -> list[dict[str, Any]]:
    """Read records.jsonl, skipping a torn or unparsable line instead of failing.

    With ``latest_only`` the last record of each (cell_id, batch_size) is kept, in
    the order each key first appeared.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RECORDS_FILE
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # torn tail from a killed writer
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    if not latest_only:
        return rows
    latest: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in rows:
        latest[(row.get("cell_id"), row.get("batch_size"))] = row
    return list(latest.values())
