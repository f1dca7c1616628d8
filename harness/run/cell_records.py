"""A finished cell's records: assembled from typed parts, given their baseline-relative figures, appended.

A record is the parts of one measured point: what the run says it measured (``identity``), how the
cell ended, the timing summary of the point's samples, and the parts the cell measured
(``CellResult``). The record schema assembles them; every field of the core and of the cell's
plugins is present, null where not measured.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from harness.measure.stats import summarize
from harness.record.schema import RecordPart, RecordSchema, RecordSchemaError
from harness.record.status import BASELINE, STATUSES, WORST_FIRST, Status
from harness.registry.manager import Registry
from harness.results import records as rec
from harness.run.executor import Outcome
from harness.run.progress import Progress
from harness.suite.matrix import Cell, method_steps
from harness.suite.schema import Suite


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def identity(cell: Cell, run_id: str, suite: Suite, bs: int, prompt: int | None = None) -> dict[str, Any]:
    """What a record of ``cell`` at one point says it measured (the fields of the identity group)."""
    return {
        "run_id": run_id,
        "cell_id": cell.cell_id,
        "suite": suite.name,
        "model": cell.model.id or cell.model.name,
        "model_name": cell.model.name,
        "dataset": cell.dataset.id or cell.dataset.name,
        "dataset_name": cell.dataset.name,
        "dataset_params": cell.dataset.params,
        "method": cell.method.name,
        "method_kind": cell.method.kind,
        "method_id": cell.method.id,
        "params": cell.method.params,
        "search_params": list(cell.method.search),
        "train": cell.train,
        "backend": cell.backend.name,
        "backend_params": cell.backend.params,
        "reference_backend": cell.reference.name if cell.reference else None,
        "reference_backend_params": cell.reference.params if cell.reference else None,
        "batch_size": bs,
        "prompt_tokens": prompt,
        "new_tokens": suite.measure.generate.new_tokens if prompt is not None and suite.measure.generate else None,
        "seed": cell.seed,
    }


def cell_plugins(cell: Cell, registry: Registry) -> list[Any]:
    """The registered objects a cell uses: its backend, model, dataset and every method step."""
    objects = [registry.backends.get(cell.backend.name), registry.models.get(cell.model.name),
               registry.datasets.get(cell.dataset.name)]
    objects += [registry.methods.get(step["name"]) for step in method_steps(cell.method)]
    return [o for o in objects if o is not None]


def records_for(cell: Cell, outcome: Outcome, run_id: str, suite: Suite, samples: dict[str, list[int]],
                started_at: str, registry: Registry) -> list[dict[str, Any]]:
    """The records of one finished cell, a point each, holding every field of the core and of the cell's
    plugins."""
    schema = registry.schema
    names = schema.owned_by(registry.owners(cell_plugins(cell, registry)))
    out = []
    for bs, prompt in cell.points:
        key = rec.point_key(bs, prompt)
        ended = {"status": outcome.status, "error": outcome.error, "duration_s": round(outcome.wall_s, 3),
                 "started_at": started_at}
        measured: list[RecordPart] = []
        if outcome.status == Status.OK and outcome.result is not None:
            ns = samples.get(key)
            if ns:
                measured = [RecordPart("timing", summarize(ns, bs)), *outcome.result.parts,
                            *outcome.result.points.get(key, [])]
            else:
                what = f"batch size {bs}" + (f", prompt {prompt} tokens" if prompt is not None else "")
                ended.update(status=Status.FAILED, error=f"no latency samples for {what}")
        parts = [RecordPart("the run", identity(cell, run_id, suite, bs, prompt)),
                 RecordPart("the cell's outcome", ended), *measured]
        out.append(_assemble(schema, parts, names))
    return out


def _assemble(schema: RecordSchema, parts: list[RecordPart], names: list[str]) -> dict[str, Any]:
    """One record from its parts; a record whose parts break the schema is failed with the reason (the cell
    checked its own parts: this is a part writing into the runner's fields, or a hand-made result)."""
    try:
        record = schema.assemble(parts)
    except RecordSchemaError as exc:
        record = schema.assemble(parts[:2])
        record.update(status=Status.FAILED, error=f"record: {exc}")
    return schema.normalise(record, names)


def cell_status(records: list[dict[str, Any]]) -> str:
    """One status for a cell from its records (one per batch size): the worst of them."""
    statuses = {r.get("status") for r in records}
    return next((s for s in WORST_FIRST if s in statuses), Status.OK)


def status_counts(records: list[dict[str, Any]], cells: list[Cell]) -> dict[str, int]:
    """Cells of this matrix per status, from the records written so far."""
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_cell.setdefault(r.get("cell_id"), []).append(r)
    counts = {s: 0 for s in STATUSES}
    for cell in cells:
        if cell.cell_id in by_cell:
            counts[cell_status(by_cell[cell.cell_id])] += 1
    return counts


class RecordWriter:
    """Appends each finished cell's records to the run's records.jsonl, with the figures relative to the
    baselines recorded so far, and says in the progress what a reader must know (a contended timing, a
    field's declared caveat)."""

    def __init__(self, run_dir: Path, run_id: str, suite: Suite, registry: Registry, progress: Progress,
                 baselines: dict[tuple, dict[str, Any]]) -> None:
        self.run_dir, self.run_id, self.suite, self.registry = run_dir, run_id, suite, registry
        self.progress, self.baselines = progress, baselines
        self.started: dict[str, str] = {}
        self.overheads: list[float] = []
        self.caveats = {name: f.caveat for name, f in registry.schema.fields.items() if f.caveat}

    def write(self, cell: Cell, outcome: Outcome) -> None:
        samples = _read_json(self.run_dir / "cells" / cell.cell_id / "samples.json") if outcome.status == Status.OK else {}
        new = records_for(cell, outcome, self.run_id, self.suite, samples or {},
                          self.started.get(cell.cell_id) or now(), self.registry)
        for r in new:
            if r["method"] == BASELINE and r["status"] == Status.OK:
                self.baselines[rec.baseline_key(r)] = r
            rec.add_relative_figures(r, self.baselines.get(rec.baseline_key(r)), self.suite.accuracy_gate)
            # the reference backend's baseline, when it has run (readers recompute it from every record)
            rec.add_reference_speedup(r, self.baselines.get(rec.reference_key(r)))
        rec.append_records(self.run_dir / rec.RECORDS_FILE, new)
        self._warn(cell, new)
        if outcome.overhead_s is not None:
            self.overheads.append(outcome.overhead_s)
        self.progress.cell_finished(cell.label, cell_status(new), outcome.wall_s, outcome.error or new[0].get("error"))

    def _warn(self, cell: Cell, new: list[dict[str, Any]]) -> None:
        def sizes(rs: list[dict[str, Any]]) -> str:
            return f"batch size{'s' * (len(rs) > 1)} {', '.join(str(r['batch_size']) for r in rs)}"

        for name, caveat in self.caveats.items():
            flagged = [r for r in new if isinstance(r.get(name), (bool, int, float)) and r[name]]
            if flagged:
                self.progress.line(f"warning: {cell.label}: {caveat} ({sizes(flagged)})")
        contended = [r for r in new if r.get("contended")]
        if contended:
            self.progress.line(f"warning: {cell.label}: contended at {sizes(contended)}: "
                               f"{contended[0].get('contended_reason')}; its latency is marked contended and left "
                               "out of rankings")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
