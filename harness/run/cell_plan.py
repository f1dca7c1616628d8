"""A cell's plan: what kind of cell it is and what it will measure, decided once, before anything loads.

``plan_cell`` reads only the payload and the registry (no model, no data): whether the cell trains
its model (its first method step declares ``trains``) or changes a trained one, whether the method
is the baseline, whether the model is a causal language model (and then whether it times
generations), whether its timing should be paired with the baseline, where the suite's
fine-tuning runs, and the plugin objects it uses. The scenario (``harness.run.cell_scenario``)
follows the plan; what can only be known at run time (whether two copies fit in memory, whether a
backend pairs) is decided there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.plugin.types import Backend, Dataset, Method, Model, Skip
from harness.record.status import BASELINE
from harness.registry.manager import Registry
from harness.run.cell_payload import CellPayload
from harness.suite.matrix import method_steps


@dataclass(frozen=True)
class Step:
    """One method a cell applies: its registered object and validated params."""

    spec: Method
    params: Any


@dataclass(frozen=True)
class CellPlan:
    backend: Backend
    backend_params: Any
    dataset: Dataset
    dataset_params: Any
    model: Model
    model_params: Any
    steps: tuple[Step, ...]
    #: The cell trains its model from scratch (a training-time method), rather than changing a trained one.
    training: bool
    #: The method is the baseline itself: every figure against the baseline is exact.
    baseline: bool
    #: The model as a causal language model (``Model.language_model``), or None.
    language_model: Any
    #: Time generations (``measure.generate``) rather than one forward pass.
    generating: bool
    #: The suite asks to time the method against a copy of the baseline (compression cells but the baseline's).
    paired: bool
    #: The index of the step after which the suite's ``finetune`` schedule runs, or None.
    finetune_after: int | None

    @property
    def compression(self) -> bool:
        return not self.training


def plan_cell(payload: CellPayload, registry: Registry) -> CellPlan:
    """The plan of ``payload``'s cell. Raises Skip when a method step does not run on the cell's backend, before
    anything is loaded."""
    cell = payload.cell
    backend = registry.backends[cell.backend.name]
    steps = tuple(Step(registry.methods[s["name"]], registry.methods[s["name"]].params.model_validate(s["params"]))
                  for s in method_steps(cell.method))
    for step in steps:
        if step.spec.backends is not None and backend.name not in step.spec.backends:
            raise Skip(f"{step.spec.name} runs on the {' or '.join(step.spec.backends)} backend, not on {backend.name}")
    model = registry.models[cell.model.name]
    model_params = model.params.model_validate(cell.model.params)
    dataset = registry.datasets[cell.dataset.name]
    training = cell.train is not None
    lm = model.language_model(model_params) if model.language_model is not None and not training else None
    is_baseline = cell.method.name == BASELINE
    tune_at = max((i for i, s in enumerate(steps) if s.spec.finetune_after), default=None)
    return CellPlan(
        backend=backend, backend_params=backend.params.model_validate(cell.backend.params),
        dataset=dataset, dataset_params=dataset.params.model_validate(cell.dataset.params),
        model=model, model_params=model_params, steps=steps, training=training, baseline=is_baseline,
        language_model=lm, generating=lm is not None and bool(cell.prompt_tokens),
        paired=payload.measure.paired and not is_baseline and not training,
        finetune_after=tune_at if payload.finetune is not None else None,
    )
