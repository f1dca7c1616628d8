"""What crosses the process boundary of a cell, both ways, as typed objects.

``CellPayload`` goes to the cell's process (pickled by the executor): the cell as the matrix
expanded it, the suite's measurement and fine-tuning settings as the schema validated them (their
defaults live there and only there), how to rebuild the plugin manager, where to write, and the
cell's limits. ``CellResult`` comes back as ``result.json``: the cell's status and the record parts
it measured, once for the cell and once per measured point; the raw latency samples and training
curves go beside it (``samples.json``, ``curve.json``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.record.schema import RecordPart
from harness.record.status import STATUSES, Status
from harness.suite.matrix import Cell
from harness.suite.schema import Finetune, Measure

RESULT_FILE = "result.json"
SAMPLES_FILE = "samples.json"
CURVE_FILE = "curve.json"
LOG_FILE = "log.txt"


@dataclass(frozen=True)
class CellFiles:
    """Where a cell writes: its folder's log, result, samples and curves."""

    folder: str

    @property
    def log(self) -> Path:
        return Path(self.folder) / LOG_FILE

    @property
    def result(self) -> Path:
        return Path(self.folder) / RESULT_FILE

    @property
    def samples(self) -> Path:
        return Path(self.folder) / SAMPLES_FILE

    @property
    def curves(self) -> Path:
        return Path(self.folder) / CURVE_FILE


@dataclass(frozen=True)
class CellPayload:
    """Everything a cell's process is given."""

    cell: Cell
    measure: Measure
    plugins: dict[str, Any]
    files: CellFiles
    finetune: Finetune | None = None
    memory_limit_mb: float | None = None
    log_limit_mb: float | None = None

    def elsewhere(self, folder: str) -> CellPayload:
        """The same cell writing into ``folder`` (a node-local folder of a Ray task)."""
        return replace(self, files=CellFiles(folder))


@dataclass
class CellResult:
    """What a cell measured: its status (and error), the record parts every record of the cell shares, and
    the parts of each measured point (``point_key``: the batch size, and a generation record's prompt
    length), in the order they were written."""

    status: str
    error: str | None = None
    parts: list[RecordPart] = field(default_factory=list)
    points: dict[str, list[RecordPart]] = field(default_factory=dict)
    work_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        def parts(ps: list[RecordPart]) -> list[dict[str, Any]]:
            return [{"source": p.source, "values": dict(p.values)} for p in ps]

        return {"status": str(self.status), "error": self.error, "parts": parts(self.parts),
                "points": {k: parts(v) for k, v in self.points.items()}, "work_s": self.work_s}

    @classmethod
    def from_json(cls, data: Any) -> CellResult | None:
        """The result a cell wrote, or None when the file holds something else (a cell killed while it wrote
        cannot leave half a file: it is written to a temporary name and renamed)."""
        if not isinstance(data, dict) or data.get("status") not in STATUSES:
            return None

        def parts(items: Any) -> list[RecordPart]:
            return [RecordPart(str(p["source"]), dict(p["values"])) for p in items or []
                    if isinstance(p, dict) and isinstance(p.get("values"), dict)]

        points = data.get("points") if isinstance(data.get("points"), dict) else {}
        work = data.get("work_s")
        return cls(Status(data["status"]), data.get("error"), parts(data.get("parts")),
                   {str(k): parts(v) for k, v in points.items()},
                   float(work) if isinstance(work, (int, float)) and not isinstance(work, bool) else None)

    @classmethod
    def read(cls, path: Path) -> CellResult | None:
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError):
            return None


def write_json_atomic(path: Path, data: Any) -> None:
    """``data`` as JSON at ``path``, through a temporary file and a rename: a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)
