"""What a cell's steps share while it runs (``harness.run.cell_scenario``): the plan, the open backend,
the data, the method's model and the baseline's copy, and the memory floor figures are read against.

The step interfaces are here too: a quality step reads what it needs of the baseline while its copy is
held, then gives the record parts of the method's quality; a latency step times every measured point.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from harness.measure.timing import Budget
from harness.plugin.types import BackendSession, DatasetSplits, MethodContext
from harness.record.schema import RecordPart
from harness.registry.manager import PluginManager
from harness.run.cell_payload import CellPayload
from harness.run.cell_plan import CellPlan


@dataclass
class CellState:
    payload: CellPayload
    plan: CellPlan
    pm: PluginManager
    session: BackendSession
    #: The data the method's model is measured on (a transfer method's target task, after the method).
    data: DatasetSplits
    #: The baseline's task: its outputs are read on it.
    base_data: DatasetSplits
    model: Any = None
    ctx: MethodContext | None = None
    #: Whether the model's weights mean anything (random weights give speed and size, not quality).
    meaningful: bool = True
    #: A copy of the trained baseline, prepared for the backend: the fidelity reference and, when paired, what
    #: the method is timed against (None when not made, or once quality no longer needs it and timing does not).
    baseline_copy: Any = None
    #: The copy timing pairs with, or None; ``unpaired`` then says why.
    pair_with: Any = None
    unpaired: str | None = None
    #: RSS just before the model was built: memory figures are read above it.
    rss_before_model: int = 0
    #: Bytes of the baseline's copy held while the method was applied (left out of its setup peak).
    held_bytes: int = 0

    @property
    def seed(self) -> int:
        return self.payload.cell.seed

    @property
    def warmup(self) -> Budget:
        return Budget(**self.payload.measure.warmup.model_dump())

    @property
    def repeat(self) -> Budget:
        return Budget(**self.payload.measure.repeat.model_dump())

    @property
    def backend_name(self) -> str:
        return self.plan.backend.name


class QualityStep(abc.ABC):
    """How a cell's quality is measured: against the baseline's copy while it is held, then on its own."""

    def against_baseline(self, state: CellState) -> None:
        """Read what this step needs of the baseline (its outputs on the held-out inputs); called once the
        method's model has taken its first input, while ``state.baseline_copy`` is held."""

    @abc.abstractmethod
    def parts(self, state: CellState) -> list[RecordPart]:
        """The record parts of the method's quality."""


class LatencyStep(abc.ABC):
    """How a cell's speed is measured: one record per point (a batch size, and a prompt length)."""

    @abc.abstractmethod
    def measure(self, state: CellState) -> tuple[dict[str, list[RecordPart]], dict[str, list[int]]]:
        """(the record parts of each point, the raw latency samples in ns of each point), keyed by
        ``harness.results.records.point_key``."""
