"""Unstructured gradient pruning: importance |w * dL/dw| on training batches.

The first-order Taylor estimate of how much the loss changes when one weight is set
to zero (Molchanov et al. 2017; the saliency of SNIP, Lee et al. 2019). Unlike
magnitude, it sees the data: a weight that multiplies an input that is always zero
has zero gradient, so zero importance, however large it is.

The importance of each weight is |w * g_b| averaged over ``batches`` training batches
(g_b the gradient of the mean cross-entropy of batch b), computed in eval mode so
dropout is off and batch-norm statistics are not updated. Batches are drawn without
replacement from a permutation of the training set seeded with the cell's seed, so
the result is deterministic given the seed. The model's parameters are not changed
by the gradient pass and no ``.grad`` is left behind.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pydantic import Field

from harness import DatasetSplits, MethodContext, Skip, call_model, map_tensors
from optbench_prune.magnitude import prunable_layers
from optbench_prune.masks import UnstructuredParams, prune_by_scores, zero_summary

if TYPE_CHECKING:
    import torch
    from torch import nn

NEEDS_LABELS = "needs labelled training data"


class GradientParams(UnstructuredParams):
    batches: int = Field(8, ge=1, le=1000, description="training batches the importance is averaged over")
    batch_size: int = Field(
        64, ge=1, le=65_536, description="samples per batch (capped at the size of the training split)"
    )


def training_batches(
    data: DatasetSplits, batches: int, batch_size: int, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``batches`` labelled batches of ``min(batch_size, n)`` distinct training samples.

    Consecutive slices of a seeded permutation; a new permutation starts when fewer than
    a full batch are left, so a batch never holds a sample twice.
    """
    import torch

    if not data.train.has_labels:
        raise Skip(NEEDS_LABELS)
    n = len(data.train)
    size = min(batch_size, n)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    start = 0
    for _ in range(batches):
        if start + size > n:
            order, start = torch.randperm(n, generator=g), 0
        idx = order[start : start + size]
        start += size
        batch = data.train.batch(idx)
        yield batch.inputs, batch.labels


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside the block (no dropout, frozen batch-norm statistics); each
    module's own mode is restored afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def gradient_importance(
    model: nn.Module, layers: Sequence[nn.Module], batches: Iterator[tuple[torch.Tensor, torch.Tensor]]
) -> list[torch.Tensor]:
    """Per weight of each layer: mean over ``batches`` of |w * dL/dw|, L the mean cross-entropy."""
    import torch
    from torch.nn import functional as F

    weights = [layer.weight for layer in layers]
    device = weights[0].device
    importance = [torch.zeros_like(w, dtype=torch.float32) for w in weights]
    needed_grad = [w.requires_grad for w in weights]
    count = 0
    try:
        for w in weights:
            w.requires_grad_(True)
        with eval_mode(model), torch.enable_grad():
            for x, y in batches:
                loss = F.cross_entropy(call_model(model, map_tensors(x, lambda t: t.to(device))), y.to(device))
                grads = torch.autograd.grad(loss, weights, allow_unused=True)
                for imp, w, grad in zip(importance, weights, grads):
                    if grad is not None:  # None: the layer does not reach the loss
                        imp += (w.detach() * grad).abs().float()
                count += 1
    finally:
        for w, flag in zip(weights, needed_grad):
            w.requires_grad_(flag)
    return [imp / max(count, 1) for imp in importance]


def apply(model: nn.Module, params: GradientParams, ctx: MethodContext) -> nn.Module:
    if not ctx.data.train.has_labels:
        raise Skip(NEEDS_LABELS)
    layers = prunable_layers(model)
    if not layers:
        raise Skip.no_layers("prune.gradient", "nn.Linear/nn.Conv1d/nn.Conv2d", model)
    batches = training_batches(ctx.data, params.batches, params.batch_size, ctx.seed)
    scores = gradient_importance(model, layers, batches)
    prune_by_scores(layers, scores, params.sparsity, params.scope)
    ctx.log(
        f"prune.gradient: {params.scope} scope, |w*dL/dw| over {params.batches} batch(es) of "
        f"{min(params.batch_size, len(ctx.data.train))}, {len(layers)} layer(s): {zero_summary(layers)}"
    )
    return model
