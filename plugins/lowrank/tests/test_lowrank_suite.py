"""lowrank.svd through the harness: a real suite, the plugin loaded from its entry point."""
from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from optbench_lowrank import plugin


@pytest.fixture
def lowrank_entry_point(optbench_plugin):
    """The installed entry point, as a user gets it; this checkout's plugin module when the
    distribution is not pip-installed (a CI that installs only some plugins)."""
    if not any(ep.name == "lowrank" for ep in entry_points(group="optbench")):
        optbench_plugin(plugin, name="lowrank")


def test_svd_factorization_in_a_suite_records_fewer_params(lowrank_entry_point, optbench_run, tiny_suite):
    run = optbench_run(tiny_suite("lowrank.svd", {"rank_ratio": 0.25}))
    assert run.exit_code == 0
    (base,) = run.by_method("baseline")
    (low,) = run.by_method("lowrank.svd")
    assert base["status"] == low["status"] == "ok"
    assert low["params"] == {"rank_ratio": 0.25, "energy": None, "skip_classifier": False, "include": None}
    # digits mlp 64-128-128-10 at r = 16, 32, 3: (64+128)*16 + 2*128*32 + (128+10)*3 weights
    # plus the 128+128+10 biases, instead of 26,122
    assert base["params_count"] == 26_122
    assert low["params_count"] == 11_944
    assert low["accuracy"] is not None and low["latency_p50_ms"] is not None
    if base.get("flops") and low.get("flops"):
        assert low["flops"] < base["flops"]
