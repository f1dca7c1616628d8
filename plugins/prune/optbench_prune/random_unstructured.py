"""Unstructured random pruning: the control every other pruner is compared with.

A pruner whose accuracy is no better than this one's at the same sparsity has learnt
nothing about which weights matter (ShrinkBench keeps random and magnitude baselines
next to every method for this reason). Each weight gets a uniform random score from a
``torch.Generator`` seeded with the cell's seed, and the lowest-scoring ``sparsity``
fraction is zeroed, per layer or over all layers, with the same permanent-mask
handling as prune.magnitude.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from harness import MethodContext, Skip
from optbench_prune.magnitude import prunable_layers
from optbench_prune.masks import UnstructuredParams, prune_by_scores, zero_summary

if TYPE_CHECKING:
    from torch import nn


class RandomParams(UnstructuredParams):
    """Prune weights chosen at random (seeded): the control."""


def apply(model: nn.Module, params: RandomParams, ctx: MethodContext) -> nn.Module:
    import torch

    layers = prunable_layers(model)
    if not layers:
        raise Skip.no_layers("prune.random", "nn.Linear/nn.Conv1d/nn.Conv2d", model)
    g = torch.Generator().manual_seed(ctx.seed)
    scores = [torch.rand(layer.weight.shape, generator=g) for layer in layers]
    prune_by_scores(layers, scores, params.sparsity, params.scope)
    ctx.log(f"prune.random: {params.scope} scope, seed {ctx.seed}, {len(layers)} layer(s): {zero_summary(layers)}")
    return model
