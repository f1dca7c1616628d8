"""prune.structured: channels really go, the model gets smaller and keeps its input/output shapes."""
from __future__ import annotations

import io
import sys
import tomllib
from pathlib import Path

import pydantic
import pytest
import torch
from optbench_prune.magnitude import prunable_layers
from optbench_prune.structured import StructuredParams, classifier_layer, layer_shapes
from torch import nn

from harness import DatasetSplits, Skip


def params_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def state_dict_bytes(model: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


@pytest.mark.parametrize("importance", ["l1", "l2", "taylor", "random"])
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_channels_shrink_by_the_ratio_and_the_model_still_classifies(
    trained, run_method, optbench_digits, arch, importance, ratio
):
    model = trained(arch)
    x = optbench_digits.x_test[:5]
    before_shapes, before_params, before_bytes = layer_shapes(model), params_count(model), state_dict_bytes(model)
    classifier = classifier_layer(model, optbench_digits.num_classes)
    logs: list[str] = []
    pruned = run_method("prune.structured", model, logs=logs, ratio=ratio, importance=importance)

    after_shapes = layer_shapes(pruned)
    assert list(after_shapes) == list(before_shapes)
    *hidden, last = after_shapes
    for name in hidden:  # Torch-Pruning keeps int(n * (1 - ratio)) of n output channels
        assert after_shapes[name][0] == int(before_shapes[name][0] * (1 - ratio))
    assert after_shapes[last][0] == optbench_digits.num_classes  # the classifier keeps every class
    assert after_shapes[last][1] == after_shapes[hidden[-1]][0]  # and loses the inputs that were removed
    assert classifier_layer(pruned, optbench_digits.num_classes) is classifier
    first = next(iter(after_shapes))
    assert after_shapes[first][1] == before_shapes[first][1]  # the model's input is untouched
    assert pruned(x).shape == (5, optbench_digits.num_classes)
    assert params_count(pruned) < before_params * (1 - ratio) + 1000
    assert state_dict_bytes(pruned) < before_bytes
    assert len(logs) == 1 and f"{importance} importance" in logs[0] and "->" in logs[0]
    assert all(p.grad is None for p in pruned.parameters())


def test_cnn_at_half_has_the_expected_layer_shapes(trained, run_method):
    pruned = run_method("prune.structured", trained("cnn"), ratio=0.5)
    assert layer_shapes(pruned) == {
        "0": (8, 1, 3, 3),
        "2": (16, 8, 3, 3),
        "6": (32, 256),  # flatten of 16 channels x 4 x 4: Torch-Pruning maps channels through the Flatten
        "8": (10, 32),
    }


def test_mlp_at_half_has_the_expected_layer_shapes(trained, run_method):
    pruned = run_method("prune.structured", trained("mlp"), ratio=0.5)
    assert layer_shapes(pruned) == {"1": (64, 64), "3": (64, 64), "5": (10, 64)}


def test_l1_keeps_the_channels_with_the_largest_weights(run_method):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[0].weight[[1, 3, 4, 6]] *= 100  # these four output features dominate
    kept = model[0].weight.detach()[[1, 3, 4, 6]].clone()
    data = DatasetSplits(torch.randn(16, 4), None, torch.randn(16, 4), None, num_classes=3)
    run_method("prune.structured", model, data=data, ratio=0.5, importance="l1")
    assert torch.equal(model[0].weight.detach(), kept)


def test_random_importance_is_seeded_and_leaves_the_global_generator_alone(trained, run_method):
    def kept_rows(seed: int) -> torch.Tensor:
        return run_method("prune.structured", trained("mlp"), seed=seed, ratio=0.5, importance="random")[1].weight

    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b, c = kept_rows(0), kept_rows(0), kept_rows(1)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_ratio_zero_removes_nothing(trained, run_method):
    model = trained("cnn")
    before = layer_shapes(model)
    assert layer_shapes(run_method("prune.structured", model, ratio=0.0)) == before


def test_ratio_that_would_empty_a_layer_is_an_error_naming_it(run_method):
    model = nn.Sequential(nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 3))
    data = DatasetSplits(torch.randn(8, 4), None, torch.randn(8, 4), None, num_classes=3)
    with pytest.raises(ValueError, match="all 2 output channels of layer '0'"):
        run_method("prune.structured", model, data=data, ratio=0.6)


def test_taylor_skips_without_labels(run_method):
    data = DatasetSplits(torch.randn(8, 4), None, torch.randn(8, 4), None, num_classes=3)
    with pytest.raises(Skip, match="needs labelled training data"):
        run_method("prune.structured", nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3)), data=data, importance="taylor")


def test_missing_torch_pruning_is_an_error_naming_the_package(run_method, trained, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_pruning", None)  # import now raises ImportError
    with pytest.raises(ModuleNotFoundError, match="torch-pruning==1.6.1"):
        run_method("prune.structured", trained("mlp"))


def test_torch_pruning_is_pinned_exactly():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "torch-pruning==1.6.1" in pyproject["project"]["dependencies"]


@pytest.mark.parametrize(
    "bad", [{"ratio": 1.0}, {"ratio": -0.1}, {"importance": "l3"}, {"batches": 0}, {"sparsity": 0.5}]
)
def test_params_reject_invalid_values(bad):
    with pytest.raises(pydantic.ValidationError):
        StructuredParams(**bad)


def test_params_defaults_and_descriptions():
    assert StructuredParams() == StructuredParams(ratio=0.5, importance="l1", batches=4)
    assert all(f.description for f in StructuredParams.model_fields.values())


def test_prunable_layers_helper_is_shared():
    # structured reports the same layers as the unstructured pruners prune
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 3))
    assert list(layer_shapes(model)) == ["0", "2"] and len(prunable_layers(model)) == 2
