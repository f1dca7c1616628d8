"""Truncated-SVD factorization of Linear and Conv2d layers into two thinner layers.

A weight ``W`` (out x in, or out x in*kh*kw for a conv) is replaced by the product of
``U_r * sqrt(S_r)`` (out x r) and ``sqrt(S_r) * V_r^T`` (r x in): the best rank-r
approximation in the Frobenius norm (Eckart-Young), so the error of each layer is
exactly the root of the sum of the discarded squared singular values. A layer is
only replaced when the two factors take fewer multiply-adds than the original,
``r * (in + out) < in * out``; otherwise it is left alone and counted.

torch imports stay inside functions: this module is imported at plugin discovery.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from harness import MethodContext, Params, Regex, Skip

if TYPE_CHECKING:
    import torch
    from torch import nn

DEFAULT_RANK_RATIO = 0.5


class SVDParams(Params):
    rank_ratio: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="kept rank as a fraction of min(out, in*kh*kw), rounded up; "
        f"{DEFAULT_RANK_RATIO} when neither rank_ratio nor energy is given",
    )
    energy: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="keep the smallest rank whose share of the squared singular values is >= energy",
    )
    skip_classifier: bool = Field(False, description="leave the model's last nn.Linear (the classifier) alone")
    include: Regex | None = Field(
        None, description="factorize only layers whose module name matches this regular expression (searched), "
                          "e.g. 'mlp' for a transformer's MLP blocks; default: every layer")

    @model_validator(mode="before")
    @classmethod
    def _default_rank_ratio(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("rank_ratio") is None and data.get("energy") is None:
            return {**data, "rank_ratio": DEFAULT_RANK_RATIO}
        return data

    @model_validator(mode="after")
    def _exactly_one_rule(self) -> SVDParams:
        if self.rank_ratio is not None and self.energy is not None:
            raise ValueError(
                f"give either rank_ratio or energy, not both (got rank_ratio={self.rank_ratio}, energy={self.energy})"
            )
        return self


def ratio_rank(full: int, rank_ratio: float) -> int:
    """ceil(rank_ratio * full), between 1 and full; the slack keeps 0.5 * 64 at 32 after float error."""
    return min(full, max(1, math.ceil(rank_ratio * full - 1e-9)))


def rank_for(singular_values: torch.Tensor, params: SVDParams) -> int:
    """The kept rank for one layer, between 1 and the number of singular values."""
    import torch

    full = singular_values.numel()
    if params.rank_ratio is not None:
        return ratio_rank(full, params.rank_ratio)
    energy = singular_values.double().square()
    total = float(energy.sum())
    if total == 0.0:
        return 1
    kept = torch.cumsum(energy, 0) / total
    # smallest r with kept[r - 1] >= energy; the slack absorbs rounding of the cumulative sum
    r = int(torch.searchsorted(kept, torch.tensor([params.energy - 1e-12], dtype=kept.dtype))[0]) + 1
    return min(full, max(1, r))


def reduces_work(rank: int, fan_in: int, fan_out: int) -> bool:
    """True when the factors take fewer multiply-adds (and weights) than the dense layer."""
    return rank * (fan_in + fan_out) < fan_in * fan_out


def svd(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD of a 2-D weight, computed on the tall orientation (LAPACK is faster there)."""
    import torch

    w = weight.detach()
    if w.shape[0] < w.shape[1]:
        u, s, vh = torch.linalg.svd(w.T, full_matrices=False)
        return vh.T, s, u.T
    return torch.linalg.svd(w, full_matrices=False)


def _factors(
    u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, rank: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, second): first = sqrt(S) V^T (rank x in), second = U sqrt(S) (out x rank)."""
    root = s[:rank].sqrt()
    return (root[:, None] * vh[:rank]).contiguous(), (u[:, :rank] * root[None, :]).contiguous()


def factorize_linear(layer: nn.Linear, rank: int, usv: tuple | None = None) -> nn.Sequential:
    """Linear(in, out) -> Linear(in, rank, bias=False) -> Linear(rank, out, bias as before)."""
    import torch
    from torch import nn

    u, s, vh = usv if usv is not None else svd(layer.weight)
    first_w, second_w = _factors(u, s, vh, rank)
    kw = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    first = nn.Linear(layer.in_features, rank, bias=False, **kw)
    second = nn.Linear(rank, layer.out_features, bias=layer.bias is not None, **kw)
    with torch.no_grad():
        first.weight.copy_(first_w)
        second.weight.copy_(second_w)
        if layer.bias is not None:
            second.bias.copy_(layer.bias)
    return nn.Sequential(first, second).train(layer.training)


def conv_matrix(layer: nn.Conv2d) -> torch.Tensor:
    """The conv weight as the (out, in * kh * kw) matrix it multiplies each patch by."""
    return layer.weight.detach().reshape(layer.out_channels, -1)


def factorize_conv(layer: nn.Conv2d, rank: int, usv: tuple | None = None) -> nn.Sequential:
    """Conv2d(in, out, k) -> Conv2d(in, rank, k, bias=False) -> 1x1 Conv2d(rank, out, bias as before).

    The first conv keeps the stride, padding, dilation and padding mode, so the pair
    sees the same patches as the original; only groups == 1 can be factorized this way.
    """
    import torch
    from torch import nn

    if layer.groups != 1:
        raise ValueError(f"only groups=1 convolutions can be factorized, this one has groups={layer.groups}")
    u, s, vh = usv if usv is not None else svd(conv_matrix(layer))
    first_w, second_w = _factors(u, s, vh, rank)
    kw = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    first = nn.Conv2d(
        layer.in_channels,
        rank,
        layer.kernel_size,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        groups=1,
        bias=False,
        padding_mode=layer.padding_mode,
        **kw,
    )
    second = nn.Conv2d(rank, layer.out_channels, 1, bias=layer.bias is not None, **kw)
    with torch.no_grad():
        first.weight.copy_(first_w.reshape(first.weight.shape))
        second.weight.copy_(second_w.reshape(second.weight.shape))
        if layer.bias is not None:
            second.bias.copy_(layer.bias)
    return nn.Sequential(first, second).train(layer.training)


@dataclass
class Outcome:
    """What happened to the candidate layers of one model."""

    factorized: list[str]
    no_reduction: list[str]  # left alone: the factors would not save work
    grouped: list[str]  # left alone: grouped or depthwise conv
    classifier: str | None  # left alone: skip_classifier
    params_before: int
    params_after: int
    energy_kept: list[float]  # per factorized layer, share of squared singular values kept
    excluded: list[str] = field(default_factory=list)  # left alone: not matching ``include``


def candidate_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """nn.Linear and nn.Conv2d modules by exact type, in registration order.

    Subclasses are excluded on purpose: e.g. MultiheadAttention's ``out_proj`` is a
    Linear subclass whose weight the attention reads directly, so replacing the module
    with a Sequential would break it.
    """
    from torch import nn

    seen: set[int] = set()
    out = []
    for name, module in model.named_modules():
        if type(module) in (nn.Linear, nn.Conv2d) and id(module) not in seen:
            seen.add(id(module))
            out.append((name, module))
    return out


def _replace(model: nn.Module, replacements: dict[int, nn.Module]) -> None:
    """Swap every reference to a replaced module, so shared modules stay shared."""
    for parent in list(model.modules()):
        for attr, child in list(parent._modules.items()):
            if child is not None and id(child) in replacements:
                parent._modules[attr] = replacements[id(child)]


def factorize(model: nn.Module, params: SVDParams) -> tuple[nn.Module, Outcome]:
    import torch

    layers = candidate_layers(model)
    params_before = sum(p.numel() for p in model.parameters())
    classifier = None
    if params.skip_classifier:
        linears = [(n, m) for n, m in layers if isinstance(m, torch.nn.Linear)]
        if linears:
            classifier = linears[-1][0]
    outcome = Outcome([], [], [], classifier, params_before, params_before, [])
    replacements: dict[int, nn.Module] = {}
    pattern = re.compile(params.include) if params.include is not None else None
    for name, layer in layers:
        if name == classifier:
            continue
        if pattern is not None and not pattern.search(name):
            outcome.excluded.append(name)
            continue
        is_conv = isinstance(layer, torch.nn.Conv2d)
        if is_conv and layer.groups != 1:
            outcome.grouped.append(name)
            continue
        matrix = conv_matrix(layer) if is_conv else layer.weight.detach()
        fan_out, fan_in = matrix.shape
        # A ratio fixes the rank from the shape alone: skip the SVD (20 s for 4096x4096 on one
        # core) when the layer would be left alone anyway.
        if params.rank_ratio is not None and not reduces_work(
            ratio_rank(min(fan_out, fan_in), params.rank_ratio), fan_in, fan_out
        ):
            outcome.no_reduction.append(name)
            continue
        u, s, vh = svd(matrix)
        rank = rank_for(s, params)
        if not reduces_work(rank, fan_in, fan_out):
            outcome.no_reduction.append(name)
            continue
        energy = s.double().square()
        outcome.energy_kept.append(float(energy[:rank].sum() / energy.sum()) if float(energy.sum()) else 1.0)
        build = factorize_conv if is_conv else factorize_linear
        replacements[id(layer)] = build(layer, rank, (u, s, vh))
        outcome.factorized.append(name)
    _replace(model, replacements)
    outcome.params_after = sum(p.numel() for p in model.parameters())
    return model, outcome


def apply(model: nn.Module, params: SVDParams, ctx: MethodContext) -> nn.Module:
    from torch import nn

    if not any(isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)) for m in model.modules()):
        raise Skip.no_layers("lowrank.svd", "nn.Linear/nn.Conv1d/nn.Conv2d", model)
    model, out = factorize(model, params)
    rule = f"rank_ratio {params.rank_ratio}" if params.rank_ratio is not None else f"energy {params.energy}"
    msg = (
        f"lowrank.svd ({rule}): factorized {len(out.factorized)} layers, "
        f"left {len(out.no_reduction)} alone (no FLOP reduction)"
    )
    if out.grouped:
        msg += f", {len(out.grouped)} grouped conv(s) left alone"
    if out.classifier is not None:
        msg += f", classifier {out.classifier!r} left alone (skip_classifier)"
    if out.excluded:
        msg += f", {len(out.excluded)} not matching include {params.include!r} left alone"
    msg += f"; params {out.params_before} -> {out.params_after}"
    if out.energy_kept:
        msg += f"; energy kept per factorized layer: min {min(out.energy_kept):.4f}"
    ctx.log(msg)
    return model
