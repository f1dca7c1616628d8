"""transfer.finetune through the harness: a real suite, the plugin loaded from its entry point."""
from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from optbench_transfer import plugin


@pytest.fixture
def transfer_entry_point(optbench_plugin):
    """The installed entry point, as a user gets it; this checkout's plugin module when the
    distribution is not pip-installed (a CI that installs only some plugins)."""
    if not any(ep.name == "transfer" for ep in entry_points(group="optbench")):
        optbench_plugin(plugin, name="transfer")


def test_three_modes_on_digits_and_a_class_the_dataset_lacks(transfer_entry_point, optbench_run, tiny_suite):
    suite = tiny_suite("transfer.finetune",
                       {"mode": ["full", "linear_probe", "from_scratch"], "pretrain_epochs": 2, "epochs": 8},
                       model_params={"epochs": 1, "hidden": [32]}, train={"epochs": 2})
    # One intra-op thread: tiny batches train fastest that way, and stay fast on a busy machine.
    suite["backends"] = [{"name": "cpu", "params": {"threads": 1}}]
    suite["methods"].append({"name": "transfer.finetune", "params": {"target_classes": [5, 12], "epochs": 1}})
    run = optbench_run(suite)

    rows = run.by_method("transfer.finetune")
    failed = [r for r in rows if r["params"]["target_classes"] == [5, 12]]
    by_mode = {r["params"]["mode"]: r for r in rows if r not in failed}
    assert run.exit_code == 1 and len(failed) == 1  # the failed cell, nothing else
    assert failed[0]["status"] == "failed"
    assert "target_classes" in failed[0]["error"] and "[12] not in the dataset" in failed[0]["error"]

    assert set(by_mode) == {"full", "linear_probe", "from_scratch"}
    for mode, r in by_mode.items():
        assert r["status"] == "ok", (mode, r["error"])
        assert r["method_kind"] == "transfer" and r["train"]["epochs"] == 2
        assert r["params"]["target_labels_per_class"] == 10 and r["train_labels"] == 50
        curves = run.curves(r)
        main = curves["main"]["points"]
        assert [p["epoch"] for p in main] == list(range(9))  # epochs 0..8 on the target task
        # the record's accuracy is measured on the target task: the main run's last evaluation
        assert r["accuracy"] == pytest.approx(main[-1]["test_accuracy"], abs=1e-9)
        assert r["accuracy"] == pytest.approx(r["final_accuracy"], abs=1e-9)
        if mode == "from_scratch":
            assert set(curves) == {"main"}
            assert r["accuracy_gain"] is None and r["pretrain_s"] is None and r["reference_accuracy"] is None
        else:
            assert set(curves) == {"pretrain", "main", "reference"}
            assert [p["epoch"] for p in curves["pretrain"]["points"]] == [0, 1, 2]
            assert r["accuracy_gain"] is not None and r["pretrain_s"] is not None and r["pretrain_s"] > 0
            assert r["accuracy_gain"] == pytest.approx(r["accuracy"] - r["reference_accuracy"], abs=1e-9)
            # the reference is from_scratch's run: same weights, data, budget and seed
            assert r["reference_accuracy"] == pytest.approx(by_mode["from_scratch"]["accuracy"], abs=1e-9)
