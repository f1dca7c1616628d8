"""lowrank.svd: truncated-SVD factors, ranks, the work check and what is left alone."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pydantic
import pytest
import torch
from optbench_lowrank import plugin
from optbench_lowrank.svd import (
    SVDParams,
    conv_matrix,
    factorize_conv,
    factorize_linear,
    rank_for,
    svd,
)
from torch import nn

from harness import Method
from harness.measure import model_stats
from harness.testing import make_method_context, registered_objects


def registered_method() -> Method:
    (method,) = registered_objects(plugin)
    return method



def factorize(model: nn.Module, logs: list[str] | None = None, **params) -> nn.Module:
    method = registered_method()
    return method.apply(model, method.params(**params), make_method_context(logs=[] if logs is None else logs))


def flops(model: nn.Module, x: torch.Tensor) -> int | None:
    counted = model_stats.count_flops(model, x)
    return counted[0] if isinstance(counted, tuple) else counted  # (flops, effective_flops) in newer harness


def with_spectrum(out: int, inp: int, singular: list[float], seed: int = 0) -> torch.Tensor:
    """An (out, inp) matrix whose singular values are exactly ``singular`` (then zeros)."""
    g = torch.Generator().manual_seed(seed)
    q1, _ = torch.linalg.qr(torch.randn(out, out, generator=g, dtype=torch.float64))
    q2, _ = torch.linalg.qr(torch.randn(inp, inp, generator=g, dtype=torch.float64))
    s = torch.zeros(min(out, inp), dtype=torch.float64)
    s[: len(singular)] = torch.tensor(singular, dtype=torch.float64)
    return (q1[:, : s.numel()] * s) @ q2[:, : s.numel()].T


def linear_with(weight: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer.eval()


def test_registers_one_factorizer_through_the_hookspec():
    assert [(m.name, m.kind, m.params) for m in registered_objects(plugin)] == [
        ("lowrank.svd", "factorizer", SVDParams)
    ]


def test_entry_point_names_the_plugin_module():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["optbench"] == {"lowrank": "optbench_lowrank.plugin"}


# --- the factors -----------------------------------------------------------------------


def test_linear_factors_have_the_right_shapes_and_bias_placement():
    layer = nn.Linear(12, 8)
    pair = factorize_linear(layer, 3)
    first, second = pair
    assert (first.in_features, first.out_features, first.bias) == (12, 3, None)
    assert (second.in_features, second.out_features) == (3, 8)
    assert torch.equal(second.bias, layer.bias)
    assert pair(torch.randn(5, 12)).shape == (5, 8)


@torch.no_grad()
def test_singular_values_are_split_evenly_between_the_factors():
    layer = linear_with(with_spectrum(6, 10, [9.0, 4.0, 1.0]).float())
    first, second = factorize_linear(layer, 2)
    # first = sqrt(S) V^T has orthogonal rows of norm sqrt(s); second = U sqrt(S) orthogonal columns
    assert torch.allclose(first.weight @ first.weight.T, torch.diag(torch.tensor([9.0, 4.0])), atol=1e-5)
    assert torch.allclose(second.weight.T @ second.weight, torch.diag(torch.tensor([9.0, 4.0])), atol=1e-5)


@pytest.mark.parametrize("rank", [1, 3, 6, 10])
@torch.no_grad()
def test_reconstruction_error_is_the_discarded_singular_values(rank):
    w = torch.randn(10, 24, generator=torch.Generator().manual_seed(1))
    first, second = factorize_linear(linear_with(w), rank)
    _, s, _ = torch.linalg.svd(w.double())
    error = torch.linalg.matrix_norm(w.double() - (second.weight @ first.weight).double())
    assert error == pytest.approx(float(s[rank:].square().sum().sqrt()), abs=1e-4)


def test_full_rank_factors_reproduce_the_layer_exactly():
    layer = linear_with(torch.randn(16, 20, generator=torch.Generator().manual_seed(2)))
    x = torch.randn(7, 20)
    assert torch.allclose(factorize_linear(layer, 16)(x), layer(x), atol=1e-5)


@torch.no_grad()
def test_output_degrades_gracefully_as_the_rank_falls():
    # a decaying spectrum s_i = 2^-i, like a trained layer's: for isotropic input the relative
    # output error is about ||W - W_r|| / ||W|| = 2^-r, so it grows smoothly as the rank shrinks
    layer = linear_with(with_spectrum(32, 48, [2.0**-i for i in range(32)]).float())
    x = torch.randn(256, 48, generator=torch.Generator().manual_seed(3))
    ref = layer(x) - layer.bias
    errors = {r: float((factorize_linear(layer, r)(x) - layer(x)).norm() / ref.norm()) for r in (32, 16, 8, 4, 2, 1)}
    assert errors[32] < 1e-5
    assert list(errors.values()) == sorted(errors.values())  # never better with less rank
    for r in (8, 4, 2, 1):
        assert 0.6 * 2.0**-r < errors[r] < 1.5 * 2.0**-r, (r, errors[r])


@pytest.mark.parametrize(
    "conv",
    [
        dict(in_channels=3, out_channels=8, kernel_size=3, padding=1),
        dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=2, padding=(1, 0), dilation=(2, 1)),
        dict(in_channels=2, out_channels=5, kernel_size=3, padding=1, padding_mode="reflect", bias=False),
    ],
)
def test_conv_factors_at_full_rank_match_the_original_conv(conv):
    torch.manual_seed(0)
    layer = nn.Conv2d(**conv).eval()
    full = min(conv_matrix(layer).shape)
    first, second = factorize_conv(layer, full)
    assert first.kernel_size == layer.kernel_size and first.stride == layer.stride
    assert first.padding == layer.padding and first.dilation == layer.dilation and first.bias is None
    assert second.kernel_size == (1, 1) and (second.bias is None) == (layer.bias is None)
    x = torch.randn(2, layer.in_channels, 9, 11)
    assert torch.allclose(nn.Sequential(first, second)(x), layer(x), atol=1e-5)


@torch.no_grad()
def test_conv_reconstruction_error_is_the_discarded_singular_values():
    torch.manual_seed(0)
    layer = nn.Conv2d(8, 16, 3)
    first, second = factorize_conv(layer, 4)
    product = second.weight.flatten(1) @ first.weight.flatten(1)
    _, s, _ = torch.linalg.svd(conv_matrix(layer).double())
    error = torch.linalg.matrix_norm(conv_matrix(layer).double() - product.double())
    assert error == pytest.approx(float(s[4:].square().sum().sqrt()), abs=1e-4)


def test_grouped_conv_cannot_be_factorized():
    with pytest.raises(ValueError, match="groups=2"):
        factorize_conv(nn.Conv2d(4, 4, 3, groups=2), 2)


def test_svd_of_a_wide_matrix_is_a_valid_thin_svd():
    w = torch.randn(5, 30)
    u, s, vh = svd(w)
    assert u.shape == (5, 5) and s.shape == (5,) and vh.shape == (5, 30)
    assert torch.allclose((u * s) @ vh, w, atol=1e-5)


# --- the rank --------------------------------------------------------------------------

SPECTRUM = torch.tensor([4.0, 2.0, 1.0, 0.5])  # squared: 16, 4, 1, 0.25 of 21.25


@pytest.mark.parametrize(
    ("energy", "rank"),
    [(0.5, 1), (16 / 21.25, 1), (0.76, 2), (20 / 21.25, 2), (0.95, 3), (0.99, 4), (1.0, 4)],
)
def test_rank_from_energy_on_a_known_spectrum(energy, rank):
    assert rank_for(SPECTRUM, SVDParams(energy=energy)) == rank


@pytest.mark.parametrize(("ratio", "rank"), [(0.01, 1), (0.25, 16), (0.5, 32), (0.51, 33), (1.0, 64)])
def test_rank_from_ratio_rounds_up_and_stays_in_range(ratio, rank):
    assert rank_for(torch.ones(64), SVDParams(rank_ratio=ratio)) == rank


def test_energy_rule_picks_the_rank_inside_a_model():
    layer = linear_with(with_spectrum(16, 24, [4.0, 2.0, 1.0, 0.5]).float())
    model = factorize(nn.Sequential(layer), energy=0.95)
    assert model[0][0].out_features == 3


# --- the method on models --------------------------------------------------------------


def test_square_layers_at_full_rank_are_left_alone_and_counted():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.Linear(16, 8)).eval()
    logs: list[str] = []
    out = factorize(model, logs, rank_ratio=1.0)
    assert [type(m) for m in out] == [nn.Linear, nn.ReLU, nn.Conv2d, nn.Linear]
    assert "factorized 0 layers, left 3 alone (no FLOP reduction)" in logs[0]


def test_wide_layers_are_factorized_and_narrow_ones_left_alone():
    torch.manual_seed(0)
    # rank 0.5: 64x128 -> r=32, 32*192 < 8192: factorized; 128x128 -> r=64, 64*256 = 128*128: left alone
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    logs: list[str] = []
    out = factorize(model.eval(), logs)  # default rank_ratio 0.5
    assert [type(m) for m in out] == [nn.Sequential, nn.ReLU, nn.Linear, nn.ReLU, nn.Sequential]
    assert "factorized 2 layers, left 1 alone (no FLOP reduction)" in logs[0]


def test_params_and_flops_drop_on_a_4096_wide_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4096, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    x = torch.randn(1, 4096)
    before_params, _ = model_stats.param_counts(model)
    before_flops = flops(model, x)
    factorize(model, rank_ratio=0.25)
    after_params, _ = model_stats.param_counts(model)
    # 4096x256 at r=64: 64*(4096+256) weights instead of 4096*256, i.e. 3.8x fewer
    assert model[0][0].weight.shape == (64, 4096) and model[0][1].weight.shape == (256, 64)
    assert after_params < before_params / 3.4
    after_flops = flops(model, x)
    if before_flops is not None and after_flops is not None:
        assert after_flops < before_flops / 3.4


def test_skip_classifier_keeps_the_last_linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).eval()
    logs: list[str] = []
    out = factorize(model, logs, rank_ratio=0.25, skip_classifier=True)
    assert type(out[0]) is nn.Sequential and type(out[2]) is nn.Linear
    assert "factorized 1 layers, left 0 alone" in logs[0] and "classifier '2' left alone" in logs[0]


def test_cnn_convs_are_factorized_and_grouped_convs_left_alone():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1, groups=4), nn.Flatten()
    ).eval()
    x = torch.randn(2, 16, 6, 6)
    ref = model(x)
    logs: list[str] = []
    out = factorize(model, logs, rank_ratio=1.0 * 16 / 32)  # r=16 of 32: 16*(144+32) < 32*144
    assert type(out[0]) is nn.Sequential and type(out[2]) is nn.Conv2d
    assert "1 grouped conv(s) left alone" in logs[0]
    assert out(x).shape == ref.shape


def test_a_shared_layer_stays_shared():
    torch.manual_seed(0)
    shared = nn.Linear(64, 64)
    model = nn.Sequential(nn.Linear(8, 64), shared, nn.ReLU(), shared).eval()
    out = factorize(model, rank_ratio=0.25)
    assert out[1] is out[3] and type(out[1]) is nn.Sequential


def test_attention_projections_are_not_touched():
    mha = nn.MultiheadAttention(32, 4, batch_first=True)
    model = nn.ModuleDict({"attn": mha})
    factorize(model, rank_ratio=0.1)
    assert type(model["attn"].out_proj) is nn.modules.linear.NonDynamicallyQuantizableLinear


def test_the_factorized_model_still_trains():
    torch.manual_seed(0)
    model = factorize(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), rank_ratio=0.25)
    model(torch.randn(4, 64)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


# --- params ----------------------------------------------------------------------------


def test_params_default_to_rank_ratio_one_half_and_round_trip():
    assert SVDParams() == SVDParams(rank_ratio=0.5, energy=None, skip_classifier=False)
    assert SVDParams(energy=0.9).rank_ratio is None
    for p in (SVDParams(), SVDParams(energy=0.9), SVDParams(rank_ratio=0.2, skip_classifier=True)):
        assert SVDParams.model_validate(p.model_dump(mode="json")) == p


@pytest.mark.parametrize(
    "bad",
    [
        {"rank_ratio": 0.0},
        {"rank_ratio": 1.5},
        {"rank_ratio": -0.1},
        {"energy": 0.0},
        {"energy": 1.01},
        {"rank_ratio": 0.5, "energy": 0.9},
        {"rank": 8},
        {"skip_classifier": "maybe"},
    ],
)
def test_params_reject_invalid_values(bad):
    with pytest.raises(pydantic.ValidationError):
        SVDParams(**bad)


def test_both_rules_at_once_names_both():
    with pytest.raises(pydantic.ValidationError, match="either rank_ratio or energy"):
        SVDParams(rank_ratio=0.5, energy=0.9)


def test_params_have_descriptions():
    assert all(f.description for f in SVDParams.model_fields.values())


def test_include_factorizes_only_the_layers_whose_name_matches():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.Linear(64, 64)
            self.mlp = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.mlp(self.attn(x))

    from optbench_lowrank.svd import factorize as factorize_model

    model, out = factorize_model(Block(), SVDParams(rank_ratio=0.25, include=r"^mlp\."))
    assert out.factorized == ["mlp.0", "mlp.2"] and out.excluded == ["attn"]
    assert type(model.attn) is nn.Linear and type(model.mlp[0]) is not nn.Linear
    with pytest.raises(ValueError, match="regular expression"):
        SVDParams(include="(")
