"""Quantization-aware fine-tuning with torch's FX graph-mode flow, then int8 conversion.

``prepare_qat_fx`` inserts fake-quantize modules (x86 QAT qconfig: per-channel
symmetric int8 weights, 7-bit-range uint8 activations with moving-average ranges),
so fine-tuning sees the rounding error and the weights adapt to it. ``convert_fx``
then produces the same int8 modules as quantize.static_int8.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from pydantic import Field

from harness import MethodContext, Params, Skip, call_model
from optbench_quantize import fx_graph_mode

if TYPE_CHECKING:
    from torch import nn

NAME = "quantize.qat"


class QATParams(Params):
    epochs: int = Field(2, ge=0, le=1000, description="fine-tuning epochs with fake quantization (0: calibrate only)")
    lr: float = Field(1e-4, gt=0.0, le=10.0, description="Adam learning rate for fine-tuning")
    batch_size: int = Field(64, ge=1, le=65_536, description="fine-tuning batch size")


def apply(model: nn.Module, params: QATParams, ctx: MethodContext) -> nn.Module:
    import torch
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx

    from harness import train_classifier

    if not ctx.data.train.has_labels:
        raise Skip("needs labelled training data")
    fx_graph_mode.require_cpu(ctx, NAME)
    engine = fx_graph_mode.choose_fx_engine(torch.backends.quantized.supported_engines)
    torch.backends.quantized.engine = engine
    example = ctx.data.train.example(min(params.batch_size, len(ctx.data.train)))
    convs, linears = fx_graph_mode.float_layer_counts(model)

    with fx_graph_mode.quiet_ao_warnings():
        # A copy, in train mode as prepare_qat_fx requires; the float model stays as it was.
        float_model = copy.deepcopy(model).train()
        prepared = fx_graph_mode.prepare_or_explain(
            prepare_qat_fx, float_model, get_default_qat_qconfig_mapping(engine), example, NAME
        )
        # Fake-quant observers update on every training forward, so epochs=0 still needs
        # one pass to give activations a range: run the example batch through in train mode.
        if params.epochs == 0:
            with torch.no_grad():
                call_model(prepared.train(), example)
        train_classifier(
            prepared, ctx.data, epochs=params.epochs, lr=params.lr, batch_size=params.batch_size, seed=ctx.seed
        )
        quantized = convert_fx(prepared.eval())
        with torch.no_grad():
            quantized(example)  # fails here, not in the timed loop; also spends torch's warn-once notes

    ctx.log(
        f"{NAME}: fine-tuned {params.epochs} epoch(s) with fake quantization (lr {params.lr}, batch {params.batch_size}), "
        f"{fx_graph_mode.quantized_layer_count(quantized)} int8 layer(s) from {convs} conv + {linears} linear "
        f"(engine {engine})"
    )
    return quantized
