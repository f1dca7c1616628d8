"""prune.magnitude: the right fraction of the smallest weights becomes zero, permanently."""
from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pydantic
import pytest
import torch
from optbench_prune import plugin
from optbench_prune.magnitude import MagnitudeParams, prunable_layers
from torch import nn

from harness import Method, Skip
from harness.testing import make_method_context, registered_objects


class Net(nn.Module):
    """Conv2d -> Conv1d -> Linear -> Linear: every prunable kind, with different fan-ins."""

    def __init__(self) -> None:
        super().__init__()
        self.conv2d = nn.Conv2d(1, 4, 3)
        self.conv1d = nn.Conv1d(4, 8, 3)
        self.fc1 = nn.Linear(8 * 34, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2d(x)).flatten(2)  # (N, 4, 36)
        x = torch.relu(self.conv1d(x)).flatten(1)  # (N, 272)
        return self.fc2(torch.relu(self.fc1(x)))


def registered_method() -> Method:
    return next(m for m in registered_objects(plugin) if m.name == "prune.magnitude")



def prune(model: nn.Module, logs: list[str] | None = None, **params) -> nn.Module:
    method = registered_method()
    return method.apply(model, method.params(**params), make_method_context(logs=[] if logs is None else logs))


def net() -> Net:
    torch.manual_seed(0)
    return Net().eval()


def zero_counts(model: nn.Module) -> list[tuple[int, int]]:
    return [(int((m.weight == 0).sum()), m.weight.numel()) for m in prunable_layers(model)]


def test_registers_the_pruners_through_the_hookspec():
    from optbench_prune.gradient import GradientParams
    from optbench_prune.random_unstructured import RandomParams
    from optbench_prune.structured import StructuredParams
    from optbench_prune.transformer_pruning import AttentionHeadParams, MLPChannelParams

    from harness import NoParams

    methods = registered_objects(plugin)
    assert [(m.name, m.kind, m.params) for m in methods] == [
        ("prune.magnitude", "pruner", MagnitudeParams),
        ("prune.random", "pruner", RandomParams),
        ("prune.gradient", "pruner", GradientParams),
        ("prune.structured", "pruner", StructuredParams),
        ("prune.mlp_channels", "pruner", MLPChannelParams),
        ("prune.attention_heads", "pruner", AttentionHeadParams),
        ("prune.semi_structured", "pruner", NoParams),
    ]


def test_entry_point_names_the_plugin_module():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["optbench"] == {"prune": "optbench_prune.plugin"}


def test_prunable_layers_are_linear_conv1d_conv2d():
    assert [type(m) for m in prunable_layers(net())] == [nn.Conv2d, nn.Conv1d, nn.Linear, nn.Linear]


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_overall_zero_fraction_equals_sparsity(scope, sparsity):
    counts = zero_counts(prune(net(), sparsity=sparsity, scope=scope))
    zeros, total = sum(z for z, _ in counts), sum(n for _, n in counts)
    # torch prunes round(sparsity * n) weights per pruned tensor (one tensor in global scope).
    assert abs(zeros - sparsity * total) <= (len(counts) if scope == "layer" else 1) * 0.5


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
def test_layer_scope_gives_each_layer_the_sparsity(sparsity):
    for zeros, n in zero_counts(prune(net(), sparsity=sparsity, scope="layer")):
        assert abs(zeros - sparsity * n) <= 0.5


def test_global_scope_can_leave_layers_unequal():
    # Default init scales weights by 1/sqrt(fan_in): the wide fc1 has the smallest weights.
    fractions = [z / n for z, n in zero_counts(prune(net(), sparsity=0.5, scope="global"))]
    assert max(fractions) - min(fractions) > 0.2


def test_the_smallest_magnitude_weights_are_removed_and_the_rest_kept():
    layer = nn.Linear(4, 4)
    magnitudes = torch.randperm(16, generator=torch.Generator().manual_seed(0)).float() + 1  # 1..16, shuffled
    signs = torch.tensor([1.0, -1.0]).repeat(8)
    with torch.no_grad():
        layer.weight.copy_((magnitudes * signs).view(4, 4))
    original = layer.weight.detach().clone()
    prune(nn.Sequential(layer), sparsity=0.25)
    expected = torch.where(original.abs() <= 4, torch.zeros_like(original), original)
    assert torch.equal(layer.weight.detach(), expected)


def test_global_scope_ranks_magnitudes_across_layers():
    small, large = nn.Linear(4, 4), nn.Linear(4, 4)
    with torch.no_grad():
        small.weight.fill_(0.01)
        large.weight.fill_(-1.0)
    prune(nn.Sequential(small, large), sparsity=0.5, scope="global")
    assert torch.all(small.weight == 0) and torch.all(large.weight == -1.0)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_state_dict_keys_unchanged_and_no_pruning_reparametrization_left(scope):
    model = net()
    keys = list(model.state_dict())
    prune(model, sparsity=0.5, scope=scope)
    assert list(model.state_dict()) == keys
    for layer in prunable_layers(model):
        assert isinstance(layer.weight, nn.Parameter)
        assert not hasattr(layer, "weight_orig") and not hasattr(layer, "weight_mask")
        assert not layer._forward_pre_hooks


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_sparsity_zero_leaves_weights_unchanged(scope):
    model = net()
    before = copy.deepcopy(model.state_dict())
    after = prune(model, sparsity=0.0, scope=scope).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_sparsity_one_zeros_every_weight_but_no_bias(scope):
    model = net()
    biases = {name: b.detach().clone() for name, b in model.named_parameters() if name.endswith("bias")}
    prune(model, sparsity=1.0, scope=scope)
    assert all(torch.all(layer.weight == 0) for layer in prunable_layers(model))
    assert all(torch.equal(dict(model.named_parameters())[name], b) for name, b in biases.items())


def test_pruned_model_still_runs_and_logs_the_sparsity():
    logs: list[str] = []
    model = prune(net(), logs, sparsity=0.5)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert len(logs) == 1 and "(50.0%)" in logs[0]


def test_model_without_prunable_layers_is_skipped_with_the_reason():
    model = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)).eval()
    with pytest.raises(Skip, match="prune.magnitude: the model has no nn.Linear"):
        prune(model, [])


@pytest.mark.parametrize(
    "bad", [{"sparsity": 1.5}, {"sparsity": -0.1}, {"scope": "channel"}, {"amount": 0.5}]
)
def test_params_reject_invalid_values(bad):
    with pytest.raises(pydantic.ValidationError):
        MagnitudeParams(**bad)


def test_params_defaults_and_descriptions():
    assert MagnitudeParams() == MagnitudeParams(sparsity=0.5, scope="layer")
    assert all(f.description for f in MagnitudeParams.model_fields.values())
