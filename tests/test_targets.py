"""Targets as they are: the task they make, the loss a model trained on them uses, and the gate that judges a
metric either way round."""
from __future__ import annotations

import pytest
import torch

from harness.plugin.targets import (
    collate_targets,
    infer_task,
    main_output,
    task_loss,
    tensor_targets,
    tensor_task,
)
from harness.results.records import add_relative_figures
from harness.suite.schema import AccuracyGate
from harness.testing import make_record


@pytest.mark.parametrize("target, num_classes, task", [
    (3, 10, "classification"),
    (torch.tensor(3), 10, "classification"),
    (torch.tensor(25.0), 0, "regression"),  # a whole-number float stays a regression target
    (torch.tensor([1, 0, 1, 1]), 4, "multilabel"),
    (torch.tensor([1, 0, 1, 1]), 0, "regression"),  # without the label count, 0/1 rows are values
    (torch.tensor([0.5, 2.0]), 0, "regression"),
    (torch.zeros(8, 8, dtype=torch.long), 3, "segmentation"),
    (torch.zeros(8, 8), 0, "regression"),  # a depth map
    ({"boxes": torch.zeros(1, 4), "labels": torch.tensor([1])}, 0, "detection"),
    (None, 0, "unlabelled"),
])
def test_the_task_is_read_from_one_target(target, num_classes, task):
    assert infer_task(target, num_classes) == task


def test_a_batch_keeps_its_targets_kind():
    assert collate_targets([1, 2]).dtype == torch.int64
    assert collate_targets([1.5, 2]).dtype == torch.float32
    assert collate_targets([torch.tensor([1, 0]), torch.tensor([0, 1])]).shape == (2, 2)
    boxes = [{"boxes": torch.zeros(1, 4)}, {"boxes": torch.zeros(2, 4)}]
    assert collate_targets(boxes) == boxes  # a detector's targets stay a list of dicts
    assert collate_targets([1, None]) is None


def test_every_samples_targets_are_checked_for_their_task():
    assert tensor_task(torch.tensor([0, 2, 1])) == "classification"
    assert tensor_task(torch.tensor([25.0, 346.0])) == "regression"
    y, task, classes = tensor_targets(torch.tensor([[1, 0, 1], [0, 0, 1]]), None, "f.npz")
    assert task == "multilabel" and classes == 3
    _, _, classes = tensor_targets(torch.tensor([[[0, 1], [255, 2]]]), None, "f.npz")
    assert classes == 3  # 255 is unlabelled, not a class
    y, task, _ = tensor_targets(torch.tensor([1.0, 2.0]), "classification", "f.npz")
    assert y.dtype == torch.int64
    with pytest.raises(ValueError, match=r"f\.npz: classification targets are fractional"):
        tensor_targets(torch.tensor([0.5]), "classification", "f.npz")
    with pytest.raises(ValueError, match=r"f\.npz: negative class index -1"):
        tensor_targets(torch.tensor([-1, 2]), "classification", "f.npz")
    with pytest.raises(ValueError, match="rows of 0 and 1"):
        tensor_targets(torch.tensor([[2, 0]]), "multilabel", "f.npz")
    with pytest.raises(ValueError, match="masks of class indices"):
        tensor_targets(torch.zeros(2, 4, 4), "segmentation", "f.npz")


def test_each_task_trains_with_its_own_loss_or_the_one_named():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    ce = task_loss("classification", None, logits, torch.tensor([0, 1]))
    assert ce == pytest.approx(torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])))
    pred, target = torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 2.0])
    assert task_loss("regression", None, pred, target) == pytest.approx(1.0)  # (N, 1) against (N,): squeezed
    assert task_loss("regression", "l1", pred, target) == pytest.approx(1.0)
    bce = task_loss("multilabel", None, logits, torch.tensor([[1, 0], [0, 1]]))
    assert bce == pytest.approx(torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.tensor([[1.0, 0.0], [0.0, 1.0]])))
    maps, masks = torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 255]]])  # the unlabelled pixel is ignored
    assert task_loss("segmentation", None, {"out": maps}, masks) == pytest.approx(
        torch.nn.functional.cross_entropy(maps[..., :1], masks[..., :1]))
    with pytest.raises(ValueError, match="name one with the dataset's `loss`"):
        task_loss("detection", None, logits, torch.tensor([0, 1]))
    assert main_output({"out": pred}, target).shape == (2,)


def test_a_gate_on_an_error_lets_it_rise_by_the_margin_and_no_more():
    gate = AccuracyGate(metric="rmse", relative=0.05)
    assert gate.passes(52.0, 50.0, higher_is_better=False)
    assert not gate.passes(53.0, 50.0, higher_is_better=False)
    assert AccuracyGate(absolute=0.02).passes(0.79, 0.80) and not AccuracyGate(absolute=0.02).passes(0.77, 0.80)
    assert AccuracyGate(floor=0.4).passes(0.41, None) and not AccuracyGate(floor=0.4).passes(0.39, None)
    assert not AccuracyGate(floor=60.0).passes(61.0, None, higher_is_better=False)  # a ceiling for an error
    # the baseline could be scored and this model could not: that fails, it is not left unjudged
    assert AccuracyGate(relative=0.01).verdict(None, 0.9, None, None) is False
    assert AccuracyGate(relative=0.01).verdict(None, None, None, None) is None
    with pytest.raises(ValueError, match="`metric` names what"):
        AccuracyGate(metric="rmse", cosine=0.9)


def _scored(method: str, rmse: float, r2: float) -> dict:
    return make_record(method=method, task="regression", quality_metric="rmse", quality=rmse, accuracy=None,
                       quality_higher_is_better=False, metrics={"rmse": rmse, "r2": r2}, lower_is_better=["rmse"])


def test_a_records_quality_is_compared_with_the_baselines_and_gated_by_direction():
    base = _scored("baseline", 50.0, 0.5)
    worse = add_relative_figures(_scored("prune.magnitude", 60.0, 0.3), base, AccuracyGate(relative=0.05))
    assert worse["quality_delta"] == 10.0 and worse["quality_ratio"] == 1.2
    assert worse["metrics_delta"] == {"rmse": 10.0, "r2": pytest.approx(-0.2)}
    assert worse["passes_gate"] is False and worse["accuracy_delta"] is None
    better = add_relative_figures(_scored("q", 49.0, 0.52), base, AccuracyGate(relative=0.05))
    assert better["passes_gate"] is True
    # the gate judges the metric it names, in that metric's direction
    on_r2 = add_relative_figures(_scored("q", 60.0, 0.49), base, AccuracyGate(metric="r2", absolute=0.02))
    assert on_r2["passes_gate"] is True
