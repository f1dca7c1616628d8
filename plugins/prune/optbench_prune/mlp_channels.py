"""Structured pruning of a transformer's MLP channels: the intermediate features of every MLP block
are ranked and the least important removed, leaving smaller dense layers (a real speedup, unlike
zeros in a dense matrix).

An MLP block is recognised by its layers' names, as transformers models name them:
- gated (SwiGLU, Llama, Mistral, Qwen, Gemma): ``gate_proj`` and ``up_proj`` (hidden -> intermediate)
  and ``down_proj`` (intermediate -> hidden), all ``nn.Linear``;
- two-layer (BERT-style ``fc1``/``fc2``, OPT, many others): ``fc1`` (hidden -> intermediate) and
  ``fc2`` (intermediate -> hidden).

Channel ``j`` couples row ``j`` of each input projection with column ``j`` of the output one; its
importance is the L2 norm of those coupled weights (Torch-Pruning's group L2), or a seeded random
score (the control). The kept count is rounded up to ``multiple_of`` (kernels like widths that are
multiples of 8). Attention is left alone.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness import MethodContext, Params, Skip

if TYPE_CHECKING:
    from torch import nn

NAME = "prune.mlp_channels"
GATED = ("gate_proj", "up_proj", "down_proj")
TWO_LAYER = ("fc1", "fc2")


class MLPChannelParams(Params):
    ratio: float = Field(0.25, ge=0.0, lt=1.0, description="fraction of each MLP block's intermediate channels "
                                                           "removed")
    importance: Literal["l2", "random"] = Field("l2", description="channel ranking: L2 norm of the coupled "
                                                                  "weights, or seeded random (the control)")
    multiple_of: int = Field(8, ge=1, le=1024, description="round the kept channels up to a multiple of this")


def mlp_blocks(model: nn.Module) -> list[tuple[str, list[nn.Linear], nn.Linear]]:
    """(name, input projections, output projection) of every MLP block ``model`` has."""
    from torch import nn

    out = []
    for name, module in model.named_modules():
        kids = dict(module.named_children())
        if all(isinstance(kids.get(k), nn.Linear) for k in GATED):
            out.append((name, [kids["gate_proj"], kids["up_proj"]], kids["down_proj"]))
        elif all(isinstance(kids.get(k), nn.Linear) for k in TWO_LAYER):
            out.append((name, [kids["fc1"]], kids["fc2"]))
    return out


def _shrink_rows(layer: nn.Linear, keep: list[int]) -> nn.Linear:
    import torch
    from torch import nn

    new = nn.Linear(layer.in_features, len(keep), bias=layer.bias is not None,
                    device=layer.weight.device, dtype=layer.weight.dtype)
    idx = torch.tensor(keep, device=layer.weight.device)
    with torch.no_grad():
        new.weight.copy_(layer.weight[idx])
        if layer.bias is not None:
            new.bias.copy_(layer.bias[idx])
    return new


def _shrink_columns(layer: nn.Linear, keep: list[int]) -> nn.Linear:
    import torch
    from torch import nn

    new = nn.Linear(len(keep), layer.out_features, bias=layer.bias is not None,
                    device=layer.weight.device, dtype=layer.weight.dtype)
    idx = torch.tensor(keep, device=layer.weight.device)
    with torch.no_grad():
        new.weight.copy_(layer.weight[:, idx])
        if layer.bias is not None:
            new.bias.copy_(layer.bias)
    return new


def prune_mlp_channels(model: nn.Module, params: MLPChannelParams, seed: int = 0) -> tuple[int, int, int]:
    """Prune in place; returns (blocks, channels before, channels after)."""
    import math

    import torch

    blocks = mlp_blocks(model)
    before = after = 0
    g = torch.Generator().manual_seed(seed)
    for name, inputs, output in blocks:
        width = output.in_features
        if any(layer.out_features != width for layer in inputs):
            continue  # not the coupled shape this pruner understands
        kept = min(width, math.ceil(width * (1 - params.ratio) / params.multiple_of) * params.multiple_of)
        before += width
        after += kept
        if kept == width:
            continue
        if params.importance == "random":
            score = torch.rand(width, generator=g)
        else:
            score = sum(layer.weight.detach().float().pow(2).sum(1) for layer in inputs)
            score = (score + output.weight.detach().float().pow(2).sum(0)).cpu()
        keep = sorted(torch.topk(score, kept).indices.tolist())
        parent = model.get_submodule(name) if name else model
        names = GATED if len(inputs) == 2 else TWO_LAYER
        for attr, layer in zip(names[:-1], inputs, strict=True):
            setattr(parent, attr, _shrink_rows(layer, keep))
        setattr(parent, names[-1], _shrink_columns(output, keep))
        if hasattr(parent, "intermediate_size"):
            parent.intermediate_size = kept
    return len(blocks), before, after


def apply(model: nn.Module, params: MLPChannelParams, ctx: MethodContext) -> nn.Module:
    if not mlp_blocks(model):
        raise Skip(f"{NAME}: the model has no transformer MLP block (gate_proj/up_proj/down_proj or fc1/fc2 "
                   "nn.Linear layers) to prune")
    blocks, before, after = prune_mlp_channels(model, params, ctx.seed)
    ctx.log(f"{NAME}: {blocks} MLP blocks, intermediate channels {before} -> {after} "
            f"({params.importance}, kept widths multiples of {params.multiple_of})")
    return model
