"""The pruners through the harness: real suites, the plugin loaded from its entry point.

Cells use one intra-op thread: on a small shared machine two threads per cell make
training and measuring several times slower, and these tests check what the methods
do to the model, not how fast it runs.
"""
from __future__ import annotations

import math

import pytest

ONE_THREAD_CPU = [{"name": "cpu", "params": {"threads": 1}}]
SEMI_STRUCTURED_REASON = (
    "2:4 semi-structured sparsity needs a CUDA GPU with compute capability >= 8.0; this cell runs on cpu"
)


def test_magnitude_pruning_in_a_suite_records_sparsity_and_measured_speed(optbench_run, tiny_suite):
    suite = {**tiny_suite("prune.magnitude", {"sparsity": [0.5, 0.9], "scope": "global"}), "backends": ONE_THREAD_CPU}
    run = optbench_run(suite)
    assert run.exit_code == 0
    base = run.by_method("baseline")[0]
    pruned = sorted(run.by_method("prune.magnitude"), key=lambda r: r["params"]["sparsity"])
    assert [r["params"] for r in pruned] == [{"sparsity": 0.5, "scope": "global"}, {"sparsity": 0.9, "scope": "global"}]
    for r in pruned:
        weights = r["params_count"]
        assert r["nonzero_params"] < (1.02 - r["params"]["sparsity"]) * weights
        assert r["speedup"] is not None and r["size_ratio"] is not None  # measured, whatever it is
    assert pruned[1]["accuracy"] <= base["accuracy"]


def test_random_gradient_structured_and_semi_structured_in_one_suite(optbench_run, tiny_suite, optbench_digits):
    from optbench_prune.magnitude import prunable_layers

    from harness.builtin.models import MLP, MLPParams

    suite = tiny_suite()
    suite["backends"] = ONE_THREAD_CPU
    suite["methods"] = [
        {"name": "prune.random", "params": {"sparsity": 0.5}},
        {"name": "prune.gradient", "params": {"sparsity": 0.5}},
        {"name": "prune.structured", "params": {"ratio": 0.5}},
        {"name": "prune.semi_structured"},
    ]
    run = optbench_run(suite)
    assert run.exit_code == 0
    (base,) = run.by_method("baseline")
    (rand,), (grad,), (struct,), (semi,) = (
        run.by_method(f"prune.{m}") for m in ("random", "gradient", "structured", "semi_structured")
    )
    assert [r["status"] for r in (base, rand, grad, struct)] == ["ok"] * 4
    assert semi["status"] == "skipped" and semi["error"] == SEMI_STRUCTURED_REASON

    mlp = MLP.build(MLPParams(**suite["models"][0]["params"]), optbench_digits)
    layers = prunable_layers(mlp)
    weights = sum(layer.weight.numel() for layer in layers)
    biases = sum(layer.bias.numel() for layer in layers)
    assert base["params_count"] == weights + biases
    for r in (rand, grad):  # half of every layer's weights, rounded per layer; biases kept
        assert r["params_count"] == base["params_count"]
        assert math.isclose(r["nonzero_params"], 0.5 * weights + biases, abs_tol=len(layers))

    # 64 -> 64 -> 64 -> 10 instead of 64 -> 128 -> 128 -> 10: a smaller dense model
    assert struct["params_count"] == (64 * 64 + 64) + (64 * 64 + 64) + (64 * 10 + 10) < base["params_count"]
    assert struct["nonzero_params"] == pytest.approx(struct["params_count"], rel=0.01)
    assert struct["model_bytes"] < base["model_bytes"] and struct["size_ratio"] > 1
    assert struct["accuracy"] is not None and grad["accuracy"] is not None
