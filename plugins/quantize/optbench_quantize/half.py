"""Half-precision inference: weights AND activations in float16 or bfloat16.

Unlike quantize.dynamic_int8's float16 option (half-precision weights, float32
activations), every parameter, floating buffer and activation is in the half dtype.
The model is wrapped so it still takes and returns float32 (see cast_wrapper).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness import MethodContext, Params

if TYPE_CHECKING:
    from torch import nn

NAME = "quantize.half"


class HalfParams(Params):
    dtype: Literal["float16", "bfloat16"] = Field(
        "float16",
        description="compute and storage dtype: float16 (10-bit mantissa, narrow range) or "
        "bfloat16 (float32's range, 7-bit mantissa)",
    )


def apply(model: nn.Module, params: HalfParams, ctx: MethodContext) -> nn.Module:
    import torch

    from optbench_quantize.cast_wrapper import CastWrapper

    dtype = getattr(torch, params.dtype)
    tensors = [*model.parameters(), *model.buffers()]
    cast = sum(t.numel() for t in tensors if t.is_floating_point())
    # In place: Module.to casts floating parameters and buffers (BN statistics too), not integer buffers.
    wrapped = CastWrapper(model.to(dtype), dtype)
    ctx.log(f"{NAME}: {cast} floating parameter/buffer elements cast to {params.dtype}; input cast in, output cast to float32")
    return wrapped
