"""The metric contract: how a task's quality is scored on held-out data, against the baseline's.

A metric is registered like any plugin object (``Metric``: a name, a one-line description, params, and
``build(params, data)``), or named in a suite by reference: a torchmetrics class by its import path
(``torchmetrics.regression.R2Score``), or a user's own class or function (``metrics.py:evaluate``).
What ``build`` returns follows torchmetrics' contract (``MetricState``): ``update(outputs, targets)``
once per held-out batch, then ``compute()`` gives the score, a number. Each metric says whether a
higher score is better, which the gates, the deltas against the baseline and the views respect.

``outputs`` are what the model returned for the batch (a tensor, a dict such as ``{"out": ...}``, a list
of dicts for a detector), ``targets`` the batch's targets as the dataset gave them (class indices,
floats, multi-hot vectors, masks, or a list of dicts with boxes). ``prediction(outputs, targets)`` is the
tensor most metrics want: the model's main output tensor, squeezed to the targets' shape for a
one-value regression.
"""
from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from harness.plugin.targets import main_output
from harness.plugin.types import NoParams, Params

if TYPE_CHECKING:
    import torch

    from harness.plugin.types import DatasetSplits

class MetricState(abc.ABC):
    """One evaluation of a metric (torchmetrics' ``Metric`` qualifies as one)."""

    @abc.abstractmethod
    def update(self, outputs: Any, targets: Any) -> None:
        """Take one held-out batch: the model's outputs and the batch's targets."""

    @abc.abstractmethod
    def compute(self) -> Any:
        """The score over every batch taken (a number, or a 0-d tensor)."""

    def setup(self, model: Any, data: DatasetSplits, prepare: Callable[[Any], Any]) -> None:  # noqa: B027
        """Called once before the held-out pass with the model being scored, the cell's data and the backend's
        ``prepare_input``: for a metric that reads the model itself (a linear probe fits a classifier on its
        embeddings of the training split). Most metrics need nothing here."""


@dataclass(frozen=True)
class Metric:
    """A way to score a task's quality. ``build(params, data)`` returns a fresh ``MetricState`` for one
    evaluation; ``data`` is the cell's ``DatasetSplits`` (its ``task``, ``num_classes``).

    ``tasks``: the tasks (``harness.plugin.targets.TASKS``) it can score (None: any); on another task's data
    the metric is not computed and the cell's log says why."""

    name: str
    description: str
    build: Callable[[Any, DatasetSplits], Any]
    params: type[Params] = NoParams
    higher_is_better: bool = True
    tasks: tuple[str, ...] | None = None
    unit: str | None = None
    #: Modules its cells import that are slow to import (torchmetrics): imported once per run, in the process
    #: cells are forked from.
    preload: tuple[str, ...] = ()
    kind: str = "metric"
    plugin_type: ClassVar[str] = "metric"


def prediction(outputs: Any, targets: Any = None) -> torch.Tensor:
    """The model's main output tensor (``harness.plugin.targets.main_output``: squeezed to a one-value target's
    shape) as a float CPU tensor, detached: what most metrics are updated with."""
    import torch

    return main_output(outputs, targets).detach().to("cpu", torch.float32)


def score(value: Any) -> float | None:
    """``compute()``'s result as a finite float, or None (a 0-d tensor, a numpy scalar, NaN)."""
    if value is None:
        return None
    if hasattr(value, "item"):
        try:
            value = value.item()
        except (TypeError, ValueError, RuntimeError):
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
