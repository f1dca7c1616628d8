"""Applying a cell's method: one method or a pipeline's steps in order, each checked to return a module,
with the suite's fine-tuning schedule after the step the plan names (the last step that declares
``finetune_after``: ShrinkBench's rule, one schedule for every pruner and factorizer)."""
from __future__ import annotations

import time
from typing import Any

import torch

from harness.plugin.types import MethodContext
from harness.run.baseline_model import returned
from harness.run.cell_log import log
from harness.run.cell_plan import CellPlan
from harness.suite.schema import Finetune
from harness.train import classifier
from harness.train.fit import TrainingContext


def apply_method(plan: CellPlan, model: Any, ctx: MethodContext, finetune: Finetune | None) -> tuple[Any, bool]:
    """(the changed model, whether it was fine-tuned). A step that declares ``trains`` must have trained
    through ``ctx.fit`` (its main run)."""
    tune_at = plan.finetune_after if finetune is not None and ctx.data.has_labels else None
    for i, step in enumerate(plan.steps):
        spec = step.spec
        model = returned(spec.apply(model, step.params, ctx), torch.nn.Module, spec, "apply(model, params, ctx)")
        if spec.trains and not (isinstance(ctx, TrainingContext) and "main" in ctx.runs):
            raise RuntimeError(f"{spec.name} (kind {spec.kind}) returned without training: "
                               "a training-time method must call ctx.fit(model) (role 'main')")
        if i == tune_at and finetune is not None:
            t0 = time.perf_counter()
            held = classifier.finetune_keeping_zeros(model, ctx.data, finetune, ctx.seed)
            log(f"fine-tuned after {spec.name}: {finetune.epochs} epochs ({finetune.optimizer}, lr {finetune.lr}) "
                f"in {time.perf_counter() - t0:.1f}s, {held} pruned weights held at zero")
    return model, tune_at is not None
