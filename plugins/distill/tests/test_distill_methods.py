"""distill.kd and distill.feature in-process: params, the loss terms, projections, hooks, pairing."""
from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pydantic
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.plugin.types import ModelRef
from harness.testing import registered_objects
from optbench_distill import feature, kd, plugin
from optbench_distill.common import hard_loss, kd_loss, soft_loss
from optbench_distill.feature import FeatureParams, build_projection, find_module
from optbench_distill.kd import KDParams

TEACHER = {"name": "cnn", "params": {"epochs": 1, "channels": [8], "hidden": 32}}


def all_hooks(model: nn.Module) -> list:
    return [h for m in model.modules() for h in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())]


# --- registration and params -------------------------------------------------------------


def test_registers_two_distillers_through_the_hookspec():
    assert [(m.name, m.kind, m.params) for m in registered_objects(plugin)] == [
        ("distill.kd", "distiller", KDParams),
        ("distill.feature", "distiller", FeatureParams),
    ]


def test_entry_point_names_the_plugin_module():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["optbench"] == {"distill": "optbench_distill.plugin"}


def test_kd_params_defaults_and_descriptions():
    p = KDParams(teacher=TEACHER)
    assert isinstance(p.teacher, ModelRef) and p.teacher.name == "cnn"
    assert (p.temperature, p.alpha, p.labels_fraction) == (4.0, 0.9, 1.0)
    assert all(f.description for f in KDParams.model_fields.values())
    assert all(f.description for f in FeatureParams.model_fields.values())


@pytest.mark.parametrize("bad", [
    {"alpha": -0.1}, {"alpha": 1.5}, {"temperature": 0.0}, {"temperature": -1.0},
    {"labels_fraction": 0.0}, {"labels_fraction": 1.2}, {"beta": 1.0},
    {"teacher": {"name": "cnn", "oops": 1}},
])
def test_kd_params_reject_invalid_values(bad):
    with pytest.raises(pydantic.ValidationError):
        KDParams(**{"teacher": TEACHER, **bad})


def test_the_teacher_is_required():
    with pytest.raises(pydantic.ValidationError, match="teacher"):
        KDParams()
    with pytest.raises(pydantic.ValidationError, match="teacher"):
        FeatureParams(student_layer="2", teacher_layer="7")


def test_feature_params_need_both_layers_and_default_to_hints_plus_labels():
    with pytest.raises(pydantic.ValidationError, match="teacher_layer"):
        FeatureParams(teacher=TEACHER, student_layer="2")
    p = FeatureParams(teacher=TEACHER, student_layer="2", teacher_layer="7")
    assert (p.beta, p.alpha, p.temperature, p.labels_fraction) == (1.0, 0.0, 4.0, 1.0)
    with pytest.raises(pydantic.ValidationError):
        FeatureParams(teacher=TEACHER, student_layer="2", teacher_layer="7", beta=-1.0)


# --- the loss ----------------------------------------------------------------------------


def test_kd_loss_matches_a_hand_computation():
    s = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    t = torch.tensor([[3.0, 1.0, 0.0], [-1.0, 2.0, 0.5], [0.0, 4.0, -2.0]], dtype=torch.float64)
    y = torch.tensor([0, -1, 1])
    T, alpha = 2.0, 0.7

    def softmax(row, temp):
        e = [math.exp(v / temp) for v in row]
        return [v / sum(e) for v in e]

    kl = 0.0
    for srow, trow in zip(s.tolist(), t.tolist()):
        ps, pt = softmax(srow, T), softmax(trow, T)
        kl += sum(q * (math.log(q) - math.log(p)) for p, q in zip(ps, pt))
    soft = T * T * kl / 3  # mean over every input, labelled or not
    ce = [-math.log(softmax(s[i].tolist(), 1.0)[c]) for i, c in ((0, 0), (2, 1))]
    hard = sum(ce) / 2  # mean over the two labelled inputs only
    expected = alpha * soft + (1 - alpha) * hard

    assert soft_loss(s, t, T).item() == pytest.approx(soft, rel=1e-12)
    assert hard_loss(s, y).item() == pytest.approx(hard, rel=1e-12)
    assert kd_loss(s, t, y, temperature=T, alpha=alpha).item() == pytest.approx(expected, rel=1e-12)


def test_an_all_unlabelled_batch_gives_a_finite_loss_and_gradient():
    s = torch.randn(5, 10, requires_grad=True)
    t = torch.randn(5, 10)
    y = torch.full((5,), -1)
    loss = kd_loss(s, t, y, temperature=4.0, alpha=0.9)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(0.9 * soft_loss(s, t, 4.0).item())
    loss.backward()
    assert torch.isfinite(s.grad).all()
    assert hard_loss(s, y).item() == 0.0
    only_hard = kd_loss(s, t, y, temperature=4.0, alpha=0.0)
    assert only_hard.item() == 0.0 and torch.isfinite(only_hard)


def test_the_hard_term_is_plain_cross_entropy_when_every_label_is_known():
    s, y = torch.randn(8, 10), torch.randint(0, 10, (8,))
    assert hard_loss(s, y).item() == pytest.approx(F.cross_entropy(s, y).item(), rel=1e-6)
    assert soft_loss(s, s, 3.0).item() == pytest.approx(0.0, abs=1e-6)  # a perfect match costs nothing


def test_the_teacher_gets_no_gradient():
    torch.manual_seed(0)
    teacher, student = nn.Linear(4, 3), nn.Linear(4, 3)
    loss = kd.make_loss(teacher, temperature=2.0, alpha=0.5)(student, torch.randn(6, 4), torch.tensor([0, 1, 2, -1, -1, 0]))
    loss.backward()
    assert teacher.weight.grad is None and student.weight.grad is not None


# --- feature distillation pieces ---------------------------------------------------------


@pytest.mark.parametrize("s_shape, t_shape, kind", [
    ((32,), (64,), nn.Linear),
    ((8, 8, 8), (16, 8, 8), nn.Conv2d),
    ((8, 8, 8), (16, 4, 4), nn.Sequential),  # 1x1 conv then adaptive average pooling
    ((5, 32), (5, 64), nn.Linear),  # tokens: Linear on the last dim
    ((32,), (16, 8, 8), nn.Sequential),  # ranks differ: flatten, Linear, reshape
    ((16, 8, 8), (64,), nn.Sequential),
])
def test_the_projection_maps_the_student_feature_to_the_teachers_shape(s_shape, t_shape, kind):
    projection = build_projection(s_shape, t_shape)
    assert isinstance(projection, kind)
    assert projection(torch.randn(3, *s_shape)).shape == (3, *t_shape)
    if s_shape == (8, 8, 8) and t_shape == (16, 4, 4):
        assert [type(m) for m in projection] == [nn.Conv2d, nn.AdaptiveAvgPool2d]


def test_an_unknown_module_path_names_the_path_and_the_valid_ones():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))
    assert find_module(model, "2", "student_layer") is model[2]
    with pytest.raises(ValueError, match=r"student_layer '7' .*'0', '1', '2', '3'"):
        find_module(model, "7", "student_layer")


# --- whole methods on a real TrainingContext ---------------------------------------------


def test_feature_distillation_removes_its_hooks_and_trains_a_projection(training_ctx):
    ctx = training_ctx(epochs=1)
    student = ctx.build_model()
    params = FeatureParams(teacher=TEACHER, student_layer="2", teacher_layer="4", labels_fraction=0.5)
    out = feature.apply(student, params, ctx)
    assert out is student
    assert all_hooks(student) == []
    (teacher,) = ctx.teachers
    assert all_hooks(teacher) == []
    assert set(ctx.runs) == {"main", "reference"}
    assert ctx.runs["main"].steps_run == ctx.runs["reference"].steps_run
    assert any("Linear" in line and "'4' (32,)" in line and "'2' (16,)" in line for line in ctx.logs)
    facts = ctx.training_facts()
    assert facts["accuracy_gain"] is not None and facts["reference_accuracy"] is not None


def test_a_bad_teacher_layer_fails_before_training_and_leaves_no_hooks(training_ctx):
    ctx = training_ctx(epochs=1)
    student = ctx.build_model()
    params = FeatureParams(teacher=TEACHER, student_layer="2", teacher_layer="fc")
    with pytest.raises(ValueError, match=r"teacher_layer 'fc' is not a module path.*'0', '1', '2'"):
        feature.apply(student, params, ctx)
    assert ctx.runs == {} and ctx.teachers == [] and all_hooks(student) == []  # no teacher was trained


def test_kd_with_no_soft_term_and_every_label_is_exactly_the_student_alone(training_ctx):
    """The pairing is fair: same initial weights, same data order, same steps. With alpha 0
    and every label, distillation reduces to cross-entropy, so main and reference agree."""
    ctx = training_ctx(epochs=2)
    kd.apply(ctx.build_model(), KDParams(teacher=TEACHER, alpha=0.0), ctx)
    main, ref = ctx.runs["main"].curve, ctx.runs["reference"].curve
    assert [p["test_accuracy"] for p in main] == [p["test_accuracy"] for p in ref]
    assert [p["test_loss"] for p in main] == pytest.approx([p["test_loss"] for p in ref], rel=1e-4)
    assert ctx.training_facts()["accuracy_gain"] == 0.0


def test_kd_on_a_tenth_of_the_labels_pairs_with_the_student_alone_on_the_same_labels(training_ctx):
    ctx = training_ctx(epochs=1)
    kd.apply(ctx.build_model(), KDParams(teacher=TEACHER, labels_fraction=0.1), ctx)
    main, ref = ctx.runs["main"], ctx.runs["reference"]
    n = ctx.data.x_train.shape[0]
    assert main.labelled == ref.labelled == pytest.approx(0.1 * n, abs=10)
    assert main.steps_run == ref.steps_run == math.ceil(n / 64)
    assert any("teacher cnn" in line and "held-out accuracy" in line for line in ctx.logs)
    assert any("accuracy_gain" in line for line in ctx.logs)


def test_the_teacher_starts_from_the_weights_a_baseline_cell_of_its_model_gets(training_ctx, optbench_digits):
    """Whatever student was built before it (the harness caches the teacher under a key that
    does not name the student), the teacher's initial weights are the seeded ones."""
    from harness.builtin.models import CNN, CNNParams
    from harness.train.classifier import train_classifier

    params = CNNParams.model_validate(TEACHER["params"])
    torch.manual_seed(0)
    alone = train_classifier(CNN.build(params, optbench_digits), optbench_digits, epochs=1, lr=1e-3, batch_size=64, seed=0)
    for hidden in ([16], [48, 8]):
        ctx = training_ctx(epochs=1, student={"hidden": hidden})
        kd.apply(ctx.build_model(), KDParams(teacher=TEACHER, labels_fraction=0.5), ctx)
        (teacher,) = ctx.teachers
        assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), alone.state_dict().values()))


def test_a_dataset_without_labels_is_skipped(training_ctx):
    from harness import DatasetSplits, Skip

    ctx = training_ctx()
    x = torch.zeros(4, 1, 8, 8)
    ctx.data = DatasetSplits(x, None, x, None, num_classes=10)
    with pytest.raises(Skip, match="labels"):
        kd.apply(ctx.build_model(), KDParams(teacher=TEACHER), ctx)
