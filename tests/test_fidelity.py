"""Output fidelity against the baseline: the figures' arithmetic, the gate's criteria, and real runs
(trained and random-weight models) through the runner."""
from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from harness.measure.fidelity import compare, exact, output_tensor
from harness.suite.schema import AccuracyGate


def test_identical_outputs_are_exact_and_a_flipped_prediction_is_counted():
    ref = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [1.0, 0.0, 0.5], [0.2, 0.1, 0.0]])
    same = compare(ref, ref.clone(), num_classes=3)
    assert same["agreement"] == 1.0 and same["kl_div"] == pytest.approx(0.0, abs=1e-15)
    assert same["cosine"] == pytest.approx(1.0) and same["max_abs_err"] == 0.0
    moved = ref.clone()
    moved[0] = torch.tensor([1.0, 2.0, 0.0])  # one of four predictions changes
    out = compare(ref, moved, num_classes=3)
    assert out["agreement"] == 0.75 and out["max_abs_err"] == 1.0
    p, q = torch.softmax(ref[0].double(), 0), torch.softmax(moved[0].double(), 0)
    assert out["kl_div"] == pytest.approx(float((p * (p / q).log()).sum()) / 4)
    cos0 = float(torch.nn.functional.cosine_similarity(ref[0:1], moved[0:1]))
    assert out["cosine"] == pytest.approx((cos0 + 3) / 4)


def test_embeddings_get_cosine_only_and_nan_outputs_get_no_cosine():
    ref, out = torch.randn(8, 16), torch.randn(8, 16)
    figures = compare(ref, out, num_classes=2)  # 16 dims is not a 2-class classifier's output
    assert figures["agreement"] is None and figures["kl_div"] is None
    expected = torch.nn.functional.cosine_similarity(ref.double(), out.double()).mean()
    assert figures["cosine"] == pytest.approx(float(expected))
    assert compare(ref, ref * -1, num_classes=2)["cosine"] == pytest.approx(-1.0)
    broken = out.clone()
    broken[0, 0] = math.nan
    assert compare(ref, broken, num_classes=2)["cosine"] is None
    with pytest.raises(ValueError, match="not comparable"):
        compare(ref, torch.randn(8, 15), num_classes=2)
    hidden = torch.randn(4, 5, 6)  # a base model's last hidden state: each sample flattened
    assert compare(hidden, hidden.clone(), num_classes=2)["cosine"] == pytest.approx(1.0)


def test_the_tensor_inside_a_model_output():
    t = torch.ones(2, 3)
    assert output_tensor(t) is t
    assert output_tensor({"loss": None, "logits": t}) is t
    assert output_tensor((t, torch.zeros(1))) is t
    assert output_tensor({"hidden": t}) is t

    class ModelOutput(dict):  # what transformers returns: a mapping with attribute access
        pass

    assert output_tensor(ModelOutput(last_hidden_state=t, pooler_output=torch.zeros(2))) is t
    with pytest.raises(TypeError, match="holds no tensor"):
        output_tensor("text")


def test_the_baseline_is_exact_by_definition():
    assert exact(torch.randn(4, 10), 10) == {"agreement": 1.0, "kl_div": 0.0, "cosine": 1.0, "max_abs_err": 0.0,
                                             "rel_err": None}
    assert exact(torch.randn(4, 384), 2) == {"agreement": None, "kl_div": None, "cosine": 1.0, "max_abs_err": 0.0,
                                             "rel_err": None}
    # one value per input (a regression): cosine would only compare signs; the relative error says it
    assert exact(torch.randn(4, 1), 0, task="regression") == {"agreement": None, "kl_div": None, "cosine": None,
                                                              "max_abs_err": 0.0, "rel_err": 0.0}
    # a segmentation's class maps agree pixel by pixel; multi-label scores label decision by label decision
    assert exact(torch.randn(2, 3, 4, 4), 3, task="segmentation")["agreement"] == 1.0
    assert exact(torch.randn(2, 5), 5, task="multilabel")["kl_div"] is None


def test_fidelity_of_a_regression_a_segmentation_and_multilabel_scores():
    ref = torch.tensor([[2.0], [-4.0]])
    assert compare(ref, ref + 0.3, 0, task="regression")["rel_err"] == pytest.approx(0.1)
    maps = torch.zeros(1, 2, 2, 2)
    maps[0, 0] = 1.0  # class 0 everywhere...
    moved = maps.clone()
    moved[0, 1, 0, 0] = 5.0  # ...but one pixel of four now says class 1
    assert compare(maps, moved, 2, task="segmentation")["agreement"] == pytest.approx(0.75)
    logits = torch.tensor([[1.0, -1.0, 2.0, -2.0]])
    assert compare(logits, -logits, 4, task="multilabel")["agreement"] == 0.0


def test_the_gate_judges_what_it_can_and_says_null_when_it_can_judge_nothing():
    gate = AccuracyGate(relative=0.01, cosine=0.99)
    assert gate.verdict(0.97, 0.97, 0.99, 0.995) is True
    assert gate.verdict(0.95, 0.97, 1.0, 0.999) is False  # accuracy below the 99% tier
    assert gate.verdict(0.97, 0.97, 1.0, 0.98) is False  # outputs moved too far
    assert gate.verdict(None, None, None, 0.995) is True  # random weights: cosine alone is judged
    assert gate.verdict(None, None, None, None) is None
    only_fidelity = AccuracyGate(agreement=0.99)
    assert not only_fidelity.judges_accuracy and only_fidelity.passes(0.1, 0.9)
    assert only_fidelity.verdict(0.1, 0.9, 0.995, None) is True
    assert only_fidelity.describe() == "agreement >= 0.99"
    for bad in ({}, {"relative": 0.01, "absolute": 0.01}, {"cosine": 1.5}):
        with pytest.raises(ValidationError):
            AccuracyGate(**bad)


def test_a_compression_run_records_fidelity_and_top5(optbench_run, tiny_suite):
    suite = tiny_suite("prune.magnitude", {"sparsity": [0.5, 0.9]}, model_params={"hidden": [64], "epochs": 10})
    suite["accuracy_gate"] = {"cosine": 0.95}
    run = optbench_run(suite)
    assert run.exit_code == 0
    (baseline,) = run.by_method("baseline")
    assert (baseline["agreement"], baseline["kl_div"], baseline["cosine"], baseline["max_abs_err"]) == (1.0, 0.0, 1.0, 0.0)
    assert baseline["fidelity_n"] == 450  # digits' whole test split: fewer than the 512 asked for
    assert 0.9 < baseline["accuracy"] <= baseline["top5_accuracy"] <= 1.0
    half, most = sorted(run.by_method("prune.magnitude"), key=lambda r: r["params"]["sparsity"])
    assert 1.0 > half["cosine"] > most["cosine"] and 1.0 > half["agreement"] > most["agreement"]
    assert half["kl_div"] < most["kl_div"] and most["max_abs_err"] > 0
    assert most["passes_gate"] is False and baseline["passes_gate"] is True  # judged on cosine alone
    assert "fidelity over 450 test inputs: agreement" in run.log(half)


def test_fidelity_needs_no_labels_and_can_be_turned_off(optbench_run, tiny_suite):
    suite = tiny_suite("quantize.dynamic_int8", dataset="synthetic",
                       dataset_params={"shape": [16], "classes": 4, "samples": 40})
    run = optbench_run(suite)
    (int8,) = run.by_method("quantize.dynamic_int8")
    assert int8["accuracy"] is None and int8["top5_accuracy"] is None  # random weights: no accuracy
    assert 0.99 < int8["cosine"] < 1.0 and int8["agreement"] is not None and int8["fidelity_n"] == 40
    off = optbench_run({**suite, "measure": {**suite["measure"], "fidelity_samples": 0}})
    assert all(r["cosine"] is None and r["fidelity_n"] is None for r in off.records)


def test_compare_says_when_fidelity_moved_and_a_fidelity_gate_makes_a_drop_a_regression():
    from harness.results.compare import DROPPED, IMPROVED, fidelity_note, judge_fidelity

    base, new = {"agreement": 1.0, "cosine": 0.9995}, {"agreement": 0.97, "cosine": 0.47}
    assert fidelity_note(base, new) == "agreement 1.0000 → 0.9700, cosine 0.9995 → 0.4700"
    assert fidelity_note(base, {"agreement": 0.9999, "cosine": 0.9994}) == ""  # within 0.001: not said
    gate = AccuracyGate(relative=0.01, cosine=0.99)
    assert judge_fidelity(base, new, gate) == DROPPED and judge_fidelity(new, base, gate) == IMPROVED
    assert judge_fidelity(base, new, AccuracyGate(relative=0.01)) is None  # no fidelity criterion
