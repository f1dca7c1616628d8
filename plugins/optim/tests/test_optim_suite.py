"""optim.* through the harness: real training runs, the plugin loaded from its entry point.

Four small runs serve every test here; each is made once per session (the first test
that needs it runs it) and read by the others:

- digits: every method trains logreg for two epochs, and SGD's lr is a log grid;
- quadratic: SGD at a stable lr against L-BFGS on DeepOBS's quadratic, full batch;
- newton: exact Newton on the quadratic (its floor in one step) and on the mlp (refused);
- rerun: one cell of the digits run again, for determinism.

Cells use one intra-op thread: the runs are tiny and a second thread only contends on a
busy two-core machine.
"""

from __future__ import annotations

from typing import Any

import pytest
from optbench_optim import plugin

from harness.testing import FAST_MEASURE, SuiteRun

CPU_ONE_THREAD = [{"name": "cpu", "params": {"threads": 1}}]
DIGITS_TRAIN = {"epochs": 2, "batch_size": 64, "eval_every": 1, "target_accuracy": 0.8}
SGD_GRID = [0.01, 0.1, 1.0]


def suite(name: str, datasets: list, models: list, methods: list, train: dict) -> dict[str, Any]:
    return {
        "name": name,
        "seed": 0,
        "datasets": datasets,
        "models": models,
        "methods": methods,
        "backends": CPU_ONE_THREAD,
        "measure": dict(FAST_MEASURE),
        "execution": {"timeout_s": 120},
        "train": train,
    }


LBFGS_ON_DIGITS = {"name": "optim.lbfgs"}
SUITES = {
    "digits": suite(
        "optim-digits",
        ["digits"],
        [{"name": "logreg", "params": {"epochs": 1}}],
        [
            {"name": "optim.sgd", "params": {
                "lr": {"log_grid": [SGD_GRID[0], SGD_GRID[-1]], "points": len(SGD_GRID)},
                "momentum": 0.9, "nesterov": True}},
            {"name": "optim.adam"},
            {"name": "optim.adamw", "params": {"lr": 0.01, "schedule": "cosine"}},
            {"name": "optim.rmsprop"},
            {"name": "optim.adagrad", "params": {"lr": 0.1}},
            LBFGS_ON_DIGITS,
            {"name": "optim.newton", "params": {"damping": 0.1}},
        ],
        DIGITS_TRAIN,
    ),
    # Q's eigenvalues are at most 60, so plain gradient descent is stable below lr 1/30.
    "quadratic": suite(
        "optim-quadratic",
        ["quadratic"],
        [{"name": "theta", "params": {"epochs": 1}}],
        [{"name": "optim.sgd", "params": {"lr": 0.02}}, {"name": "optim.lbfgs"}],
        {"epochs": 110, "batch_size": 1000, "eval_every": 1},
    ),
    "newton": suite(
        "optim-newton",
        ["digits", "quadratic"],
        [
            {"name": "mlp", "datasets": ["digits"], "params": {"epochs": 1}},
            {"name": "theta", "datasets": ["quadratic"], "params": {"epochs": 1},
             "train": {"batch_size": 1000, "epochs": 2}},
        ],
        [{"name": "optim.newton"}],
        {"epochs": 1, "batch_size": 64, "eval_every": 1},
    ),
    "rerun": suite(
        "optim-rerun", ["digits"], [{"name": "logreg", "params": {"epochs": 1}}], [LBFGS_ON_DIGITS], DIGITS_TRAIN
    ),
}
_RUNS: dict[str, SuiteRun] = {}

TRAINING_FIELDS = (
    "train_time_s", "epochs_run", "steps_run", "grad_evals", "final_accuracy", "best_accuracy",
    "final_loss", "diverged", "target_accuracy", "seed",
)


@pytest.fixture
def run(optim_entry_point, optbench_run):
    """``run(key)``: that suite's run, made by the first test that asks for it (the
    ``optim_entry_point`` fixture, in conftest.py, makes sure the plugin is there)."""

    def get(key: str) -> SuiteRun:
        if key not in _RUNS:
            result = optbench_run(SUITES[key])
            _RUNS[key] = result
        return _RUNS[key]

    return get


def main_points(run: SuiteRun, record: dict) -> list[dict]:
    return run.curves(record)["main"]["points"]


def only(run: SuiteRun, method: str, model: str | None = None) -> dict:
    (record,) = [r for r in run.by_method(method) if model is None or r["model"] == model]
    return record


def test_every_method_trains_logreg_on_digits(run):
    digits = run("digits")
    assert digits.exit_code == 0
    trained = [r for r in digits.records if r["method"] != "baseline"]
    assert sorted({r["method"] for r in trained}) == sorted(name for name, *_ in plugin.METHODS)
    assert len(trained) == 6 + len(SGD_GRID)
    for r in trained:
        name = f"{r['method']} {r['params']}"
        assert r["status"] == "ok", name
        assert all(r[k] is not None for k in TRAINING_FIELDS), name
        assert r["epochs_run"] == 2 and r["steps_run"] == 2 * 22, name  # ceil(1347 / 64) steps an epoch
        assert r["grad_evals"] >= r["steps_run"] and not r["diverged"], name
        assert r["final_accuracy"] > 0.3, name  # chance is 0.1
        assert r["best_accuracy"] >= r["final_accuracy"], name
        points = main_points(digits, r)
        assert [p["epoch"] for p in points] == [0, 1, 2], name
        assert [p["step"] for p in points] == [0, 22, 44], name
        elapsed = [p["elapsed_s"] for p in points]
        assert elapsed[0] == 0.0 and elapsed == sorted(elapsed), name
        assert elapsed[-1] == pytest.approx(r["train_time_s"]), name
        assert points[-1]["test_accuracy"] == r["final_accuracy"], name
        if r["steps_to_target"] is not None:
            assert r["final_accuracy"] >= 0.8 or r["best_accuracy"] >= 0.8, name
            assert r["steps_to_target"] in (22, 44), name
    # the ones that are good at this in two epochs (measured: 0.918, 0.953, 0.864, 0.916)
    for method, params in [("optim.lbfgs", {}), ("optim.newton", {}), ("optim.adamw", {}),
                           ("optim.sgd", {"lr": 0.1})]:
        (r,) = [r for r in trained if r["method"] == method and params.items() <= r["params"].items()]
        assert r["final_accuracy"] > 0.8 and r["steps_to_target"] is not None, method
    # closure-based: L-BFGS's line search evaluates the loss more than once a step
    assert only(digits, "optim.lbfgs")["grad_evals"] > only(digits, "optim.lbfgs")["steps_run"]
    assert only(digits, "optim.adamw")["params"]["schedule"] == "cosine"


def test_an_lr_log_grid_expands_into_one_cell_per_lr(run):
    cells = run("digits").by_method("optim.sgd")
    assert sorted(r["params"]["lr"] for r in cells) == SGD_GRID
    assert all(r["search_params"] == ["lr"] for r in cells)
    assert all(r["params"]["momentum"] == 0.9 and r["params"]["nesterov"] for r in cells)
    assert len({r["cell_id"] for r in cells}) == len(SGD_GRID)
    others = [r for r in run("digits").records if r["method"] not in ("optim.sgd", "baseline")]
    assert all(r["search_params"] == [] for r in others)


def test_lbfgs_reaches_the_quadratic_floor_in_far_fewer_steps_than_sgd(run):
    quad = run("quadratic")
    assert quad.exit_code == 0
    sgd, lbfgs = only(quad, "optim.sgd"), only(quad, "optim.lbfgs")
    for r in (sgd, lbfgs):
        assert r["status"] == "ok" and not r["diverged"]
        assert r["final_accuracy"] is None  # a loss problem: no accuracy
        assert r["target_loss"] == pytest.approx(r["loss_floor"] * 1.01)
        assert r["final_objective"] <= r["target_loss"]
        assert r["steps_to_target"] == r["epochs_to_target"]  # one full batch an epoch
        objectives = [p["objective"] for p in main_points(quad, r)]
        assert objectives[0] > 1.5 * r["loss_floor"]  # theta = 1 starts far from the floor
    # measured: L-BFGS 8 steps, SGD at lr 0.02 100 steps (67 at 0.03, 200 at 0.01)
    assert lbfgs["steps_to_target"] <= 12
    assert sgd["steps_to_target"] >= 60
    assert sgd["steps_to_target"] >= 5 * lbfgs["steps_to_target"]
    assert lbfgs["grad_evals"] > lbfgs["steps_run"] == sgd["steps_run"] == sgd["grad_evals"] == 110


def test_newton_reaches_the_quadratic_floor_in_one_step(run):
    newton = only(run("newton"), "optim.newton", "theta")
    assert newton["status"] == "ok"
    assert newton["steps_to_target"] is not None and newton["steps_to_target"] <= 2
    assert newton["steps_to_target"] == 1  # measured: Q is constant, so one exact step lands on the minimum
    assert newton["final_objective"] == pytest.approx(newton["loss_floor"], rel=1e-5)
    assert newton["grad_evals"] == newton["steps_run"] == 2


def test_newton_refuses_a_model_above_its_parameter_limit(run):
    mlp = only(run("newton"), "optim.newton", "mlp")
    count = 64 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10  # the digits mlp, 64-128-128-10
    assert mlp["status"] == "skipped"
    assert f"{count:,} trainable parameters" in mlp["error"]
    assert "max_params=5,000" in mlp["error"] and "n^2" in mlp["error"]
    assert only(run("newton"), "baseline", "mlp")["status"] == "ok"


def test_the_same_cell_run_twice_gives_the_same_curve_and_figures(run):
    first, again = only(run("digits"), "optim.lbfgs"), only(run("rerun"), "optim.lbfgs")
    assert first["cell_id"] == again["cell_id"]

    def without_clock(points: list[dict]) -> list[dict]:
        return [{k: v for k, v in p.items() if k != "elapsed_s"} for p in points]

    assert without_clock(main_points(run("digits"), first)) == without_clock(main_points(run("rerun"), again))
    figures = ("epochs_run", "steps_run", "grad_evals", "final_accuracy", "best_accuracy", "final_loss",
               "epochs_to_target", "steps_to_target", "diverged", "accuracy")
    assert {k: first[k] for k in figures} == {k: again[k] for k in figures}
