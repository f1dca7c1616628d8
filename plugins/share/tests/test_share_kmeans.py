"""share.kmeans: at most 2**bits values per layer, exact effective size, accuracy kept."""
from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

import pydantic
import pytest
import torch
from optbench_share import plugin
from optbench_share.kmeans import (
    KMeansParams,
    assign,
    kmeans_1d,
    share_weights,
    shared_layers,
)
from torch import nn

from harness import Method, MethodContext, Skip
from harness.builtin.models import MLP, MLPParams
from harness.testing import make_method_context, registered_objects
from harness.train.classifier import evaluate_accuracy, train_classifier


def registered_method() -> Method:
    (method,) = registered_objects(plugin)
    return method



def share(model: nn.Module, seed: int = 0, **params) -> tuple[nn.Module, MethodContext]:
    method = registered_method()
    ctx = make_method_context(logs=[], seed=seed)
    return method.apply(model, method.params(**params), ctx), ctx


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 10),
    ).eval()




@pytest.fixture(scope="module")
def trained_mlp(optbench_digits) -> nn.Module:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread is fastest and immune to a busy machine
    try:
        model = MLP.build(MLPParams(), optbench_digits)
        return train_classifier(model, optbench_digits, epochs=20, lr=1e-3, batch_size=64, seed=0)
    finally:
        torch.set_num_threads(threads)


def test_registers_one_sharing_method_through_the_hookspec():
    assert [(m.name, m.kind, m.params) for m in registered_objects(plugin)] == [
        ("share.kmeans", "sharing", KMeansParams)
    ]


def test_entry_point_names_the_plugin_module():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["optbench"] == {"share": "optbench_share.plugin"}


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("init", ["linear", "kmeans++"])
def test_each_layer_has_at_most_two_to_the_bits_values(bits, init):
    model = small_cnn()
    biases = [m.bias.detach().clone() for m in shared_layers(model)]
    share(model, bits=bits, init=init)
    for layer, bias in zip(shared_layers(model), biases):
        assert layer.weight.dtype == torch.float32
        assert 1 < torch.unique(layer.weight).numel() <= 2**bits
        assert torch.equal(layer.bias, bias)  # biases are not shared


def test_the_reported_bytes_match_the_codebook_formula_exactly():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(50, 3)).eval()
    _, ctx = share(model, bits=3)
    conv = 2**3 * 4 + math.ceil(18 * 3 / 8)  # codebook of 8 float32 + 18 indices of 3 bits = 32 + 7
    linear = 2**3 * 4 + math.ceil(150 * 3 / 8)  # 32 + 57
    others = (2 + 2 + 2 + 3) * 4  # conv bias, bn weight and bias, linear bias as float32
    buffers = 2 * 4 + 2 * 4 + 8  # bn running mean and var, num_batches_tracked (int64)
    assert ctx.facts["model_bytes"] == conv + linear + others + buffers == 188
    params = 18 + 2 + 2 + 2 + 150 + 3
    assert ctx.facts["bits_per_param"] == pytest.approx(188 * 8 / params)


def test_tied_weights_are_clustered_and_counted_once():
    torch.manual_seed(0)
    shared = nn.Linear(16, 16, bias=False)
    model = nn.Sequential(shared, nn.ReLU(), shared).eval()
    _, ctx = share(model, bits=2)
    assert len(shared_layers(model)) == 1
    assert ctx.facts["model_bytes"] == 4 * 4 + math.ceil(256 * 2 / 8)


def test_accuracy_on_digits_at_5_bits_is_within_two_points_of_float(optbench_digits, trained_mlp):
    device = torch.device("cpu")
    base = evaluate_accuracy(trained_mlp, optbench_digits.x_test, optbench_digits.y_test, device=device)
    model, ctx = share(copy.deepcopy(trained_mlp), bits=5)
    shared = evaluate_accuracy(model, optbench_digits.x_test, optbench_digits.y_test, device=device)
    assert base > 0.9
    assert abs(shared - base) <= 0.02
    # 26,122 float32 params (104,488 bytes) -> 3 codebooks of 32 and 5-bit indices, float32 biases
    assert ctx.facts["model_bytes"] < 104_488 / 5
    assert 5 < ctx.facts["bits_per_param"] < 6


@pytest.mark.parametrize("bits", [2, 4])
def test_kmeans_iterations_reduce_the_error_of_the_linear_init(trained_mlp, bits):
    _, init_only = share_weights(copy.deepcopy(trained_mlp), KMeansParams(bits=bits, iters=0), 0)
    _, refined = share_weights(copy.deepcopy(trained_mlp), KMeansParams(bits=bits, iters=20), 0)
    assert all(r <= i * (1 + 1e-9) for r, i in zip(refined, init_only))
    assert sum(refined) < 0.9 * sum(init_only)


def test_the_same_seed_gives_the_same_weights_and_another_seed_may_not():
    def weights(seed: int) -> list[torch.Tensor]:
        model, _ = share(small_cnn(), seed=seed, bits=3, init="kmeans++", iters=0)
        return [layer.weight.detach().clone() for layer in shared_layers(model)]

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_linear_init_ignores_the_seed():
    a, _ = share(small_cnn(), seed=0, bits=3)
    b, _ = share(small_cnn(), seed=7, bits=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_kmeans_finds_two_clumps():
    g = torch.Generator().manual_seed(0)
    values = torch.cat([torch.randn(500, generator=g) * 0.01 - 1, torch.randn(300, generator=g) * 0.01 + 2])
    centroids, idx, _ = kmeans_1d(values, 2, init="linear", iters=20, generator=g)
    assert torch.allclose(centroids, torch.stack([values[:500].double().mean(), values[500:].double().mean()]))
    assert torch.equal(idx, torch.tensor([0] * 500 + [1] * 300))


def test_empty_clusters_keep_their_centroid():
    values = torch.tensor([0.0, 0.0, 0.0, 9.0, 9.0])
    # linear init over [0, 9] with k=4: 0, 3, 6, 9; the middle two get no values
    centroids, idx, _ = kmeans_1d(values, 4, init="linear", iters=5, generator=torch.Generator())
    assert centroids.tolist() == [0.0, 3.0, 6.0, 9.0]
    assert idx.tolist() == [0, 0, 0, 3, 3]


def test_assignment_is_the_nearest_centroid():
    g = torch.Generator().manual_seed(0)
    values = torch.randn(1000, generator=g, dtype=torch.float64)
    centroids, _ = torch.sort(torch.randn(16, generator=g, dtype=torch.float64))
    brute = (values[:, None] - centroids[None, :]).abs().argmin(dim=1)
    assert torch.equal(assign(values, centroids), brute)


def test_a_constant_layer_survives_both_inits():
    for init in ("linear", "kmeans++"):
        layer = nn.Linear(4, 4)
        with torch.no_grad():
            layer.weight.fill_(0.5)
        share(nn.Sequential(layer), bits=2, init=init)
        assert torch.all(layer.weight == 0.5)


def test_a_model_without_weights_to_share_is_skipped_with_the_reason():
    model = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)).eval()
    with pytest.raises(Skip, match="share.kmeans: the model has no nn.Linear/nn.Conv layer"):
        share(model)


def test_the_shared_model_still_runs_and_logs_its_size():
    logs: list[str] = []
    method = registered_method()
    model = method.apply(small_cnn(), KMeansParams(bits=4), make_method_context(logs=logs))
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert len(logs) == 1 and "3 layer(s)" in logs[0] and "bits/param" in logs[0]


@pytest.mark.parametrize(
    "bad", [{"bits": 0}, {"bits": 9}, {"bits": 2.5}, {"init": "random"}, {"iters": -1}, {"clusters": 16}]
)
def test_params_reject_invalid_values(bad):
    with pytest.raises(pydantic.ValidationError):
        KMeansParams(**bad)


def test_params_defaults_and_descriptions():
    assert KMeansParams() == KMeansParams(bits=5, init="linear", iters=20)
    assert all(f.description for f in KMeansParams.model_fields.values())
