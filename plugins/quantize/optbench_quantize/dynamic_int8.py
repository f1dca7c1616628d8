"""Dynamic quantization of ``nn.Linear`` layers with torch's eager-mode API.

Weights are quantized once, ahead of time; activations are quantized on the fly
from each batch's range, so no calibration data is needed. Only ``nn.Linear`` is
converted: torch has no dynamic kernels for convolutions, so conv layers stay float.

torch imports stay inside functions: this module is imported at plugin discovery,
and discovery should not pay for importing torch.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness import MethodContext, Params, Skip

if TYPE_CHECKING:
    from torch import nn

#: Engines in order of preference; "x86" is torch's default on x86 CPUs (fbgemm + onednn).
ENGINE_PREFERENCE = ("x86", "fbgemm", "qnnpack")
#: float16 dynamic linear has kernels only in fbgemm (and x86, which uses it).
FLOAT16_ENGINES = ("x86", "fbgemm")


class DynamicInt8Params(Params):
    dtype: Literal["qint8", "float16"] = Field(
        "qint8",
        description="weight dtype: qint8 (int8 weights, int8 GEMM) or float16 (half-precision weights, float GEMM)",
    )


def choose_engine(supported: Sequence[str], dtype: str = "qint8") -> str:
    """The quantized engine to use among ``supported``; Skip when none can run ``dtype``."""
    preferred = FLOAT16_ENGINES if dtype == "float16" else ENGINE_PREFERENCE
    for engine in preferred:
        if engine in supported:
            return engine
    raise Skip(
        f"no quantized engine for dynamic {dtype} linear in this torch build "
        f"(supported: {list(supported) or 'none'}; needs one of {list(preferred)})"
    )


def apply(model: nn.Module, params: DynamicInt8Params, ctx: MethodContext) -> nn.Module:
    import torch
    from torch import nn

    linears = sum(isinstance(m, nn.Linear) for m in model.modules())
    if linears == 0:
        raise Skip.no_layers("quantize.dynamic_int8", "nn.Linear (torch has no dynamic int8 convolution)", model)

    engine = choose_engine(torch.backends.quantized.supported_engines, params.dtype)
    torch.backends.quantized.engine = engine
    dtype = torch.qint8 if params.dtype == "qint8" else torch.float16
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated (torchao replaces it) and warns on every call;
        # the warning is about torch's roadmap, not this run, so keep it out of the logs.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*", category=UserWarning)
        # inplace=False (the default): a converted copy; the float model stays as it was.
        quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=dtype)

    convs = sum(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) for m in model.modules())
    note = f"; {convs} conv layer(s) left in float32" if convs else ""
    ctx.log(f"quantize.dynamic_int8: {linears} nn.Linear layer(s) -> dynamic {params.dtype} (engine {engine}){note}")
    return quantized
