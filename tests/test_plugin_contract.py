"""What the harness does when a plugin leaves something out or returns the wrong thing: it
supplies the documented defaults, or fails the one cell with a message naming the plugin."""
from __future__ import annotations


def test_a_model_with_no_training_params_is_trained_with_the_defaults(misbehaving, optbench_run, tiny_suite):
    run = optbench_run(tiny_suite(model="test.plain", model_params={}))
    assert run.exit_code == 0
    (baseline,) = run.by_method("baseline")
    assert baseline["status"] == "ok", baseline["error"]
    assert baseline["accuracy"] > 0.85  # 20 epochs of Adam at lr 0.001: a trained model, not random weights
    assert "trained in" in run.log(baseline)


def test_validate_accepts_such_a_model(misbehaving, write_suite):
    """What ``optbench validate`` does, in this process (a CLI subprocess would not see in-test plugins)."""
    from harness.registry.manager import PluginManager
    from harness.run.runner import plan

    _, cells = plan(write_suite("name: t\ndatasets: [digits]\nmodels: [test.plain]\n"), PluginManager.load())
    assert [(c.model.name, c.model.params) for c in cells] == [("test.plain", {})]


def test_a_method_that_returns_nothing_fails_its_cell_with_the_reason(misbehaving, optbench_run, tiny_suite):
    run = optbench_run(tiny_suite("test.returns-none"))
    assert run.exit_code == 1
    (bad,) = run.by_method("test.returns-none")
    assert bad["status"] == "failed"
    assert bad["error"] == ("TypeError: method 'test.returns-none': apply(model, params, ctx) returned NoneType; "
                            "expected a torch.nn.Module")
    assert run.by_method("baseline")[0]["status"] == "ok"  # one bad cell, not a bad run


def test_a_dataset_that_returns_a_tuple_fails_with_the_reason(misbehaving, optbench_run, tiny_suite):
    run = optbench_run(tiny_suite(dataset="test.tuple"))
    (baseline,) = run.by_method("baseline")
    assert baseline["status"] == "failed"
    assert "dataset 'test.tuple': load(params, seed) returned tuple; expected a harness.DatasetSplits" in baseline["error"]
