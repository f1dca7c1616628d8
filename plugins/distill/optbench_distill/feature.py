"""distill.feature: hint-based distillation (FitNets, Romero et al., 2015).

An intermediate feature of the student (the "guided" layer) is regressed onto one of the
teacher (the "hint" layer) through a learned projection that is trained together with
the student:

    loss = beta * MSE(projection(student feature), teacher feature)          (every input)
         + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))    (every input, alpha > 0)
         + (1 - alpha) * cross-entropy(student, y)                           (labelled inputs)

Features are captured with forward hooks, which are removed when the method returns
(also when it fails). Unlike FitNets' two stages, hints and labels train together in one
run, so the budget is the same as the reference run's.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from harness import call_model, map_tensors
from optbench_distill.common import (
    DistillParams,
    as_tensor,
    describe,
    hard_loss,
    log_outcome,
    prepare_teacher,
    require_labels,
    soft_loss,
    train_reference,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from harness import TrainingContext

NAME = "distill.feature"
PROBE_BATCH = 2


class FeatureParams(DistillParams):
    student_layer: str = Field(
        description="module path of the student's guided layer, as named_modules() gives it "
        "(the mlp's first hidden ReLU is '2')"
    )
    teacher_layer: str = Field(
        description="module path of the teacher's hint layer, as named_modules() gives it "
        "(the cnn's hidden ReLU is '7')"
    )
    beta: float = Field(1.0, ge=0.0, le=1e6, description="weight of the hint (feature MSE) term")
    alpha: float = Field(
        0.0, ge=0.0, le=1.0,
        description="weight of an added soft-target term (0: hints and hard labels only); the hard "
        "term gets 1 - alpha",
    )
    temperature: float = Field(4.0, gt=0.0, le=100.0, description="softmax temperature of the soft term")


def find_module(model: nn.Module, path: str, what: str) -> nn.Module:
    """The submodule at ``path``; a ValueError naming the path and every valid one otherwise."""
    modules = dict(model.named_modules())
    if path not in modules:
        valid = ", ".join(repr(p) for p in modules if p)
        raise ValueError(f"{what} {path!r} is not a module path of the {type(model).__name__}; "
                         f"valid paths (named_modules()): {valid} ('' is the whole model)")
    return modules[path]


class FeatureTap:
    """Keeps the latest output of one module through a forward hook."""

    def __init__(self, module: nn.Module, where: str) -> None:
        self.where = where
        self.output: Any = None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self.output = output

    def take(self) -> torch.Tensor:
        value, self.output = self.output, None
        if value is None:
            raise RuntimeError(f"{self.where}: the module did not run in the forward pass")
        return as_tensor(value, self.where)

    def remove(self) -> None:
        self.handle.remove()
        self.output = None


def build_projection(student_shape: Sequence[int], teacher_shape: Sequence[int]) -> nn.Module:
    """A learned map from a student feature to the teacher feature's shape (batch dim excluded).

    - (C,) -> (C',): Linear;
    - (C, H, W) -> (C', H', W'): 1x1 Conv2d, then adaptive average pooling to (H', W')
      when the spatial sizes differ;
    - equal ranks with equal leading dims (e.g. tokens (L, C) -> (L, C')): Linear on the last dim;
    - anything else (ranks differ): flatten, Linear, reshape to the teacher's shape.
    """
    from torch import nn

    s, t = tuple(student_shape), tuple(teacher_shape)
    if len(s) == 1 and len(t) == 1:
        return nn.Linear(s[0], t[0])
    if len(s) == 3 and len(t) == 3:
        conv = nn.Conv2d(s[0], t[0], kernel_size=1)
        return conv if s[1:] == t[1:] else nn.Sequential(conv, nn.AdaptiveAvgPool2d(t[1:]))
    if len(s) == len(t) and len(s) >= 1 and s[:-1] == t[:-1]:
        return nn.Linear(s[-1], t[-1])
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(s), math.prod(t)), nn.Unflatten(1, t))


def probe_shape(model: nn.Module, tap: FeatureTap, x: torch.Tensor) -> tuple[int, ...]:
    """The hooked feature's shape (batch dim excluded) on a small batch, in eval mode."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            call_model(model, x)
        return tuple(tap.take().shape[1:])
    finally:
        model.train(was_training)


def make_loss(teacher: nn.Module, student_tap: FeatureTap, teacher_tap: FeatureTap, projection: nn.Module,
              params: FeatureParams) -> Callable[[nn.Module, torch.Tensor, torch.Tensor | None], torch.Tensor]:
    import torch
    import torch.nn.functional as F

    beta, alpha, temperature = params.beta, params.alpha, params.temperature

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        student_logits = call_model(model, x)
        student_feature = student_tap.take()
        with torch.no_grad():
            logits_t = call_model(teacher, x)
            teacher_feature = teacher_tap.take()
        total = beta * F.mse_loss(projection(student_feature), teacher_feature)
        total = total + (1.0 - alpha) * hard_loss(student_logits, y)
        if alpha > 0:
            total = total + alpha * soft_loss(student_logits, logits_t, temperature)
        return total

    return loss


def apply(student: nn.Module, params: FeatureParams, ctx: TrainingContext) -> nn.Module:
    import torch

    require_labels(ctx, NAME)
    # Check both paths before anything trains: an untrained teacher has the same modules.
    find_module(student, params.student_layer, "student_layer")
    find_module(ctx.build_model(params.teacher), params.teacher_layer, "teacher_layer")
    teacher = prepare_teacher(ctx, params.teacher, NAME)
    f = params.labels_fraction
    reference = train_reference(ctx, f, NAME)

    student_tap = FeatureTap(find_module(student, params.student_layer, "student_layer"),
                             f"student_layer {params.student_layer!r}")
    teacher_tap = FeatureTap(find_module(teacher, params.teacher_layer, "teacher_layer"),
                             f"teacher_layer {params.teacher_layer!r}")
    try:
        x = map_tensors(ctx.data.train.example(PROBE_BATCH), lambda t: t.to(ctx.device))
        student.to(ctx.device)
        s_shape, t_shape = probe_shape(student, student_tap, x), probe_shape(teacher, teacher_tap, x)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            projection = build_projection(s_shape, t_shape)
        n_proj = sum(p.numel() for p in projection.parameters())
        ctx.log(f"{NAME}: hint from {describe(params.teacher)} layer {params.teacher_layer!r} {t_shape} onto student "
                f"layer {params.student_layer!r} {s_shape} through {type(projection).__name__} ({n_proj} params, "
                f"trained with the student); beta={params.beta}, alpha={params.alpha}, T={params.temperature}, "
                f"{f:.0%} of the labels")
        main = ctx.fit(student, role="main", loss=make_loss(teacher, student_tap, teacher_tap, projection, params),
                       labels_fraction=f, keep_unlabelled=True, extra_modules=[projection],
                       frozen_modules=[teacher])
    finally:
        student_tap.remove()
        teacher_tap.remove()
    log_outcome(ctx, NAME, main, reference)
    return student
