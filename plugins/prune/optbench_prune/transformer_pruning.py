"""Structured pruning of a transformer's MLP channels and attention heads: the intermediate features
of every MLP block (``prune.mlp_channels``) or the key/value heads of every attention block
(``prune.attention_heads``) are ranked and the least important removed, leaving smaller dense layers
(a real speedup, unlike zeros in a dense matrix) and, for heads, a smaller KV cache.

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


# -- attention heads -------------------------------------------------------------------------------

HEADS_NAME = "prune.attention_heads"


class AttentionHeadParams(Params):
    ratio: float = Field(0.25, ge=0.0, lt=1.0, description="fraction of each attention block's key/value heads "
                                                           "removed (with the query heads that share them)")
    importance: Literal["l2", "random"] = Field("l2", description="head ranking: L2 norm of the head's query, key, "
                                                                  "value rows and output columns, or seeded random")


def attention_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Attention blocks as transformers' Llama-family models build them: ``q_proj``, ``k_proj``, ``v_proj``
    and ``o_proj`` ``nn.Linear`` children, a ``head_dim`` and a ``num_key_value_groups``."""
    from torch import nn

    return [(name, m) for name, m in model.named_modules()
            if all(isinstance(getattr(m, k, None), nn.Linear) for k in ("q_proj", "k_proj", "v_proj", "o_proj"))
            and isinstance(getattr(m, "head_dim", None), int) and isinstance(getattr(m, "num_key_value_groups", None), int)]


def prune_attention_heads(model: nn.Module, params: AttentionHeadParams, seed: int = 0) -> tuple[int, int, int]:
    """Prune in place whole key/value heads and the query heads that attend with them (so grouped-query
    attention keeps its group size); returns (blocks, key/value heads before, after)."""
    import math

    import torch

    g = torch.Generator().manual_seed(seed)
    blocks = attention_blocks(model)
    before = after = 0
    for _, attn in blocks:
        hd, groups = attn.head_dim, attn.num_key_value_groups
        kv = attn.k_proj.out_features // hd
        before += kv
        kept = max(1, math.ceil(kv * (1 - params.ratio)))
        after += kept
        if kept == kv:
            continue
        if params.importance == "random":
            score = torch.rand(kv, generator=g)
        else:
            def rows(layer: nn.Linear, per: int, hd: int = hd) -> torch.Tensor:
                return layer.weight.detach().float().pow(2).reshape(-1, per * hd, layer.in_features).sum((1, 2))

            cols = attn.o_proj.weight.detach().float().pow(2).reshape(attn.o_proj.out_features, -1, groups * hd)
            score = (rows(attn.q_proj, groups) + rows(attn.k_proj, 1) + rows(attn.v_proj, 1)
                     + cols.sum((0, 2))).cpu()
        keep_kv = sorted(torch.topk(score, kept).indices.tolist())
        kv_rows = [r for h in keep_kv for r in range(h * hd, (h + 1) * hd)]
        q_rows = [r for h in keep_kv for q in range(h * groups, (h + 1) * groups) for r in range(q * hd, (q + 1) * hd)]
        attn.q_proj = _shrink_rows(attn.q_proj, q_rows)
        attn.k_proj = _shrink_rows(attn.k_proj, kv_rows)
        attn.v_proj = _shrink_rows(attn.v_proj, kv_rows)
        attn.o_proj = _shrink_columns(attn.o_proj, q_rows)
        for name, value in (("num_heads", kept * groups), ("num_key_value_heads", kept)):
            if hasattr(attn, name):
                setattr(attn, name, value)
    return len(blocks), before, after


def apply_heads(model: nn.Module, params: AttentionHeadParams, ctx: MethodContext) -> nn.Module:
    if not attention_blocks(model):
        raise Skip(f"{HEADS_NAME}: the model has no attention block with q_proj/k_proj/v_proj/o_proj nn.Linear "
                   "layers and a head_dim (transformers' Llama family) to prune")
    blocks, before, after = prune_attention_heads(model, params, ctx.seed)
    ctx.log(f"{HEADS_NAME}: {blocks} attention blocks, key/value heads {before} -> {after} ({params.importance}; "
            "the query heads of each removed key/value head go with it)")
    return model
