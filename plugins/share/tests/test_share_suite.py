"""share.kmeans through the harness: a real suite, the plugin loaded from its entry point."""
from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from optbench_share import plugin


@pytest.fixture
def share_entry_point(optbench_plugin):
    """The installed entry point, as a user gets it; this checkout's plugin module when the
    distribution is not pip-installed (a CI that installs only some plugins)."""
    if not any(ep.name == "share" for ep in entry_points(group="optbench")):
        optbench_plugin(plugin, name="share")


def test_kmeans_sharing_in_a_suite_records_a_smaller_effective_size(share_entry_point, optbench_run, tiny_suite):
    run = optbench_run(tiny_suite("share.kmeans", {"bits": 4}))
    assert run.exit_code == 0
    (base,) = run.by_method("baseline")
    (shared,) = run.by_method("share.kmeans")
    assert base["status"] == shared["status"] == "ok"
    assert shared["params"] == {"bits": 4, "init": "linear", "iters": 20}
    assert shared["accuracy"] is not None and shared["latency_p50_ms"] is not None
    assert shared["params_count"] == base["params_count"]  # same float32 tensors in memory
    # The effective size comes from ctx.report; only a harness that merges reported facts
    # into records has bits_per_param, so check the size there.
    if shared.get("bits_per_param") is not None:
        assert 4 < shared["bits_per_param"] < 5
        assert shared["model_bytes"] < base["model_bytes"] / 6
        assert shared["size_ratio"] > 6
