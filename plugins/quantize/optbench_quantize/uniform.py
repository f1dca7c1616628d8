"""Simulated k-bit uniform affine weight quantization, for accuracy-vs-bit-width studies.

Every nn.Linear / nn.Conv1d / nn.Conv2d weight is quantized to ``bits``-bit integers
and dequantized back in place ("fake quantization"): the model keeps float32 weights
in memory and runs float kernels, so latency does not change, but its outputs are
those of a k-bit model. The storage such a model would need is computed from the
formula and reported with ``ctx.report`` because the float32 state_dict cannot show it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness import MethodContext, Params

if TYPE_CHECKING:
    import torch
    from torch import nn

NAME = "quantize.uniform"
#: Bytes of one stored scale or zero point (float32 / int32).
QPARAM_BYTES = 4


class UniformParams(Params):
    bits: int = Field(8, ge=2, le=8, description="bits per quantized weight")
    granularity: Literal["per_tensor", "per_channel"] = Field(
        "per_tensor", description="one scale (and zero point) per weight tensor, or one per output channel"
    )
    symmetric: bool = Field(
        True,
        description="symmetric: zero point 0, scale max|w|/(2^(b-1)-1); asymmetric: scale (max-min)/(2^b-1), "
        "zero point round(-min/scale)",
    )


@dataclass(frozen=True)
class QuantizedWeight:
    """What one quantized tensor costs in storage."""

    numel: int
    qparam_sets: int  # 1 per tensor, or the number of output channels

    def nbytes(self, bits: int, symmetric: bool) -> int:
        per_set = QPARAM_BYTES if symmetric else 2 * QPARAM_BYTES
        return math.ceil(bits * self.numel / 8) + per_set * self.qparam_sets


def qparams(w: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point for each row of ``w`` (rows: 1 for per-tensor, out channels for per-channel).

    Asymmetric ranges are widened to include 0, as torch's observers do, so that 0.0 is
    exactly representable and the zero point always lies in [0, 2^b - 1].
    """
    import torch

    def positive(scale: torch.Tensor) -> torch.Tensor:
        # An all-zero row has no range; any positive scale maps it to 0 exactly.
        return torch.where(scale > 0, scale, torch.ones_like(scale))

    if symmetric:
        scale = positive(w.abs().amax(dim=1) / (2 ** (bits - 1) - 1))
        return scale, torch.zeros_like(scale)
    lo, hi = w.amin(dim=1).clamp(max=0.0), w.amax(dim=1).clamp(min=0.0)
    scale = positive((hi - lo) / (2**bits - 1))
    zero_point = torch.round(-lo / scale).clamp(0, 2**bits - 1)
    return scale, zero_point


def fake_quantize(w: torch.Tensor, bits: int, granularity: str, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(dequantized weight, zero points): quantize to ``bits``-bit integers and map back to float."""
    import torch

    rows = w.reshape(w.shape[0], -1) if granularity == "per_channel" else w.reshape(1, -1)
    scale, zero_point = qparams(rows, bits, symmetric)
    scale, zero_point = scale[:, None], zero_point[:, None]
    if symmetric:
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        qmin, qmax = 0, 2**bits - 1
    q = torch.clamp(torch.round(rows / scale) + zero_point, qmin, qmax)
    return ((q - zero_point) * scale).reshape(w.shape), zero_point.flatten()


def quantizable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from torch import nn

    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)) and isinstance(getattr(m, "weight", None), nn.Parameter)
    ]


def effective_bytes(model: nn.Module, quantized: dict[int, QuantizedWeight], bits: int, symmetric: bool) -> int:
    """Quantized weights by the formula; every other parameter and buffer at its real size."""
    total = 0
    for t in [*model.parameters(), *model.buffers()]:
        q = quantized.get(id(t))
        total += q.nbytes(bits, symmetric) if q is not None else t.numel() * t.element_size()
    return total


def apply(model: nn.Module, params: UniformParams, ctx: MethodContext) -> nn.Module:
    import torch

    quantized: dict[int, QuantizedWeight] = {}
    with torch.no_grad():
        for _, layer in quantizable_layers(model):
            w = layer.weight
            if id(w) in quantized:  # a weight shared by two layers is quantized (and counted) once
                continue
            dequantized, _ = fake_quantize(w.detach().float(), params.bits, params.granularity, params.symmetric)
            w.copy_(dequantized.to(w.dtype))
            sets = w.shape[0] if params.granularity == "per_channel" else 1
            quantized[id(w)] = QuantizedWeight(w.numel(), sets)

    model_bytes = effective_bytes(model, quantized, params.bits, params.symmetric)
    total_params = sum(p.numel() for p in model.parameters())
    bits_per_param = model_bytes * 8 / total_params if total_params else None
    ctx.report(model_bytes=model_bytes, bits_per_param=bits_per_param)
    qweights = sum(q.numel for q in quantized.values())
    ctx.log(
        f"{NAME}: {len(quantized)} weight tensor(s), {qweights} of {total_params} parameters fake-quantized to "
        f"{params.bits} bits ({params.granularity}, {'symmetric' if params.symmetric else 'asymmetric'}); "
        f"effective size {model_bytes} bytes, {bits_per_param if bits_per_param is None else round(bits_per_param, 3)} bits/param"
    )
    return model
