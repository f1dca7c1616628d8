"""transfer.finetune without the harness: params, the task split, the head, the protocol."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pydantic
import pytest
import torch
from optbench_transfer import plugin
from optbench_transfer.finetune import (
    FinetuneParams,
    apply,
    check_classes,
    find_head,
    only_head_trains,
    pick_per_class,
    remap,
    replace_head,
    split_tasks,
    task,
)
from torch import nn

from harness import DatasetSplits, Skip
from harness.builtin.models import CNN, MLP, CNNParams, MLPParams
from harness.suite.schema import Train
from harness.testing import registered_objects
from harness.train.fit import TrainingContext

TARGET = [5, 6, 7, 8, 9]
SOURCE = [0, 1, 2, 3, 4]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny batches: one thread is fastest

# -- registration and params ----------------------------------------------------------------


def test_registers_one_transfer_method_through_the_hookspec():
    assert [(m.name, m.kind, m.params) for m in registered_objects(plugin)] == [
        ("transfer.finetune", "transfer", FinetuneParams)
    ]


def test_entry_point_names_the_plugin_module():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "optbench-transfer"
    assert pyproject["project"]["entry-points"]["optbench"] == {"transfer": "optbench_transfer.plugin"}


def test_params_defaults_and_descriptions():
    p = FinetuneParams()
    assert (p.mode, p.source_classes, p.target_classes, p.target_labels_per_class, p.pretrain_epochs, p.epochs) == (
        "full", SOURCE, TARGET, 10, None, None)
    assert all(f.description for f in FinetuneParams.model_fields.values())
    assert FinetuneParams(target_labels_per_class=None, mode="linear_probe").target_labels_per_class is None


@pytest.mark.parametrize(
    "bad, says",
    [
        ({"source_classes": [0, 1, 2], "target_classes": [2, 3]}, "overlap in [2]"),
        ({"target_classes": [0, 5]}, "overlap in [0]"),
        ({"source_classes": []}, "at least 1"),
        ({"target_classes": []}, "at least 1"),
        ({"target_classes": [5, 6, 5]}, "duplicates: [5]"),
        ({"source_classes": [1, 1]}, "duplicates: [1]"),
        ({"source_classes": [-1, 0]}, "greater than or equal to 0"),
        ({"target_labels_per_class": 0}, "greater than or equal to 1"),
        ({"epochs": 0}, "greater than or equal to 1"),
        ({"pretrain_epochs": 0}, "greater than or equal to 1"),
        ({"mode": "probe"}, "full"),
        ({"labels": 10}, "Extra inputs are not permitted"),
    ],
)
def test_params_reject_invalid_values(bad, says):
    with pytest.raises(pydantic.ValidationError) as info:
        FinetuneParams(**bad)
    assert says in str(info.value)


# -- the task split ---------------------------------------------------------------------------


def test_the_target_task_has_k_labels_per_class_and_every_held_out_example(optbench_digits):
    target = task(optbench_digits, TARGET, seed=0, per_class=10)
    chosen = pick_per_class(optbench_digits.y_train, TARGET, 10, 0)
    assert target.num_classes == 5
    # training: 10 examples of each target class, nothing else, labels 5..9 -> 0..4
    assert torch.equal(target.x_train, optbench_digits.x_train[chosen])
    assert torch.equal(target.y_train, optbench_digits.y_train[chosen] - 5)
    assert target.y_train.bincount().tolist() == [10] * 5
    assert set(optbench_digits.y_train[chosen].tolist()) == set(TARGET)
    # held out: every test example of the target classes, in order, none of the others
    held = (optbench_digits.y_test >= 5).nonzero().flatten()
    assert held.numel() == target.x_test.shape[0] > 100
    assert torch.equal(target.x_test, optbench_digits.x_test[held])
    assert torch.equal(target.y_test, optbench_digits.y_test[held] - 5)


def test_the_label_choice_is_seeded_and_none_keeps_every_example(optbench_digits):
    assert torch.equal(pick_per_class(optbench_digits.y_train, TARGET, 10, 0), pick_per_class(optbench_digits.y_train, TARGET, 10, 0))
    assert not torch.equal(pick_per_class(optbench_digits.y_train, TARGET, 10, 0), pick_per_class(optbench_digits.y_train, TARGET, 10, 1))
    everything = task(optbench_digits, TARGET, seed=0, per_class=None)
    assert everything.x_train.shape[0] == int((optbench_digits.y_train >= 5).sum())
    few = task(optbench_digits, TARGET, seed=0, per_class=1000)  # more than a class has: all of it
    assert torch.equal(few.x_train, everything.x_train)


def test_labels_are_remapped_in_the_order_given(optbench_digits):
    classes = [9, 2, 7]
    t = task(optbench_digits, classes, seed=0, per_class=3)
    assert t.num_classes == 3 and t.y_train.bincount().tolist() == [3, 3, 3]
    idx = pick_per_class(optbench_digits.y_test, classes, None, 0)
    expected = torch.tensor([classes.index(int(c)) for c in optbench_digits.y_test[idx]])
    assert torch.equal(t.y_test, expected)
    assert remap(torch.tensor([9, 9, 2, 7]), classes).tolist() == [0, 0, 1, 2]


def test_the_source_task_keeps_every_example_of_its_classes(optbench_digits):
    source, target = split_tasks(optbench_digits, FinetuneParams(), seed=0)
    assert source.x_train.shape[0] == int((optbench_digits.y_train < 5).sum())
    assert source.x_test.shape[0] == int((optbench_digits.y_test < 5).sum())
    assert torch.equal(source.y_train, optbench_digits.y_train[optbench_digits.y_train < 5])
    assert target.x_train.shape[0] == 50


def test_a_class_the_dataset_lacks_is_a_clear_error(optbench_digits):
    with pytest.raises(ValueError, match=r"target_classes: class\(es\) \[12\] not in the dataset .*0-9"):
        check_classes(optbench_digits, FinetuneParams(target_classes=[5, 12]))
    with pytest.raises(ValueError, match=r"source_classes: class\(es\) \[10, 11\] not in the dataset"):
        check_classes(optbench_digits, FinetuneParams(source_classes=[10, 11]))


def test_a_dataset_without_labels_is_skipped():
    x = torch.zeros(4, 1, 8, 8)
    with pytest.raises(Skip, match="labelled classification dataset"):
        check_classes(DatasetSplits(x, None, x, None, num_classes=10), FinetuneParams())


# -- the head ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, build", [("mlp", lambda d: MLP.build(MLPParams(hidden=[32, 16]), d)),
                                         ("cnn", lambda d: CNN.build(CNNParams(channels=[4], hidden=16), d))])
def test_the_head_is_replaced_in_place_and_seeded(optbench_digits, name, build):
    torch.manual_seed(0)
    model = build(optbench_digits)
    old_name, old = find_head(model)
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(old_name + ".")}
    rng = torch.get_rng_state()
    out, head = replace_head(model, 3, seed=7)
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is left alone
    assert out is model and model[-1] is head and find_head(model) == (old_name, head)
    assert (head.in_features, head.out_features, head.bias is not None) == (old.in_features, 3, True)
    assert model(optbench_digits.x_test[:4]).shape == (4, 3)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in body.items())
    _, again = replace_head(build(optbench_digits), 3, seed=7)
    _, other = replace_head(build(optbench_digits), 3, seed=8)
    assert torch.equal(again.weight, head.weight) and not torch.equal(other.weight, head.weight)


def test_the_head_is_found_inside_nested_and_custom_modules():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(6, 8), nn.ReLU())
            self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(8, 10))

        def forward(self, x):
            return self.classifier(self.body(x))

    net = Net()
    assert find_head(net)[0] == "classifier.1"
    _, head = replace_head(net, 4, seed=0)
    assert net.classifier[1] is head and net(torch.zeros(2, 6)).shape == (2, 4)

    bare = nn.Linear(6, 10, bias=False)
    out, head = replace_head(bare, 2, seed=0)
    assert out is head and head.bias is None and head.in_features == 6

    with pytest.raises(Skip, match="nn.Linear"):
        find_head(nn.Sequential(nn.Flatten(), nn.ReLU()))


def test_only_the_head_trains_inside_the_probe_and_flags_come_back():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    model[0].bias.requires_grad_(False)  # frozen by the model's author: stays frozen
    stats = model[1].running_mean.clone()
    with only_head_trains(model, model[3]):
        assert [n for n, p in model.named_parameters() if p.requires_grad] == ["3.weight", "3.bias"]
        model.train()(torch.randn(16, 4))
        assert torch.equal(model[1].running_mean, stats)
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == ["0.bias"]
    assert model[1].momentum == 0.1


# -- the protocol, through a TrainingContext ----------------------------------------------------------


class RecordingContext(TrainingContext):
    """Keeps a copy of the model's weights before and after each ctx.fit, by role."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.weights: dict[str, tuple[dict, dict]] = {}

    def fit(self, model, *, role="main", **kwargs):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        result = super().fit(model, role=role, **kwargs)
        self.weights[role] = (before, {k: v.clone() for k, v in model.state_dict().items()})
        return result


def run(optbench_digits, logs: list[str], **params) -> tuple[nn.Module, RecordingContext]:
    ctx = RecordingContext(data=optbench_digits, device=torch.device("cpu"), backend="cpu", seed=0, log=logs.append,
                           train=Train(epochs=2), builder=lambda ref: MLP.build(MLPParams(hidden=[32]), optbench_digits))
    params = {"pretrain_epochs": 1, "epochs": 4, **params}
    return apply(ctx.build_model(), FinetuneParams(**params), ctx), ctx


def test_linear_probe_changes_the_head_and_no_backbone_weight(optbench_digits):
    logs: list[str] = []
    model, ctx = run(optbench_digits, logs, mode="linear_probe")
    before, after = ctx.weights["main"]
    head = find_head(model)[0]
    for key in before:
        if key.startswith(head + "."):
            assert not torch.equal(before[key], after[key]), key
        else:
            assert torch.equal(before[key], after[key]), key
    assert ctx.weights["pretrain"][0]["1.weight"].shape == (32, 64)  # the backbone did train while pre-training
    assert not torch.equal(ctx.weights["pretrain"][0]["1.weight"], before["1.weight"])
    assert all(p.requires_grad for p in model.parameters())  # unfrozen for later steps
    assert set(ctx.runs) == {"pretrain", "main", "reference"}
    assert ctx.data.num_classes == 5 and model(ctx.data.x_test[:2]).shape == (2, 5)
    assert any(line.startswith("pretrain:") for line in logs) and any("linear probe" in line for line in logs)


def test_full_fine_tuning_moves_the_backbone_and_from_scratch_is_its_reference(optbench_digits):
    _, full = run(optbench_digits, [], mode="full")
    before, after = full.weights["main"]
    assert not torch.equal(before["1.weight"], after["1.weight"])
    facts = full.training_facts()
    assert facts["accuracy_gain"] is not None and facts["pretrain_s"] is not None
    assert full.runs["main"].labelled == full.runs["reference"].labelled == 50

    model, scratch = run(optbench_digits, [], mode="from_scratch")
    assert set(scratch.runs) == {"main"}
    assert scratch.training_facts()["accuracy_gain"] is None and scratch.training_facts()["pretrain_s"] is None
    # same initial weights, data, budget and seed as the reference of a transfer mode
    assert scratch.weights["main"][0].keys() == full.weights["reference"][0].keys()
    assert all(torch.equal(scratch.weights["main"][0][k], v) for k, v in full.weights["reference"][0].items())
    assert [p["test_accuracy"] for p in scratch.runs["main"].curve] == [
        p["test_accuracy"] for p in full.runs["reference"].curve]
    assert scratch.data.num_classes == 5 and model(scratch.data.x_test[:2]).shape == (2, 5)
