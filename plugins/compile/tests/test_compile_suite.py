"""compile.torch through the harness: a real suite, the plugin loaded from its entry point."""
from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from optbench_compile import plugin


@pytest.fixture
def compile_entry_point(optbench_plugin):
    """The installed entry point, as a user gets it; this checkout's plugin module when the
    distribution is not pip-installed (a CI that installs only some plugins)."""
    if not any(ep.name == "compile" for ep in entry_points(group="optbench")):
        optbench_plugin(plugin, name="compile")


def test_torch_compile_in_a_suite_is_measured_with_compile_time_apart(compile_entry_point, optbench_run, tiny_suite):
    run = optbench_run(tiny_suite("compile.torch", {"mode": "default"}))
    assert run.exit_code == 0
    (base,) = run.by_method("baseline")
    (compiled,) = run.by_method("compile.torch")
    assert base["status"] == compiled["status"] == "ok", compiled.get("error")
    assert compiled["params"] == {"mode": "default", "dynamic": None, "fullgraph": False}
    assert compiled["latency_p50_ms"] > 0 and compiled["latency_n"] >= 5
    assert compiled["speedup"] is not None
    assert compiled["accuracy"] == base["accuracy"]  # same weights, same arithmetic up to float error
    assert compiled["params_count"] == base["params_count"]
    # compile_s is a reported fact; only a harness that merges them has the field
    if compiled.get("compile_s") is not None:
        assert 0 < compiled["compile_s"] <= compiled["setup_s"]
