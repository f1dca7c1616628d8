"""Unstructured masks shared by the unstructured pruners: ranking scores and making masks permanent.

Every unstructured pruner here (magnitude, random, gradient) ends the same way: the
pruned weights are zero inside the ordinary dense ``weight`` tensor, with no
``weight_orig`` / ``weight_mask`` reparametrization left behind and the state_dict keys
in their original order, so a pruned model loads into an unpruned one and the
harness measures a plain model. They differ only in how each weight is scored.

torch imports stay inside functions: this module is imported at plugin discovery.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness import Params

if TYPE_CHECKING:
    import torch
    from torch import nn


@contextmanager
def permanent_masks(layers: Sequence[nn.Module]) -> Iterator[None]:
    """Prune ``weight`` of each layer with ``torch.nn.utils.prune`` inside the block; on exit
    ``prune.remove`` makes every mask permanent and the parameter order is restored.

    ``prune.remove`` registers ``weight`` anew, after ``bias``, which would reorder the
    state_dict; the order is taken before the block and put back after it.
    """
    from torch.nn.utils import prune

    order = [list(layer._parameters) for layer in layers]
    yield
    for layer, names in zip(layers, order):
        prune.remove(layer, "weight")  # weight = weight_orig * mask, as a plain parameter
        for name in names:
            layer._parameters[name] = layer._parameters.pop(name)


def masks_from_scores(
    scores: Sequence[torch.Tensor], sparsity: float, scope: Literal["layer", "global"]
) -> list[torch.Tensor]:
    """Masks (1 keep, 0 prune) that drop the lowest-scoring ``sparsity`` fraction.

    Counts follow ``torch.nn.utils.prune``: ``round(sparsity * n)`` weights, with ``n``
    the size of each tensor (``layer``) or of all of them together (``global``); ties
    at the threshold are broken by ``torch.topk``.
    """
    import torch

    def drop_lowest(flat: torch.Tensor) -> torch.Tensor:
        mask = torch.ones_like(flat)
        k = round(sparsity * flat.numel())
        if k:
            mask[torch.topk(flat, k, largest=False).indices] = 0
        return mask

    if scope == "layer":
        return [drop_lowest(s.detach().flatten().float()).view_as(s) for s in scores]
    flat = drop_lowest(torch.cat([s.detach().flatten().float() for s in scores]))
    return [m.view_as(s) for m, s in zip(flat.split([s.numel() for s in scores]), scores)]


def prune_by_scores(
    layers: Sequence[nn.Module],
    scores: Sequence[torch.Tensor],
    sparsity: float,
    scope: Literal["layer", "global"],
) -> None:
    """Zero the lowest-scoring weights of ``layers`` (one score per weight), permanently."""
    from torch.nn.utils import prune

    masks = masks_from_scores(scores, sparsity, scope)
    with permanent_masks(layers):
        for layer, mask in zip(layers, masks):
            prune.custom_from_mask(layer, "weight", mask.to(layer.weight.device))


def zero_summary(layers: Sequence[nn.Module]) -> str:
    """'z/n weights are zero (p%)' over the ``weight`` of ``layers``, for the cell log."""
    zeros = sum(int((layer.weight == 0).sum()) for layer in layers)
    total = sum(layer.weight.numel() for layer in layers)
    return f"{zeros}/{total} weights are zero ({zeros / total:.1%})"


class UnstructuredParams(Params):
    """The parameters every unstructured pruner shares; each ranks weights its own way."""

    sparsity: float = Field(
        0.5, ge=0.0, le=1.0, description="fraction of the prunable weights set to zero (biases are never pruned)"
    )
    scope: Literal["layer", "global"] = Field(
        "layer",
        description="layer: every layer loses this fraction; global: one ranking across all prunable layers",
    )
