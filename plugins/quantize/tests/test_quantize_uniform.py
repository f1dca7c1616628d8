"""quantize.uniform: simulated k-bit weight quantization and the effective size it reports."""
from __future__ import annotations

import copy

import pytest
import torch
from optbench_quantize.uniform import fake_quantize
from torch import nn


def uniform(quantize_method, model, ctx, **params):
    method = quantize_method("quantize.uniform")
    return method.apply(model, method.params(**params), ctx)


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]


def test_8_bits_keep_accuracy_and_leave_biases_and_dtype_alone(quantize_method, optbench_digits, digits_cnn, method_context, accuracy):
    model = copy.deepcopy(digits_cnn)
    ctx = method_context(optbench_digits)
    out = uniform(quantize_method, model, ctx, bits=8)
    assert out is model  # in place
    assert abs(accuracy(out) - accuracy(digits_cnn)) <= 0.01
    assert all(w.dtype == torch.float32 for w in weights(out))
    assert not all(torch.equal(a, b) for a, b in zip(weights(out), weights(digits_cnn)))
    biases = lambda m: [x.bias for x in m.modules() if isinstance(x, (nn.Linear, nn.Conv2d))]  # noqa: E731
    assert all(torch.equal(a, b) for a, b in zip(biases(out), biases(digits_cnn)))
    assert set(ctx.facts) == {"model_bytes", "bits_per_param"}


@pytest.mark.parametrize("symmetric", [True, False])
def test_2_bits_per_tensor_leave_at_most_4_values_per_tensor(quantize_method, optbench_digits, digits_mlp, method_context, symmetric):
    model = uniform(quantize_method, copy.deepcopy(digits_mlp), method_context(optbench_digits), bits=2, symmetric=symmetric)
    assert all(len(w.unique()) <= 4 for w in weights(model))


def test_2_bits_per_channel_leave_at_most_4_values_per_output_channel(quantize_method, optbench_digits, digits_cnn, method_context):
    model = uniform(quantize_method, copy.deepcopy(digits_cnn), method_context(optbench_digits), bits=2, granularity="per_channel")
    for w in weights(model):
        assert all(len(row.unique()) <= 4 for row in w.reshape(w.shape[0], -1))
        assert len(w.unique()) > 4  # channels have their own scales


def test_reported_size_matches_the_formula_exactly(quantize_method, optbench_digits, method_context):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    params = 36 + 4 + 4 + 4 + 432 + 3
    # Not quantized, at their real size: conv bias 4, BN weight/bias/running_mean/running_var 4 each
    # (float32), BN num_batches_tracked (one int64), linear bias 3.
    others = 4 * (4 + 4 + 4 + 4 + 4 + 3) + 8

    ctx = method_context(optbench_digits)
    uniform(quantize_method, copy.deepcopy(model), ctx, bits=4, granularity="per_channel", symmetric=False)
    # conv: 36 weights x 4 bits = 18 bytes + 4 channels x (scale + zero point); linear: 432 x 4 / 8 + 3 x 8
    expected = (18 + 4 * 8) + (216 + 3 * 8) + others
    assert ctx.facts["model_bytes"] == expected == 390
    assert ctx.facts["bits_per_param"] == pytest.approx(expected * 8 / params)

    ctx = method_context(optbench_digits)
    uniform(quantize_method, copy.deepcopy(model), ctx, bits=3)
    # 36 x 3 bits = 13.5 bytes, stored in 14; one scale per tensor, no zero point
    assert ctx.facts["model_bytes"] == (14 + 4) + (162 + 4) + others


def test_model_bytes_shrink_with_bits(quantize_method, optbench_digits, digits_mlp, method_context):
    float_bytes = sum(p.numel() * 4 for p in digits_mlp.parameters())
    facts = {}
    for bits in (8, 4, 2):
        ctx = method_context(optbench_digits)
        uniform(quantize_method, copy.deepcopy(digits_mlp), ctx, bits=bits)
        facts[bits] = ctx.facts
    assert float_bytes > facts[8]["model_bytes"] > facts[4]["model_bytes"] > facts[2]["model_bytes"]
    for bits, f in facts.items():
        assert bits < f["bits_per_param"] < bits + 0.5  # biases stay float32


def test_asymmetric_zero_points_are_in_range_and_zero_is_exact():
    gen = torch.Generator().manual_seed(0)
    w = torch.stack([
        torch.rand(16, generator=gen) + 0.5,  # all positive
        -torch.rand(16, generator=gen) - 0.5,  # all negative
        torch.randn(16, generator=gen),  # mixed
        torch.zeros(16),  # no range at all
    ])
    w[2, 0] = 0.0
    for bits in (2, 4, 8):
        deq, zero_points = fake_quantize(w, bits, "per_channel", symmetric=False)
        assert torch.equal(zero_points, zero_points.round())
        assert ((zero_points >= 0) & (zero_points <= 2**bits - 1)).all()
        assert deq[2, 0] == 0.0 and torch.equal(deq[3], torch.zeros(16))
        step = (w.amax(1).clamp(min=0) - w.amin(1).clamp(max=0)) / (2**bits - 1)
        assert ((deq - w).abs() <= step[:, None] / 2 + 1e-6).all()


def test_symmetric_scale_and_levels():
    w = torch.tensor([[-1.0, -0.4, 0.0, 0.3, 0.5]])
    deq, zero_points = fake_quantize(w, 3, "per_tensor", symmetric=True)
    scale = 1.0 / 3  # max|w| / (2^(3-1) - 1)
    assert torch.equal(zero_points, torch.zeros(1))
    assert torch.allclose(deq, torch.tensor([[-3, -1, 0, 1, 2]]) * scale)
