"""distill.kd: Hinton-style knowledge distillation (Hinton, Vinyals and Dean, 2015).

The student learns from the teacher's temperature-softened class probabilities on every
training input, and from the labels it may see:

    loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))   (every input)
         + (1 - alpha) * cross-entropy(student, y)                           (labelled inputs)

The teacher's logits are computed per batch under ``torch.no_grad`` with the teacher in
eval mode on the cell's device.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import Field

from harness import call_model
from optbench_distill.common import (
    DistillParams,
    describe,
    kd_loss,
    log_outcome,
    prepare_teacher,
    require_labels,
    teacher_logits,
    train_reference,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from harness import TrainingContext

NAME = "distill.kd"


class KDParams(DistillParams):
    temperature: float = Field(
        4.0, gt=0.0, le=100.0, description="softmax temperature T of both teacher and student in the soft term"
    )
    alpha: float = Field(
        0.9, ge=0.0, le=1.0, description="weight of the soft (teacher) term; the hard-label term gets 1 - alpha"
    )


def make_loss(teacher: nn.Module, temperature: float, alpha: float) -> Callable[
        [nn.Module, torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """``loss(model, x, y)`` for ``ctx.fit``: kd_loss against the teacher's logits on the batch."""

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return kd_loss(call_model(model, x), teacher_logits(teacher, x), y, temperature=temperature, alpha=alpha)

    return loss


def apply(student: nn.Module, params: KDParams, ctx: TrainingContext) -> nn.Module:
    require_labels(ctx, NAME)
    f = params.labels_fraction
    teacher = prepare_teacher(ctx, params.teacher, NAME)
    reference = train_reference(ctx, f, NAME)
    ctx.log(f"{NAME}: main run, student distilled from {describe(params.teacher)} on every training input "
            f"(T={params.temperature}, alpha={params.alpha}) and {f:.0%} of the labels")
    main = ctx.fit(student, role="main", loss=make_loss(teacher, params.temperature, params.alpha),
                   labels_fraction=f, keep_unlabelled=True, frozen_modules=[teacher])
    log_outcome(ctx, NAME, main, reference)
    return student
