"""quantize.half: float16/bfloat16 weights and activations behind a float32 interface."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn


def half(quantize_method, model, ctx, **params):
    method = quantize_method("quantize.half")
    return method.apply(copy.deepcopy(model), method.params(**params), ctx)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_weights_and_activations_are_half_and_output_is_float32(
    quantize_method, optbench_digits, digits_cnn, method_context, accuracy, dtype
):
    logs: list[str] = []
    wrapped = half(quantize_method, digits_cnn, method_context(optbench_digits, logs), dtype=dtype)
    assert {p.dtype for p in wrapped.parameters()} == {getattr(torch, dtype)}
    seen: list[torch.dtype] = []
    first_conv = next(m for m in wrapped.modules() if isinstance(m, nn.Conv2d))
    first_conv.register_forward_hook(lambda mod, inputs, out: seen.append(inputs[0].dtype))
    with torch.no_grad():
        out = wrapped(optbench_digits.x_test[:8])
    assert seen == [getattr(torch, dtype)]
    assert out.dtype == torch.float32
    assert abs(accuracy(wrapped) - accuracy(digits_cnn)) <= 0.01
    assert any(f"cast to {dtype}" in line for line in logs)


def test_state_dict_is_half_the_size(quantize_method, optbench_digits, digits_mlp, method_context):
    wrapped = half(quantize_method, digits_mlp, method_context(optbench_digits))
    nbytes = lambda m: sum(t.numel() * t.element_size() for t in m.state_dict().values())  # noqa: E731
    assert nbytes(wrapped) * 2 == nbytes(digits_mlp)


def test_integer_buffers_stay_integer(quantize_method, optbench_digits, method_context):
    bn = nn.Sequential(nn.Linear(64, 8), nn.BatchNorm1d(8)).eval()
    wrapped = half(quantize_method, bn, method_context(optbench_digits))
    buffers = dict(wrapped.named_buffers())
    assert buffers["model.1.running_mean"].dtype == torch.float16
    assert buffers["model.1.num_batches_tracked"].dtype == torch.int64
