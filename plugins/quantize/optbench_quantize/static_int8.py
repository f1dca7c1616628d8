"""Post-training static int8 quantization with torch's FX graph-mode flow.

Static: activation ranges are fixed ahead of time from calibration batches of the
training split, so at run time every Conv/Linear takes int8 input and no per-call
range computation is paid (unlike quantize.dynamic_int8). FX traces the model,
fuses Conv/Linear with a following ReLU, inserts observers, and ``convert_fx``
swaps in ``torch.ao.nn.quantized`` modules that run real int8 kernels in eager mode.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from harness import MethodContext, Params, Split, TensorSplit, call_model
from optbench_quantize import fx_graph_mode

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.ao.quantization import QConfigMapping

NAME = "quantize.static_int8"


class StaticInt8Params(Params):
    calibration_batches: int = Field(8, ge=1, le=1000, description="training batches run through the observers")
    calibration_batch_size: int = Field(32, ge=1, le=65_536, description="samples per calibration batch")
    observer: Literal["minmax", "histogram"] = Field(
        "minmax",
        description="activation range observer: minmax (running min/max) or histogram "
        "(minimizes quantization error over a histogram; slower calibration, robust to outliers)",
    )
    weights: Literal["per_tensor", "per_channel"] = Field(
        "per_tensor", description="weight scale granularity (symmetric int8): one per tensor or one per output channel"
    )


def build_qconfig_mapping(params: StaticInt8Params, engine: str) -> QConfigMapping:
    """torch's default mapping for ``engine`` with the global qconfig set from the params.

    The default mapping is kept for its special cases (fixed-qparams ops such as
    sigmoid, per-tensor weights for transposed convs, reshape reusing its input's qparams).
    """
    import torch
    from torch.ao.quantization import (
        HistogramObserver,
        MinMaxObserver,
        QConfig,
        default_per_channel_weight_observer,
        default_weight_observer,
        get_default_qconfig_mapping,
    )

    observer = HistogramObserver if params.observer == "histogram" else MinMaxObserver
    # reduce_range=True for activations, as torch's own x86/fbgemm qconfigs: 7-bit activations
    # keep the u8 x s8 multiply-add from saturating on CPUs without VNNI.
    activation = observer.with_args(dtype=torch.quint8, reduce_range=True)
    weight = default_per_channel_weight_observer if params.weights == "per_channel" else default_weight_observer
    return get_default_qconfig_mapping(engine).set_global(QConfig(activation=activation, weight=weight))


def calibration_batches(data: Split | torch.Tensor, params: StaticInt8Params, seed: int) -> list[Any]:
    """Up to ``calibration_batches`` disjoint batches of inputs from a seeded shuffle of a split (or of
    an in-memory tensor of inputs)."""
    import torch

    split = data if isinstance(data, Split) else TensorSplit(data)
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    size = params.calibration_batch_size
    starts = range(0, min(len(split), params.calibration_batches * size), size)
    return [split.batch(order[s : s + size]).inputs for s in starts]


def apply(model: nn.Module, params: StaticInt8Params, ctx: MethodContext) -> nn.Module:
    import torch
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    fx_graph_mode.require_cpu(ctx, NAME)
    engine = fx_graph_mode.choose_fx_engine(torch.backends.quantized.supported_engines)
    torch.backends.quantized.engine = engine
    batches = calibration_batches(ctx.data.train, params, ctx.seed)
    example = ctx.data.train.example(min(params.calibration_batch_size, len(ctx.data.train)))
    convs, linears = fx_graph_mode.float_layer_counts(model)

    with fx_graph_mode.quiet_ao_warnings():
        # A copy: FX fusion and observer insertion rewrite modules; the float model stays as it was.
        float_model = copy.deepcopy(model).eval()
        prepared = fx_graph_mode.prepare_or_explain(
            prepare_fx, float_model, build_qconfig_mapping(params, engine), example, NAME
        )
        with torch.no_grad():
            for batch in batches:
                call_model(prepared, batch)
        quantized = convert_fx(prepared)
        with torch.no_grad():
            quantized(example)  # fails here, not in the timed loop; also spends torch's warn-once notes

    ctx.log(
        f"{NAME}: {fx_graph_mode.quantized_layer_count(quantized)} int8 layer(s) from {convs} conv + {linears} linear "
        f"(engine {engine}, {params.observer} observer, {params.weights} weights, "
        f"calibrated on {sum(b.shape[0] for b in batches)} samples in {len(batches)} batch(es))"
    )
    return quantized
