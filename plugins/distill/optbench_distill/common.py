"""What both distillers share: the teacher, the loss terms and the run with the student alone.

Every distiller cell trains twice through ``ctx.fit`` with the cell's budget and seed:

- ``role="reference"``: a fresh copy of the student (``ctx.build_model()``, the same
  initial weights as the student) trained alone on the same labelled subset, with the
  data's own cross-entropy;
- ``role="main"``: the student trained with the distillation loss on every training
  input, the hidden labels read -1 (``keep_unlabelled=True``).

An epoch is the same number of optimizer steps in both (``ceil(N / batch_size)``), so the
record's ``accuracy_gain`` (main - reference) is what the teacher added, nothing else.

torch imports stay inside functions: this module is imported at plugin discovery.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from harness import ModelRef, Params, Skip, call_model

if TYPE_CHECKING:
    import torch
    from torch import nn

    from harness import FitResult, TrainingContext


class DistillParams(Params):
    """Params every distiller takes."""

    teacher: ModelRef = Field(
        description="the teacher, {name: <model>, params: {...}}: trained by the harness with its own "
        "params on the cell's full labelled training data, and cached"
    )
    labels_fraction: float = Field(
        1.0, gt=0.0, le=1.0,
        description="share of the training labels the student (and the student alone) may see, "
        "class-stratified and seeded; the teacher's soft targets cover every input",
    )


def hard_loss(student_logits: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """Mean cross-entropy over the labelled inputs of the batch (``y != -1``).

    Zero, not NaN, when the batch holds no label: the sum over no terms divided by
    ``max(count, 1)``; no host synchronisation on an accelerator.
    """
    import torch.nn.functional as F

    if y is None:
        raise ValueError("distillation needs class labels (y is None)")
    labelled = (y != -1).sum().clamp(min=1)
    return F.cross_entropy(student_logits, y, ignore_index=-1, reduction="sum") / labelled


def soft_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch.

    The T^2 factor keeps the soft term's gradients on the same scale as the hard term's
    whatever the temperature (Hinton et al., 2015, section 2).
    """
    import torch.nn.functional as F

    t = float(temperature)
    log_p_student = F.log_softmax(student_logits / t, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / t, dim=1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * (t * t)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor | None, *,
            temperature: float, alpha: float) -> torch.Tensor:
    """alpha * T^2 * KL(p_teacher^T || p_student^T) over every input
    + (1 - alpha) * cross-entropy over the labelled inputs."""
    return alpha * soft_loss(student_logits, teacher_logits, temperature) + (1.0 - alpha) * hard_loss(student_logits, y)


def require_labels(ctx: TrainingContext, method: str) -> None:
    data = ctx.data
    if data.metric != "accuracy" or data.y_train is None:
        raise Skip(f"{method} distils class probabilities: it needs a classification dataset with labels")


def describe(ref: ModelRef) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in ref.params.items())
    return f"{ref.name}({shown})" if shown else ref.name


def prepare_teacher(ctx: TrainingContext, ref: ModelRef, method: str) -> nn.Module:
    """The harness-trained teacher, frozen, in eval mode, on the cell's device."""
    import torch

    from harness import evaluate

    # ctx.trained_model builds the teacher from the global RNG as it finds it (here: after
    # the student was built), and caches the trained weights under a key that does not say
    # so. Seeding first gives the initial weights a baseline cell of that model gets, so a
    # cached teacher is the same whichever cell trained it.
    torch.manual_seed(ctx.seed)
    teacher = ctx.trained_model(ref)
    teacher.eval().requires_grad_(False).to(ctx.device)
    quality = evaluate(teacher, ctx.data, ctx.device)
    ctx.log(f"{method}: teacher {describe(ref)} held-out accuracy {quality['test_accuracy']:.4f}")
    return teacher


def train_reference(ctx: TrainingContext, labels_fraction: float, method: str) -> FitResult:
    """The student alone: same architecture, initial weights, labels, budget and seed."""
    ctx.log(f"{method}: reference run, the student alone on {labels_fraction:.0%} of the labels")
    return ctx.fit(ctx.build_model(), role="reference", labels_fraction=labels_fraction)


def log_outcome(ctx: TrainingContext, method: str, main: FitResult, reference: FitResult) -> None:
    a, r = main.final_accuracy, reference.final_accuracy
    gain = f"{a - r:+.4f}" if a is not None and r is not None else "n/a"
    ctx.log(f"{method}: distilled student {a}, student alone {r}, accuracy_gain {gain} "
            f"({main.labelled} labelled training inputs)")


def teacher_logits(teacher: nn.Module, x: torch.Tensor) -> torch.Tensor:
    import torch

    with torch.no_grad():
        return call_model(teacher, x)


def as_tensor(value: Any, where: str) -> torch.Tensor:
    """A hooked module's output as one tensor (the first element of a tuple or list)."""
    import torch

    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{where}: the module's output is a {type(value).__name__}, not a tensor")
    return value
