"""distill.kd and distill.feature through the harness: real suites, the plugin loaded from its entry point."""
from __future__ import annotations

from importlib.metadata import entry_points

import pytest
import yaml

from harness.errors import SuiteError
from optbench_distill import plugin

#: A small teacher that trains in a second; the harness trains and caches it like a baseline.
TEACHER = {"name": "cnn", "params": {"epochs": 3, "channels": [8], "hidden": 32}}
STUDENT = {"hidden": [32], "epochs": 1}  # epochs: the baseline cell's training, not the distillers'
ONE_THREAD = [{"name": "cpu", "params": {"threads": 1}}]


@pytest.fixture
def distill_entry_point(optbench_plugin):
    """The installed entry point, as a user gets it; this checkout's plugin module when the
    distribution is not pip-installed (a CI that installs only some plugins)."""
    if not any(ep.name == "distill" for ep in entry_points(group="optbench")):
        optbench_plugin(plugin, name="distill")


def suite(tiny_suite, method: str, params: dict) -> dict:
    s = tiny_suite(method, params, model_params=STUDENT, train={"epochs": 2}, seeds=[0])
    s["backends"] = ONE_THREAD
    return s


def test_kd_and_feature_distillation_in_one_suite(distill_entry_point, optbench_run, tiny_suite, optbench_digits):
    """One run (starting the cell processes costs seconds): kd and feature distillation on a
    tenth of the labels, and a feature cell with a module path the student does not have."""
    s = suite(tiny_suite, "distill.kd", {"teacher": TEACHER, "labels_fraction": 0.1})
    feature = {"teacher": TEACHER, "labels_fraction": 0.1, "student_layer": "2", "teacher_layer": "5"}
    s["methods"] += [{"name": "distill.feature", "params": feature},
                     {"name": "distill.feature", "params": {**feature, "student_layer": "hidden.9"}}]
    run = optbench_run(s)
    assert run.exit_code == 1  # the bad layer path fails its cell; the others are ok
    (base,) = run.by_method("baseline")
    assert base["status"] == "ok", base.get("error")
    n_train = optbench_digits.x_train.shape[0]
    check_kd_record(run, n_train)
    check_feature_records(run)


def check_kd_record(run, n_train: int) -> None:
    (rec,) = run.by_method("distill.kd")
    assert rec["status"] == "ok", rec.get("error")
    assert rec["method_kind"] == "distiller"
    assert rec["params"]["teacher"]["params"]["channels"] == [8]
    assert rec["params"]["teacher"]["params"]["lr"] == 0.001  # the teacher's defaults are filled in
    assert (rec["params"]["temperature"], rec["params"]["alpha"], rec["params"]["labels_fraction"]) == (4.0, 0.9, 0.1)
    assert rec["accuracy_gain"] is not None and rec["reference_accuracy"] is not None
    assert rec["accuracy_gain"] == pytest.approx(rec["final_accuracy"] - rec["reference_accuracy"])
    assert rec["accuracy"] == pytest.approx(rec["final_accuracy"])
    assert abs(rec["train_labels"] - 0.1 * n_train) <= 10

    curves = run.curves(rec)
    assert set(curves) == {"main", "reference"}
    main, ref = curves["main"], curves["reference"]
    assert len(main["points"]) == len(ref["points"]) == 3  # before training and after each of 2 epochs
    assert [p["epoch"] for p in main["points"]] == [p["epoch"] for p in ref["points"]] == [0, 1, 2]
    assert [p["step"] for p in main["points"]] == [p["step"] for p in ref["points"]]
    assert main["steps_run"] == ref["steps_run"] == 2 * -(-n_train // 64)  # ceil(N / batch) per epoch, both
    assert main["train_labels"] == ref["train_labels"] == rec["train_labels"]
    assert ref["points"][-1]["test_accuracy"] == rec["reference_accuracy"]


def check_feature_records(run) -> None:
    good, bad = run.by_method("distill.feature")
    assert good["status"] == "ok", good.get("error")
    assert good["accuracy_gain"] is not None and good["reference_accuracy"] is not None
    curves = run.curves(good)
    assert [p["step"] for p in curves["main"]["points"]] == [p["step"] for p in curves["reference"]["points"]]
    assert bad["status"] == "failed"
    assert "ValueError" in bad["error"] and "'hidden.9'" in bad["error"] and "'0', '1', '2', '3'" in bad["error"]


def test_an_unknown_teacher_model_is_a_suite_error(distill_entry_point, optbench_run, tiny_suite, tmp_path,
                                                   capsys):
    bad = suite(tiny_suite, "distill.kd", {"teacher": {"name": "resnet999"}})
    with pytest.raises(SuiteError) as caught:
        optbench_run(bad)
    (problem,) = caught.value.problems
    assert problem.path == "methods[0].params.teacher.name"
    assert "unknown model 'resnet999'" in problem.message and "cnn" in problem.hint

    from harness.cli import main

    path = tmp_path / "bad-teacher.yaml"
    path.write_text(yaml.safe_dump(bad, sort_keys=False))
    assert main(["validate", str(path)]) == 2
    assert "unknown model 'resnet999'" in capsys.readouterr().err


def test_bad_teacher_params_are_a_suite_error(distill_entry_point, optbench_run, tiny_suite):
    with pytest.raises(SuiteError) as caught:
        optbench_run(suite(tiny_suite, "distill.kd", {"teacher": {"name": "cnn", "params": {"epochs": -1}}}))
    assert any(p.path.startswith("methods[0].params.teacher") for p in caught.value.problems)
