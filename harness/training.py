"""The one training loop the harness uses for baselines, and top-1 evaluation.

Seeded: the same model, params, data and seed give the same weights on the same
torch build, which is what makes the on-disk cache (harness.weight_cache) sound.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

    from harness.plugin_types import DatasetSplits


def train_classifier(
    model: nn.Module, data: DatasetSplits, *, epochs: int, lr: float, batch_size: int, seed: int
) -> nn.Module:
    """Adam + cross-entropy over shuffled mini-batches; returns the model in eval mode."""
    import torch
    from torch import nn

    if data.y_train is None:
        raise ValueError("cannot train without labels")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    n = data.x_train.shape[0]
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
            loss.backward()
            opt.step()
    return model.eval()


def evaluate_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, device: torch.device, batch_size: int = 256
) -> float:
    """Top-1 accuracy of ``model`` on (x, y), computed on ``device``."""
    import torch

    correct = 0
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size].to(device)
            out = model(xb)
            correct += int((out.argmax(dim=1).cpu() == y[start : start + batch_size]).sum())
    return correct / x.shape[0]
