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
from harness.record.schema import RecordSchema, bad_number
from harness.record.status import BASELINE, Status
from harness.registry.installed_schema import installed_schema
from harness.results.labels import printable

RECORDS_FILE = "records.jsonl"

#: At most this many warnings per file read; then one saying how many more lines were bad.
MAX_WARNINGS = 20
_INT_LIMIT = 2**63  # what an int64 column (pandas, parquet) holds; past it a float overflows soon


class RecordWarning(UserWarning):
    """A line of records.jsonl that was skipped, or whose bad fields were read as null."""


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
    if kinds <= {int, float} and not any(bad_number(v) for v in values):
        return values
    return None


def validate_record(obj: Any, schema: RecordSchema | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """Check one parsed line of records.jsonl against ``schema`` (default: the fields of the harness and the
    plugins installed here): ``(record, problem)``, as ``harness.record.schema.RecordSchema.validate``."""
    return (schema or installed_schema()).validate(obj)


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
    accuracy_delta = accuracy - baseline accuracy; quality_delta and quality_ratio, the quality metric against
    the baseline's same metric, and metrics_delta for every metric both have. Null when either side lacks
    the figure, or when the method changed the task (``task_changed``: transfer learning).
    With a ``gate`` (harness.suite.schema.AccuracyGate: a metric against the baseline's and/or a floor, and/or
    minimum agreement and cosine), passes_gate too; without one, passes_gate is left as it is.
    """

    def ratio(num: Any, den: Any) -> float | None:
        if num is None or den is None or den == 0:
            return None
        return float(num) / float(den)

    ok = baseline is not None and baseline.get("status") == Status.OK and record.get("status") == Status.OK
    b = baseline or {}
    if record.get("status") == Status.OK and record.get("paired_speedup") is not None:
        # Timed against the baseline in alternating blocks of one process: the pairs' ratio, with its interval.
        record["speedup"] = record["paired_speedup"]
    else:
        record["speedup"] = ratio(b.get("latency_p50_ms"), record.get("latency_p50_ms")) if ok else None
        if record.get("method") == BASELINE and record["speedup"] is not None:
            record["speedup_ci_low"] = record["speedup_ci_high"] = record["speedup"]  # exactly 1
    record["theoretical_speedup"] = ratio(b.get("effective_flops"), record.get("effective_flops")) if ok else None
    record["size_ratio"] = ratio(b.get("model_bytes"), record.get("model_bytes")) if ok else None
    acc, bacc = record.get("accuracy"), b.get("accuracy")
    if record.get("task_changed"):  # evaluated on another task (transfer): not comparable
        acc = None
    record["accuracy_delta"] = (acc - bacc) if ok and acc is not None and bacc is not None else None
    _quality_figures(record, b if ok and not record.get("task_changed") else None)
    if gate is not None:
        value, base_value, higher = _gated(record, b, gate.metric) if ok else (None, None, True)
        record["passes_gate"] = gate.verdict(value, base_value, record.get("agreement"), record.get("cosine"),
                                             higher) if ok else None
    return record


def _numbers(obj: Any) -> dict[str, float]:
    """A record's ``metrics`` as {id: finite number}, whatever a hand edit left there."""
    if not isinstance(obj, dict):
        return {}
    return {k: float(v) for k, v in obj.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v)}


def _quality_figures(record: dict[str, Any], baseline: dict[str, Any] | None) -> None:
    """quality_delta, quality_ratio (against the baseline's score of the same metric) and metrics_delta."""
    record["quality_delta"] = record["quality_ratio"] = record["metrics_delta"] = None
    if baseline is None:
        return
    q, bq = record.get("quality"), baseline.get("quality")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (q, bq))
    if numbers and record.get("quality_metric") == baseline.get("quality_metric"):
        record["quality_delta"] = q - bq
        record["quality_ratio"] = q / bq if bq else None
    mine, theirs = _numbers(record.get("metrics")), _numbers(baseline.get("metrics"))
    if mine and theirs:
        record["metrics_delta"] = {k: mine[k] - theirs[k] for k in mine if k in theirs}


def _gated(record: dict[str, Any], baseline: dict[str, Any], metric: str | None) -> tuple[Any, Any, bool]:
    """(the record's score, the baseline's, whether higher is better) of the metric a gate judges: ``metric`` by
    id, else the record's quality (accuracy for a record written before quality was)."""
    higher = record.get("quality_higher_is_better") is not False
    if record.get("task_changed"):
        return None, None, higher
    if metric is None:
        if record.get("quality_metric") is None and baseline.get("quality_metric") is None:
            return record.get("accuracy"), baseline.get("accuracy"), True
        return record.get("quality"), baseline.get("quality"), higher
    mine, theirs = _numbers(record.get("metrics")), _numbers(baseline.get("metrics"))
    lower = record.get("lower_is_better") if isinstance(record.get("lower_is_better"), list) else []
    return mine.get(metric, record.get(metric)), theirs.get(metric, baseline.get(metric)), metric not in lower


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
    ok = reference is not None and reference.get("status") == Status.OK and record.get("status") == Status.OK
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
    baselines = {baseline_key(r): r for r in records if r.get("method") == BASELINE}
    for r in records:
        add_relative_figures(r, baselines.get(baseline_key(r)))
    for r in records:  # after every speedup is set: a reference record's is read
        key = reference_key(r)
        if key is not None:
            add_reference_speedup(r, baselines.get(key))
    return records


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
    """Append records as JSON lines in a single write, then flush and fsync. Each record is written as it
    is: the runner gives every field its cell's records hold (``RecordSchema.normalise``)."""
    payload = "".join(json.dumps(r, allow_nan=False, default=str) + "\n" for r in records)
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
    schema = installed_schema()
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
                record, problem = schema.validate(obj)
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
