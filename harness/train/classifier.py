"""The one training loop the harness uses for baselines, and top-1 evaluation.

Seeded: the same model, params, data and seed give the same weights on the same
torch build, which is what makes the on-disk cache (harness.train.weight_cache) sound.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.measure.inputs import call_model, map_tensors

if TYPE_CHECKING:
    import torch
    from torch import nn

    from harness.plugin.data import Split
    from harness.plugin.types import DatasetSplits


def train_classifier(
    model: nn.Module,
    data: DatasetSplits,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    optimizer: str = "adam",
    momentum: float = 0.9,
    after_step: Callable[[], None] | None = None,
) -> nn.Module:
    """Baseline training: Adam or SGD over shuffled mini-batches of the data's loss
    (cross-entropy, or the problem's own objective); returns the model in eval mode.

    ``after_step`` runs after every optimizer step (fine-tuning uses it to keep pruned
    weights at zero).
    """
    import torch

    if not data.trainable:
        raise ValueError("cannot train without labels")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected adam or sgd")
    n = len(data.train)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad(set_to_none=True)
            batch = data.train.batch(idx)
            x, y = batch.inputs, batch.labels
            loss = data.model_loss(model, x, y)
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step()
    return model.eval()


def finetune_keeping_zeros(model: nn.Module, data: DatasetSplits, schedule: Any, seed: int) -> int:
    """Fine-tune with ``schedule`` (a suite's ``finetune``) while pruned weights stay zero.

    Every Linear/Conv weight entry that is exactly zero before fine-tuning is masked
    back to zero after each step, so fine-tuning cannot undo a pruner. Returns how many
    weights were held at zero.
    """
    import torch
    from torch import nn

    masks = []
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            zero = module.weight.detach() == 0
            if zero.any():
                masks.append((module.weight, ~zero))

    def keep_zeros() -> None:
        with torch.no_grad():
            for weight, keep in masks:
                weight.mul_(keep)

    train_classifier(
        model, data, epochs=schedule.epochs, lr=schedule.lr, batch_size=schedule.batch_size, seed=seed,
        optimizer=schedule.optimizer, momentum=schedule.momentum, after_step=keep_zeros,
    )
    return sum(int((~keep).sum()) for _, keep in masks)


def evaluate_accuracy(
    model: nn.Module, x: Any, y: torch.Tensor, *, device: torch.device, batch_size: int = 256,
    prepare: Callable[[Any], Any] | None = None,
) -> float:
    """Top-1 accuracy of ``model`` on in-memory inputs ``x`` (a tensor or a dict of tensors) and labels ``y``,
    computed on ``device``.

    ``prepare`` turns a batch into what the model takes (a backend's ``prepare_input``:
    the device and, e.g., half precision); default: moved to ``device``.
    """
    from harness.plugin.data import TensorSplit

    return evaluate_split(model, TensorSplit(x, y), device=device, batch_size=batch_size, prepare=prepare,
                          ks=(1,))[1]


def evaluate_split(
    model: nn.Module, split: Split, *, device: torch.device, batch_size: int = 256,
    prepare: Callable[[Any], Any] | None = None, ks: tuple[int, ...] = (1, 5), num_classes: int | None = None,
) -> dict[int, float | None]:
    """Top-k accuracy over every sample of a labelled ``split``, for each k in ``ks``, in one pass
    (null for a k above the number of classes). With ``num_classes``, outputs that are not one score
    per class (an embedding model's) give null for every k rather than a meaningless number."""
    import torch

    from harness.measure.fidelity import output_tensor

    correct = dict.fromkeys(ks, 0)
    classes, n = None, 0
    move = prepare or (lambda inputs: map_tensors(inputs, lambda t: t.to(device)))
    with torch.inference_mode():
        if num_classes is not None:  # one sample first: a model of other outputs costs one call, not a batch
            for probe in split.batches(1, limit=1):
                out = output_tensor(call_model(model, move(probe.inputs)))
                if out.dim() != 2 or out.shape[1] != num_classes:
                    return dict.fromkeys(ks)
        for batch in split.batches(batch_size):
            if batch.labels is None:
                raise ValueError("accuracy needs labels; this split has none")
            out = output_tensor(call_model(model, move(batch.inputs))).cpu()
            if num_classes is not None and (out.dim() != 2 or out.shape[1] != num_classes):
                return dict.fromkeys(ks)
            labels = batch.labels
            classes = out.shape[1]
            n += int(labels.shape[0])
            top = out.topk(min(max(ks), classes), dim=1).indices
            for k in ks:
                if k == 1:  # argmax, as top-1 always was here (topk may break an exact tie differently)
                    correct[k] += int((out.argmax(dim=1) == labels).sum())
                elif k <= classes:
                    correct[k] += int((top[:, :k] == labels[:, None]).any(dim=1).sum())
    return {k: (correct[k] / n if classes is not None and k <= classes and n else None) for k in ks}
