"""prune.magnitude through the harness: a real suite, the plugin loaded from its entry point."""
from __future__ import annotations


def test_magnitude_pruning_in_a_suite_records_sparsity_and_measured_speed(optbench_run, tiny_suite):
    run = optbench_run(tiny_suite("prune.magnitude", {"sparsity": [0.5, 0.9], "scope": "global"}))
    assert run.exit_code == 0
    base = run.by_method("baseline")[0]
    pruned = sorted(run.by_method("prune.magnitude"), key=lambda r: r["params"]["sparsity"])
    assert [r["params"] for r in pruned] == [{"sparsity": 0.5, "scope": "global"}, {"sparsity": 0.9, "scope": "global"}]
    for r in pruned:
        weights = r["params_count"]
        assert r["nonzero_params"] < (1.02 - r["params"]["sparsity"]) * weights
        assert r["speedup"] is not None and r["size_ratio"] is not None  # measured, whatever it is
    assert pruned[1]["accuracy"] <= base["accuracy"]
