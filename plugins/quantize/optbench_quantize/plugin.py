"""Entry point module (``optbench`` group): registers the quantization methods."""
from __future__ import annotations

from collections.abc import Callable

from harness import Method, hookimpl
from optbench_quantize import (
    dynamic_int8,
    half,
    hqq_quantize,
    qat,
    static_int8,
    torchao_quantize,
    uniform,
)


@hookimpl
def register_methods(register: Callable[[Method], None]) -> None:
    register(
        Method(
            name="quantize.dynamic_int8",
            kind="quantizer",
            description="dynamic quantization of nn.Linear weights (int8 or float16), activations quantized per batch",
            params=dynamic_int8.DynamicInt8Params,
            apply=dynamic_int8.apply,
        )
    )
    register(
        Method(
            name=static_int8.NAME,
            kind="quantizer",
            description="post-training static int8 (torch FX graph mode): calibrated activation ranges, int8 Conv/Linear kernels",
            params=static_int8.StaticInt8Params,
            apply=static_int8.apply,
        )
    )
    register(
        Method(
            name=qat.NAME,
            kind="quantizer",
            description="quantization-aware fine-tuning (torch FX fake quantization), then int8 conversion",
            params=qat.QATParams,
            apply=qat.apply,
        )
    )
    register(
        Method(
            name=half.NAME,
            kind="quantizer",
            description="float16/bfloat16 weights and activations behind a float32 interface",
            params=half.HalfParams,
            apply=half.apply,
        )
    )
    register(
        Method(
            name=uniform.NAME,
            kind="quantizer",
            description="simulated k-bit (2..8) uniform affine weight quantization of Linear/Conv; reports the effective size",
            params=uniform.UniformParams,
            apply=uniform.apply,
        )
    )
    register(
        Method(
            name=torchao_quantize.NAME,
            kind="quantizer",
            description="torchao quantize_ of nn.Linear weights: int8 weight-only, int8 dynamic, int4 weight-only, float8 dynamic",
            params=torchao_quantize.TorchAOParams,
            apply=torchao_quantize.apply,
        )
    )
    register(
        Method(
            name=hqq_quantize.NAME,
            kind="quantizer",
            description="HQQ (half-quadratic quantization) of nn.Linear weights to 1..8 bits in groups, no calibration data",
            params=hqq_quantize.HQQParams,
            apply=hqq_quantize.apply,
        )
    )
