"""quantize.dynamic_int8 through the harness: a real suite, the plugin loaded from its entry point."""
from __future__ import annotations


def test_dynamic_int8_in_a_suite_shrinks_the_model_and_keeps_accuracy(optbench_run, tiny_suite):
    run = optbench_run(tiny_suite("quantize.dynamic_int8", {"dtype": ["qint8", "float16"]}, model_params={"epochs": 5}))
    assert run.exit_code == 0
    base = run.by_method("baseline")[0]
    by_dtype = {r["params"]["dtype"]: r for r in run.by_method("quantize.dynamic_int8")}
    assert by_dtype["qint8"]["size_ratio"] > 2.5
    assert abs(by_dtype["qint8"]["accuracy_delta"]) < 0.05
    assert by_dtype["float16"]["accuracy"] > base["accuracy"] - 0.02
    assert by_dtype["qint8"]["flops"] == base["flops"]  # same work, counted from layer shapes
