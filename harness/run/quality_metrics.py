"""The metrics a cell scores its model by, built for its data, and one pass over the held-out split that
updates them all.

The suite's metrics for the cell's dataset (``Cell.metrics``), else the task's own (``TASK_METRICS``:
accuracy and top-5 accuracy for classes, rmse and r2 for regression, ...). A registered metric for
another task than the data's is left out, and the log says so; a metric that fails (its import, an
update, its compute) scores null and the log says why: quality figures never cost the cell its others.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from harness.builtin.factories import load_factory
from harness.builtin.metrics import DEFAULT_IDS, TASK_METRICS, Torchmetric, referenced_metric
from harness.measure.inputs import call_model
from harness.plugin.metric import MetricState, score
from harness.plugin.targets import DETECTION, SEGMENTATION, SEQ2SEQ
from harness.plugin.types import DatasetSplits
from harness.registry.manager import Registry
from harness.suite.metric_refs import REFERENCE, REGISTERED, TORCHMETRICS, MetricRef

#: Held-out inputs per call while metrics are updated (images, for a detector or a segmenter).
EVAL_BATCH = 256
DENSE_BATCH = 16


@dataclass
class Scorer:
    """One metric of a cell, ready to be updated."""

    id: str
    higher_is_better: bool
    state: MetricState | None  # None: it could not be built (``why``)
    why: str = ""


def default_refs(task: str) -> list[MetricRef]:
    """The metrics a task is scored by when the suite names none."""
    return [MetricRef(name, DEFAULT_IDS.get(name, name), REGISTERED) for name in TASK_METRICS.get(task, ())]


def build_scorers(refs: list[MetricRef], registry: Registry, data: DatasetSplits, log: Any) -> list[Scorer]:
    """A ``Scorer`` per metric (the suite's, else the task's): built for ``data``, or left out with the reason."""
    out = []
    for ref in refs or default_refs(data.task):
        higher = ref.higher_is_better
        try:
            if ref.source == REGISTERED:
                spec = registry.metrics[ref.name]
                if spec.tasks is not None and data.task not in spec.tasks:
                    log(f"metric {ref.id}: left out, it scores {' or '.join(spec.tasks)} and the data's task is "
                        f"{data.task}")
                    continue
                state = spec.build(spec.params.model_validate(ref.params), data)
                higher = spec.higher_is_better if higher is None else higher
            elif ref.source == TORCHMETRICS:
                module, _, name = ref.name.rpartition(".")
                cls = getattr(importlib.import_module(module), name)
                state = Torchmetric(cls(**ref.params))
                higher = getattr(cls, "higher_is_better", None) is not False if higher is None else higher
            elif ref.source == REFERENCE:
                target = load_factory(ref.name)
                state = referenced_metric(target, ref.params)
                higher = getattr(target, "higher_is_better", None) is not False if higher is None else higher
            else:
                raise ValueError(f"unknown metric source {ref.source!r}")
        except Exception as exc:  # noqa: BLE001 - a metric must never cost the cell its other figures
            log(f"metric {ref.id}: not computed ({type(exc).__name__}: {exc})")
            out.append(Scorer(ref.id, True if higher is None else higher, None, f"{type(exc).__name__}: {exc}"))
            continue
        out.append(Scorer(ref.id, True if higher is None else higher, state))
    return out


def _to_cpu(value: Any) -> Any:
    """A model's outputs on the CPU, whatever their structure (a tensor, a dict, a list of dicts)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    if hasattr(value, "keys") and hasattr(value, "__getitem__"):  # a transformers ModelOutput
        return {k: _to_cpu(value[k]) for k in value.keys()}
    return value


def score_split(scorers: list[Scorer], model: Any, data: DatasetSplits, prepare: Any, log: Any
                ) -> dict[str, float | None]:
    """Every scorer updated over the held-out split in one pass of ``model`` (inputs through ``prepare``), then
    computed: {metric id: score, null where it failed or does not apply}."""
    import torch

    live = [s for s in scorers if s.state is not None]
    for s in list(live):  # a metric that reads the model itself (a linear probe) does it first
        setup = getattr(s.state, "setup", None)
        if callable(setup):
            try:
                setup(model, data, prepare)
            except Exception as exc:  # noqa: BLE001
                log(f"metric {s.id}: not computed ({type(exc).__name__}: {exc})")
                s.state, s.why = None, f"{type(exc).__name__}: {exc}"
                live.remove(s)
    with torch.inference_mode():
        for batch in data.test.batches(DENSE_BATCH if data.task in (DETECTION, SEGMENTATION, SEQ2SEQ) else EVAL_BATCH):
            if not live:
                break
            outputs = _to_cpu(call_model(model, prepare(batch.inputs)))
            if data.postprocess is not None:  # what the metrics score: a seq2seq model's text, say
                outputs = data.postprocess(outputs)
            for s in list(live):
                try:
                    s.state.update(outputs, batch.labels)
                except Exception as exc:  # noqa: BLE001
                    log(f"metric {s.id}: not computed ({type(exc).__name__}: {exc})")
                    s.state, s.why = None, f"{type(exc).__name__}: {exc}"
                    live.remove(s)
    scores: dict[str, float | None] = {}
    for s in scorers:
        value = None
        if s.state is not None:
            try:
                value = score(s.state.compute())
            except Exception as exc:  # noqa: BLE001
                log(f"metric {s.id}: not computed ({type(exc).__name__}: {exc})")
        scores[s.id] = value
    return scores
