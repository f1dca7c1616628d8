"""A dataset's targets as they are: what task they make, how a batch of them is collated, and the loss a model
trained on them uses.

A target is what a sample is scored against: a class index (classification), a float or a vector of
floats (regression), a multi-hot vector of 0/1 (multi-label), a mask of class indices (segmentation),
a dict such as ``{"boxes": ..., "labels": ...}`` (detection), or text (seq2seq: a translation, a transcript). Nothing here casts one kind to another:
a float target stays a float, so a whole-number regression target (25 to 346) is never read as 347
classes. ``infer_task`` reads the task from one target when the dataset or the suite does not name it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.measure.fidelity import output_tensor

if TYPE_CHECKING:
    import torch

CLASSIFICATION, REGRESSION, MULTILABEL, SEGMENTATION, DETECTION, SEQ2SEQ, UNLABELLED = (
    "classification", "regression", "multilabel", "segmentation", "detection", "seq2seq", "unlabelled")
TASKS = (CLASSIFICATION, REGRESSION, MULTILABEL, SEGMENTATION, DETECTION, SEQ2SEQ, UNLABELLED)
#: The losses a suite may name for training (``loss:``), and each task's own.
LOSSES = ("cross_entropy", "mse", "l1", "smooth_l1", "bce")
TASK_LOSS = {CLASSIFICATION: "cross_entropy", REGRESSION: "mse", MULTILABEL: "bce", SEGMENTATION: "cross_entropy"}
#: The target value of a pixel no one labelled (torchvision's segmentation datasets' convention).
IGNORE_INDEX = 255


def _is_int(value: Any) -> bool:
    import torch

    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return True
    return isinstance(value, torch.Tensor) and not value.is_floating_point() and not value.is_complex()


def infer_task(target: Any, num_classes: int = 0) -> str:
    """The task one sample's target makes: None: unlabelled; text: seq2seq (a translation, a summary, a
    transcript); a dict (or a list of dicts): detection; an integer: classification; a float: regression; a vector of 0/1 as long as ``num_classes`` (above 1):
    multi-label; another vector: regression; a grid of integers: segmentation, of floats: regression."""
    import torch

    if target is None:
        return UNLABELLED
    if isinstance(target, str):
        return SEQ2SEQ
    if isinstance(target, dict) or (isinstance(target, (list, tuple)) and target and isinstance(target[0], dict)):
        return DETECTION
    if not isinstance(target, torch.Tensor):
        return CLASSIFICATION if _is_int(target) else REGRESSION
    if target.dim() == 0:
        return CLASSIFICATION if _is_int(target) else REGRESSION
    if target.dim() == 1:
        binary = bool(((target == 0) | (target == 1)).all())
        return MULTILABEL if binary and num_classes > 1 and int(target.shape[0]) == num_classes else REGRESSION
    return SEGMENTATION if _is_int(target) else REGRESSION


def collate_targets(values: Sequence[Any]) -> Any:
    """A batch's targets as one value: None when any sample is unlabelled; a list for dicts (detection) and
    text (seq2seq); a
    tensor stacked along a new first dimension for tensors of one shape (their dtype kept); int64 for
    integers, float32 for other numbers."""
    import torch

    if not values or any(v is None for v in values):
        return None
    first = values[0]
    if isinstance(first, (dict, str)):
        return list(values)
    if isinstance(first, torch.Tensor):
        if all(isinstance(v, torch.Tensor) and v.shape == first.shape for v in values):
            return torch.stack(list(values))
        return list(values)
    if all(_is_int(v) and not isinstance(v, torch.Tensor) for v in values):
        return torch.as_tensor([int(v) for v in values], dtype=torch.int64)
    return torch.as_tensor([float(v) for v in values], dtype=torch.float32)


def sample_target(y: torch.Tensor, index: int) -> Any:
    """Sample ``index`` of a tensor of targets: a Python number for a scalar target, else its row."""
    row = y[index]
    return row.item() if row.dim() == 0 else row


def task_loss(task: str, loss: str | None, output: Any, targets: Any) -> torch.Tensor:
    """The training loss of ``output`` against ``targets``: the suite's ``loss`` when it names one, else the
    task's own (cross-entropy for classes and masks, ignoring -1 and 255; mean squared error for regression;
    binary cross-entropy on logits for multi-label)."""
    import torch.nn.functional as F

    name = loss or TASK_LOSS.get(task)
    if name is None:
        raise ValueError(f"no training loss for {task} targets; name one with the dataset's `loss`")
    if targets is None:
        raise ValueError("cannot compute a loss without targets")
    if name == "cross_entropy":
        ignore = IGNORE_INDEX if task == SEGMENTATION else -1
        return F.cross_entropy(output_tensor(output), targets.long(), ignore_index=ignore)
    pred = main_output(output, targets)
    target = targets.to(pred.dtype)
    if name == "mse":
        return F.mse_loss(pred, target)
    if name == "l1":
        return F.l1_loss(pred, target)
    if name == "smooth_l1":
        return F.smooth_l1_loss(pred, target)
    return F.binary_cross_entropy_with_logits(pred, target)


def detector_loss(model: Any, inputs: Any, targets: Any) -> torch.Tensor:
    """A detector's training loss on one batch: the sum of the losses it returns when called in train mode with
    its targets (``model(images, targets)``, torchvision's detection contract)."""
    if targets is None:
        raise ValueError("cannot train a detector without targets")
    losses = model(inputs, targets)
    if not isinstance(losses, dict) or not losses:
        raise TypeError(f"a detector trained by the harness returns its losses as a dict when called in train mode "
                        f"with targets (torchvision's detectors do); this one returned {type(losses).__name__}")
    return sum(losses.values())


def main_output(output: Any, targets: Any = None) -> torch.Tensor:
    """The model's main output tensor (a mapping's ``logits`` / ``out`` / ..., a sequence's first tensor),
    squeezed to ``targets``' shape when it differs only by a trailing 1 (a one-value regression's (N, 1)
    against targets of shape (N,))."""
    import torch

    out = output_tensor(output)
    if isinstance(targets, torch.Tensor) and out.dim() == targets.dim() + 1 and out.shape[-1] == 1:
        out = out.squeeze(-1)
    return out


def tensor_task(y: torch.Tensor) -> str:
    """The task a tensor of every sample's targets (first dimension: the samples) makes: integers, one per
    sample: classification; floats, one per sample: regression (whole numbers included: name the task
    classification to read them as classes); rows of 0/1: multi-label; grids of integers: segmentation;
    other rows or grids of floats: regression."""
    if y.dim() <= 1:
        return CLASSIFICATION if _is_int(y) else REGRESSION
    if y.dim() == 2:
        return MULTILABEL if bool(((y == 0) | (y == 1)).all()) and int(y.shape[1]) > 1 else REGRESSION
    return SEGMENTATION if _is_int(y) else REGRESSION


def tensor_targets(y: torch.Tensor, task: str | None, where: str) -> tuple[torch.Tensor, str, int]:
    """Every sample's targets checked for ``task`` (None: ``tensor_task``) and given its dtype: (targets, task,
    the classes they show: the largest class index + 1, the columns of a multi-hot matrix; 0 for regression).
    Raises ValueError naming ``where`` and what was expected."""
    import torch

    task = task or tensor_task(y)
    if task == CLASSIFICATION:
        if y.dim() != 1:
            raise ValueError(f"{where}: targets of shape {tuple(y.shape)}; classification expects one class index "
                             "per sample")
        if y.is_floating_point() and not bool((y == y.round()).all()):
            raise ValueError(f"{where}: classification targets are fractional; expected class indices (or name the "
                             "task regression)")
        y = y.to(torch.int64)
        if y.numel() and int(y.min()) < 0:
            raise ValueError(f"{where}: negative class index {int(y.min())}; expected class indices from 0")
        return y, task, int(y.max()) + 1 if y.numel() else 0
    if task == MULTILABEL:
        if y.dim() != 2 or not bool(((y == 0) | (y == 1)).all()):
            raise ValueError(f"{where}: multi-label targets are rows of 0 and 1 (one column per label); got shape "
                             f"{tuple(y.shape)}")
        return y.to(torch.int64), task, int(y.shape[1])
    if task == SEGMENTATION:
        if y.dim() < 3 or y.is_floating_point():
            raise ValueError(f"{where}: segmentation targets are masks of class indices (samples x height x "
                             f"width); got {y.dtype} of shape {tuple(y.shape)}")
        y = y.to(torch.int64)
        labelled = y[y != IGNORE_INDEX]
        return y, task, int(labelled.max()) + 1 if labelled.numel() else 0
    if task == REGRESSION:
        return y.to(torch.float32), task, 0
    raise ValueError(f"{where}: a tensor of targets cannot make a {task} task")
