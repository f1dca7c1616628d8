"""Core compression features: pipelines, the shared fine-tuning schedule, the accuracy gate,
theoretical against realized speedup, effective size reported by a method."""
from __future__ import annotations

import pytest
import torch
from pydantic import Field

from harness import Method, Params, hookimpl
from harness.builtin.datasets import DIGITS, DigitsParams
from harness.builtin.models import MLP, MLPParams
from harness.suite.schema import Finetune
from harness.train.classifier import finetune_keeping_zeros


def test_pipeline_applies_steps_in_order_and_names_every_step(optbench_run, tiny_suite):
    suite = tiny_suite()
    suite["methods"] = [{"pipeline": [
        {"name": "prune.magnitude", "params": {"sparsity": [0.5, 0.8]}},
        "quantize.dynamic_int8",
    ]}]
    run = optbench_run(suite)
    assert run.exit_code == 0
    rows = run.by_method("prune.magnitude > quantize.dynamic_int8")
    assert len(rows) == 2 and {r["method_kind"] for r in rows} == {"pipeline"}
    for r in rows:
        (prune, quant) = r["params"]["steps"]
        assert prune["name"] == "prune.magnitude" and quant == {"name": "quantize.dynamic_int8", "params": {"dtype": "qint8"}}
        assert r["size_ratio"] > 2.5  # int8 happened after pruning
        assert r["nonzero_params"] < (1.05 - prune["params"]["sparsity"]) * r["params_count"]  # zeros survived int8
    assert {r["params"]["steps"][0]["params"]["sparsity"] for r in rows} == {0.5, 0.8}


def test_finetune_keeps_pruned_weights_at_zero_and_recovers_accuracy():
    data = DIGITS.load(DigitsParams(), 0)
    torch.manual_seed(0)
    from harness.train.classifier import evaluate_accuracy, train_classifier

    model = train_classifier(MLP.build(MLPParams(hidden=[64]), data), data, epochs=10, lr=1e-3, batch_size=64, seed=0)
    import torch.nn.utils.prune as P

    for layer in (model[1], model[3]):
        P.l1_unstructured(layer, "weight", amount=0.9)
        P.remove(layer, "weight")
    zeros_before = [(m.weight == 0).clone() for m in (model[1], model[3])]
    acc_pruned = evaluate_accuracy(model, data.x_test, data.y_test, device=torch.device("cpu"))
    held = finetune_keeping_zeros(model, data, Finetune(epochs=3, lr=1e-3), seed=0)
    acc_tuned = evaluate_accuracy(model, data.x_test, data.y_test, device=torch.device("cpu"))
    assert held == sum(int(z.sum()) for z in zeros_before)
    for layer, zeros in zip((model[1], model[3]), zeros_before):
        assert torch.equal(layer.weight == 0, zeros)
    assert acc_tuned > acc_pruned + 0.05


def test_suite_finetune_runs_after_pruners_only_and_the_gate_marks_every_record(optbench_run, tiny_suite):
    suite = tiny_suite()
    suite["models"][0]["params"] = {"epochs": 10}
    suite["methods"] = [
        {"name": "prune.magnitude", "params": {"sparsity": 0.9}},
        {"name": "quantize.dynamic_int8"},
    ]
    suite["finetune"] = {"epochs": 3, "lr": 0.001}
    suite["accuracy_gate"] = {"relative": 0.01}
    tuned = optbench_run(suite)
    suite.pop("finetune")
    plain = optbench_run(suite)
    for run in (tuned, plain):
        assert run.exit_code == 0
        assert all(r["passes_gate"] is not None for r in run.records)
        assert run.by_method("baseline")[0]["passes_gate"] is True
    t, p = tuned.by_method("prune.magnitude")[0], plain.by_method("prune.magnitude")[0]
    assert t["finetuned"] is True and p["finetuned"] is False
    assert tuned.by_method("quantize.dynamic_int8")[0]["finetuned"] is False
    assert tuned.by_method("baseline")[0]["finetuned"] is False
    assert t["accuracy"] > p["accuracy"] + 0.05  # 90% sparsity is recovered by fine-tuning
    assert t["nonzero_params"] == p["nonzero_params"]  # and fine-tuning kept the zeros
    assert p["passes_gate"] is False  # 90% unstructured sparsity without fine-tuning


def test_unstructured_pruning_shows_theoretical_speedup_beside_the_measured_one(optbench_run, tiny_suite):
    run = optbench_run(tiny_suite("prune.magnitude", {"sparsity": 0.75}))
    r = run.by_method("prune.magnitude")[0]
    base = run.by_method("baseline")[0]
    assert base["theoretical_speedup"] == 1.0
    assert r["effective_flops"] < r["flops"] == base["flops"]
    assert r["theoretical_speedup"] == pytest.approx(4.0, rel=0.02)  # nearly all FLOPs are in pruned layers
    assert r["speedup"] is not None  # measured, whatever it is


class CodebookParams(Params):
    bits: int = Field(4, ge=1, le=8, description="bits per stored weight")


def _pretend_codebook(model, params, ctx):
    total = sum(p.numel() for p in model.parameters())
    ctx.report(model_bytes=total * params.bits // 8, bits_per_param=float(params.bits))
    return model


class Reporting:
    @hookimpl
    def register_methods(self, register):
        register(Method(name="test.reporting", kind="sharing", description="reports its size",
                        apply=_pretend_codebook, params=CodebookParams))


REPORTING = Reporting()


def test_a_method_reports_its_effective_size_and_the_serialized_size_is_kept(optbench_run, tiny_suite, optbench_plugin):
    optbench_plugin(REPORTING, name="reporting")
    run = optbench_run(tiny_suite("test.reporting", {"bits": 4}))
    r, base = run.by_method("test.reporting")[0], run.by_method("baseline")[0]
    overhead = base["serialized_bytes"] - 4 * base["params_count"]  # torch.save's container around float32 tensors
    assert r["bits_per_param"] == 4.0 and r["model_bytes"] == r["params_count"] * 4 // 8 + overhead
    assert r["serialized_bytes"] == base["serialized_bytes"] == base["model_bytes"]
    assert r["size_ratio"] == pytest.approx(base["model_bytes"] / r["model_bytes"])
    assert base["bits_per_param"] == pytest.approx(base["model_bytes"] * 8 / base["params_count"])
