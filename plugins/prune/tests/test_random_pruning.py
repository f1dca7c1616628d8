"""prune.random: exactly the asked fraction of randomly chosen weights becomes zero, seeded."""
from __future__ import annotations

import copy

import pydantic
import pytest
import torch
from optbench_prune.magnitude import prunable_layers
from optbench_prune.random_unstructured import RandomParams
from torch import nn

from harness import Skip


def masks(model: nn.Module) -> list[torch.Tensor]:
    return [layer.weight.detach() != 0 for layer in prunable_layers(model)]


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
def test_layer_scope_zeroes_exactly_the_fraction_of_each_layer(trained, run_method, arch, sparsity):
    model = run_method("prune.random", trained(arch), sparsity=sparsity)
    for keep in masks(model):
        assert int((~keep).sum()) == round(sparsity * keep.numel())


@pytest.mark.parametrize("sparsity", [0.3, 0.5])
def test_global_scope_zeroes_exactly_the_fraction_overall_and_about_it_per_layer(trained, run_method, sparsity):
    keeps = masks(run_method("prune.random", trained("cnn"), sparsity=sparsity, scope="global"))
    zeros, total = sum(int((~k).sum()) for k in keeps), sum(k.numel() for k in keeps)
    assert zeros == round(sparsity * total)
    for keep in keeps:  # uniform draw over all weights: every layer near the fraction (>= 144 weights each)
        assert abs(float((~keep).float().mean()) - sparsity) < 0.15


def test_same_seed_same_mask_other_seed_other_mask(trained, run_method):
    a, b, c = (masks(run_method("prune.random", trained("mlp"), seed=s)) for s in (0, 0, 1))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(not torch.equal(x, z) for x, z in zip(a, c))


def test_kept_weights_are_untouched_and_biases_never_pruned(trained, run_method):
    original = trained("mlp")
    pruned = run_method("prune.random", copy.deepcopy(original), sparsity=0.9)
    for before, after in zip(prunable_layers(original), prunable_layers(pruned)):
        keep = after.weight != 0
        assert torch.equal(after.weight[keep], before.weight[keep])
        assert torch.equal(after.bias, before.bias)


def test_mask_ignores_magnitude(trained, run_method):
    # The control must not prefer small weights: what it removes is as large as what it keeps.
    original = trained("mlp")
    pruned = run_method("prune.random", copy.deepcopy(original), sparsity=0.5)
    w0, w1 = prunable_layers(original)[1].weight.detach().abs(), prunable_layers(pruned)[1].weight.detach()
    removed, kept = w0[w1 == 0].mean(), w0[w1 != 0].mean()
    assert abs(float(removed / kept) - 1) < 0.1


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_permanent_masks_plain_weights_same_state_dict_keys(trained, run_method, scope):
    model = trained("cnn")
    keys = list(model.state_dict())
    logs: list[str] = []
    run_method("prune.random", model, logs=logs, sparsity=0.5, scope=scope)
    assert list(model.state_dict()) == keys
    for layer in prunable_layers(model):
        assert isinstance(layer.weight, nn.Parameter)
        assert not hasattr(layer, "weight_orig") and not hasattr(layer, "weight_mask")
        assert not layer._forward_pre_hooks
    assert len(logs) == 1 and "prune.random" in logs[0] and "(50.0%)" in logs[0]


def test_model_without_prunable_layers_is_skipped(run_method):
    model = nn.Sequential(nn.Flatten(), nn.ReLU())
    with pytest.raises(Skip, match="no nn.Linear/nn.Conv1d/nn.Conv2d layer to change"):
        run_method("prune.random", model)


@pytest.mark.parametrize("bad", [{"sparsity": 1.5}, {"sparsity": -0.1}, {"scope": "channel"}, {"seed": 1}])
def test_params_reject_invalid_values(bad):
    with pytest.raises(pydantic.ValidationError):
        RandomParams(**bad)


def test_params_defaults_and_descriptions():
    assert RandomParams() == RandomParams(sparsity=0.5, scope="layer")
    assert all(f.description for f in RandomParams.model_fields.values())
