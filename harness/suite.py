"""The suite schema: what a suite YAML file may say, validated at the edge.

Unknown keys are errors everywhere (``extra="forbid"``). Plugin names and plugin
parameters are checked in a second step (harness.matrix) against what is installed.
A plain string where an entry is expected is shorthand for ``{name: <string>}``.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


def _entry(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Entry(_Strict):
    name: str = Field(min_length=1, description="name of an installed plugin")
    params: dict[str, Any] = Field(default_factory=dict, description="the plugin's parameters")


class DatasetEntry(Entry):
    id: str | None = Field(None, min_length=1, description="id, unique in the suite (default: name)")

    @property
    def display_id(self) -> str:
        return self.id or self.name


class ModelEntry(Entry):
    id: str | None = Field(None, min_length=1, description="display id, unique in the suite (default: name)")
    checkpoint: str | None = Field(
        None, description="path to a state_dict to load instead of training (relative to the suite file)"
    )
    datasets: list[str] | None = Field(
        None, min_length=1, description="pair this model only with these dataset ids (default: all)"
    )
    batch_sizes: list[Annotated[int, Field(ge=1, le=1_000_000)]] | None = Field(
        None, min_length=1, description="measure this model at these batch sizes (default: measure.batch_sizes)"
    )

    @property
    def display_id(self) -> str:
        return self.id or self.name


StepItem = Annotated[Entry, BeforeValidator(_entry)]


class MethodEntry(_Strict):
    """One method, or a pipeline of methods applied in order (``pipeline: [..]``)."""

    name: str | None = Field(None, min_length=1, description="name of an installed method plugin")
    params: dict[str, Any] = Field(default_factory=dict, description="the method's parameters")
    pipeline: list[StepItem] | None = Field(None, min_length=1, description="methods applied in order")
    id: str | None = Field(None, min_length=1, description="display id (default: name)")

    @model_validator(mode="after")
    def _one_of(self) -> MethodEntry:
        if (self.name is None) == (self.pipeline is None):
            raise ValueError("give either `name` (one method) or `pipeline` (a list of methods), not both")
        if self.pipeline is not None and self.params:
            raise ValueError("a pipeline takes params per step: pipeline: [{name: ..., params: {...}}]")
        return self


class Budget(_Strict):
    min_iters: int = Field(ge=1, le=10_000_000, description="at least this many calls")
    min_seconds: float = Field(ge=0.0, le=3600.0, description="and at least this long, in seconds")


class Measure(_Strict):
    batch_sizes: list[Annotated[int, Field(ge=1, le=1_000_000)]] = Field(
        default_factory=lambda: [1], min_length=1, description="one record per batch size"
    )
    warmup: Budget = Field(default_factory=lambda: Budget(min_iters=10, min_seconds=0.5))
    repeat: Budget = Field(default_factory=lambda: Budget(min_iters=30, min_seconds=2.0))
    accuracy: bool = Field(True, description="evaluate top-1 accuracy on the held-out split")


class AccuracyGate(_Strict):
    """MLPerf-style accuracy target relative to the baseline (relative 0.01 = the 99% tier)."""

    relative: float | None = Field(None, ge=0.0, le=1.0, description="pass when accuracy >= baseline x (1 - relative)")
    absolute: float | None = Field(None, ge=0.0, le=1.0, description="pass when accuracy >= baseline - absolute")

    @model_validator(mode="after")
    def _exactly_one(self) -> AccuracyGate:
        if (self.relative is None) == (self.absolute is None):
            raise ValueError("give exactly one of `relative` or `absolute`")
        return self

    def passes(self, accuracy: float, baseline: float) -> bool:
        floor = baseline * (1 - self.relative) if self.relative is not None else baseline - (self.absolute or 0.0)
        return accuracy >= floor - 1e-12


class Finetune(_Strict):
    """One schedule applied identically after every pruner or factorizer (ShrinkBench's rule)."""

    epochs: int = Field(ge=0, le=10_000, description="fine-tuning epochs")
    lr: float = Field(1e-4, gt=0.0, le=10.0)
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="sgd only")
    batch_size: int = Field(64, ge=1, le=65_536)


class Execution(_Strict):
    timeout_s: float = Field(600.0, gt=0.0, le=7 * 24 * 3600, description="wall-clock limit per cell")


DatasetItem = Annotated[DatasetEntry, BeforeValidator(_entry)]
ModelItem = Annotated[ModelEntry, BeforeValidator(_entry)]
MethodItem = Annotated[MethodEntry, BeforeValidator(_entry)]
BackendItem = Annotated[Entry, BeforeValidator(_entry)]


class Suite(_Strict):
    name: str = Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="results go to <results>/<name>/<run-id>/",
    )
    description: str = ""
    seed: int = Field(0, ge=0, le=2**31 - 1)
    datasets: list[DatasetItem] = Field(min_length=1)
    models: list[ModelItem] = Field(min_length=1)
    methods: list[MethodItem] = Field(default_factory=list, description="baseline is always added")
    backends: list[BackendItem] = Field(default_factory=lambda: [Entry(name="cpu")], min_length=1)
    measure: Measure = Field(default_factory=Measure)
    execution: Execution = Field(default_factory=Execution)
    finetune: Finetune | None = Field(None, description="fine-tune compressed models, same schedule for all")
    accuracy_gate: AccuracyGate | None = Field(None, description="sets passes_gate on every record")
