"""The template's tests: what a plugin's own test suite looks like. The fixtures
(optbench_plugin, optbench_run, tiny_suite) come with optbench itself."""
import pytest

from harness.testing import registered_objects
from optbench_myplugin import plugin


def test_it_registers_one_pruner_with_validated_params():
    (method,) = registered_objects(plugin)
    assert (method.name, method.kind) == ("myplugin.threshold", "pruner")
    with pytest.raises(ValueError):
        method.params(threshold=-1)


def test_pruning_zeroes_weights_and_the_harness_measures_it(optbench_plugin, optbench_run, tiny_suite):
    optbench_plugin(plugin, name="myplugin")  # a no-op when the plugin is pip-installed
    run = optbench_run(tiny_suite("myplugin.threshold", {"threshold": [0.25, 1.0]}))
    assert run.exit_code == 0
    (baseline,) = run.by_method("baseline")
    pruned = sorted(run.by_method("myplugin.threshold"), key=lambda r: r["params"]["threshold"])
    assert [r["status"] for r in pruned] == ["ok", "ok"]
    light, heavy = pruned
    assert baseline["nonzero_params"] > light["nonzero_params"] > heavy["nonzero_params"]
    assert light["theoretical_speedup"] > 1.0        # fewer nonzero FLOPs in theory ...
    assert abs(light["accuracy_delta"]) < 0.1         # ... and a light threshold keeps accuracy
    assert "zeroed" in run.log(light)
