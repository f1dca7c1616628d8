"""Unstructured L1-magnitude pruning with ``torch.nn.utils.prune``.

The smallest-magnitude weights are set to zero and the masks are then made permanent
(``prune.remove``, through ``masks.permanent_masks``, shared with the other
unstructured pruners), so the model keeps its ordinary dense ``weight`` tensors and its
state_dict keys: the zeros are in the tensors, not in a reparametrization. Dense
kernels still multiply by those zeros, so this changes size-after-compression and
accuracy, not measured speed.

torch imports stay inside functions: this module is imported at plugin discovery,
and discovery should not pay for importing torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from harness import MethodContext, Skip
from optbench_prune.masks import UnstructuredParams, permanent_masks, zero_summary

if TYPE_CHECKING:
    from torch import nn


class MagnitudeParams(UnstructuredParams):
    """Prune the smallest |w|."""


def prunable_layers(model: nn.Module) -> list[nn.Module]:
    """The layers whose ``weight`` is pruned: nn.Linear, nn.Conv1d and nn.Conv2d."""
    from torch import nn

    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]


def apply(model: nn.Module, params: MagnitudeParams, ctx: MethodContext) -> nn.Module:
    from torch.nn.utils import prune

    layers = prunable_layers(model)
    if not layers:
        raise Skip.no_layers("prune.magnitude", "nn.Linear/nn.Conv1d/nn.Conv2d", model)
    with permanent_masks(layers):
        if params.scope == "layer":
            for layer in layers:
                prune.l1_unstructured(layer, "weight", amount=params.sparsity)
        else:
            prune.global_unstructured(
                [(layer, "weight") for layer in layers], pruning_method=prune.L1Unstructured, amount=params.sparsity
            )
    ctx.log(f"prune.magnitude: {params.scope} scope, {len(layers)} layer(s): {zero_summary(layers)}")
    return model
