"""Training-time methods in the core: the shared loop, the suite keys, and training cells end to end.

The loop is tested directly on real data (digits, the quadratic problem); the cells run
through the real runner with ``test.sgd`` from optbench_test_plugins, so these tests do
not depend on the first-party optimizer distribution.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from harness.builtin.datasets import (
    DigitsParams,
    QuadraticParams,
    load_digits,
    load_quadratic,
)
from harness.builtin.models import MLPParams, ThetaParams, build_mlp, build_theta
from harness.cli import main
from harness.errors import SuiteError
from harness.registry.manager import PluginManager
from harness.suite.loader import parse_suite
from harness.suite.matrix import build_matrix
from harness.suite.schema import Train
from harness.train.fit import Closure, fit, labelled_subset


@pytest.fixture(scope="module")
def digits():
    return load_digits(DigitsParams(), 0)


def mlp(data, seed=0):
    torch.manual_seed(seed)
    return build_mlp(MLPParams(hidden=[32]), data)


def sgd(lr):
    return lambda ps: torch.optim.SGD(ps, lr=lr)


def strip_time(curve):
    return [{k: v for k, v in p.items() if k != "elapsed_s"} for p in curve]


# --- the loop -----------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_curve_and_another_seed_does_not(digits):
    budget = Train(epochs=2, batch_size=64)
    a = fit(mlp(digits), digits, budget, seed=0, log=lambda m: None)
    b = fit(mlp(digits), digits, budget, seed=0, log=lambda m: None)
    c = fit(mlp(digits), digits, budget, seed=1, log=lambda m: None)
    assert strip_time(a.curve) == strip_time(b.curve)
    assert strip_time(a.curve) != strip_time(c.curve)


def test_curve_has_an_untrained_point_then_one_per_eval_and_the_last_epoch(digits):
    r = fit(mlp(digits), digits, Train(epochs=5, eval_every=2), seed=0, log=lambda m: None)
    assert [p["epoch"] for p in r.curve] == [0, 2, 4, 5]
    assert r.curve[0]["elapsed_s"] == 0 and r.curve[0]["train_loss"] is None
    assert [p["step"] for p in r.curve] == [0, 44, 88, 110]  # ceil(1347 / 64) = 22 steps per epoch
    times = [p["elapsed_s"] for p in r.curve]
    assert times == sorted(times) and r.train_time_s == pytest.approx(times[-1])
    assert r.final_accuracy == r.curve[-1]["test_accuracy"] > 0.5
    assert r.best_accuracy == max(p["test_accuracy"] for p in r.curve)


def test_evaluation_is_off_the_clock(digits, monkeypatch):
    """However long an evaluation takes, it is not training time (AlgoPerf's rule)."""
    import time

    import harness.train.fit as fit_module

    class Clock:  # real time plus 1000 s for every evaluation
        offset = 0.0

        @staticmethod
        def perf_counter():
            return time.perf_counter() + Clock.offset

    real = fit_module.evaluate

    def slow(*args, **kwargs):
        Clock.offset += 1000.0
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "time", Clock)
    monkeypatch.setattr(fit_module, "evaluate", slow)
    r = fit(mlp(digits), digits, Train(epochs=3), seed=0, log=lambda m: None)
    assert Clock.offset == 4000.0  # before training and after each of the 3 epochs
    assert 0 < r.train_time_s < 1000


def test_time_to_target_is_the_first_evaluation_that_reaches_it(digits):
    r = fit(mlp(digits), digits, Train(epochs=6, target_accuracy=0.8), seed=0, log=lambda m: None)
    first = next(p for p in r.curve if p["test_accuracy"] >= 0.8)
    assert (r.epochs_to_target, r.steps_to_target, r.time_to_target_s) == (first["epoch"], first["step"], first["elapsed_s"])
    never = fit(mlp(digits), digits, Train(epochs=1, target_accuracy=1.0), seed=0, log=lambda m: None)
    assert never.time_to_target_s is None and never.epochs_to_target is None


def test_fewer_labels_keep_the_number_of_steps(digits):
    budget = Train(epochs=2)
    full = fit(mlp(digits), digits, budget, seed=0, log=lambda m: None)
    few = fit(mlp(digits), digits, budget, seed=0, labels_fraction=0.1, log=lambda m: None)
    assert few.steps_run == full.steps_run == 44
    assert few.labelled == pytest.approx(0.1 * 1347, abs=10)
    subset = labelled_subset(digits.y_train, 0.1, 0)
    assert set(digits.y_train[subset].tolist()) == set(range(10))  # stratified: every class kept
    assert torch.equal(subset, labelled_subset(digits.y_train, 0.1, 0))


def test_keep_unlabelled_hides_labels_as_minus_one(digits):
    seen = []

    def loss(model, x, y):
        seen.append(y.clone())
        out = model(x)
        mask = y >= 0
        return torch.nn.functional.cross_entropy(out[mask], y[mask]) if mask.any() else out.sum() * 0

    fit(mlp(digits), digits, Train(epochs=1), seed=0, loss=loss, labels_fraction=0.1, keep_unlabelled=True,
        log=lambda m: None)
    ys = torch.cat(seen)
    assert ys.numel() == 1347  # every input is used
    assert (ys >= 0).sum() == labelled_subset(digits.y_train, 0.1, 0).numel()


def test_a_loss_that_blows_up_stops_the_run_and_is_marked_diverged():
    q = load_quadratic(QuadraticParams(), 0)  # SGD at lr 1 on eigenvalues up to 60 grows without bound
    logs = []
    r = fit(build_theta(ThetaParams(), q), q, Train(epochs=500, batch_size=1000), seed=0, optimizer=sgd(1.0),
            log=logs.append)
    assert r.diverged and r.epochs_run < 500
    assert any("diverged" in m for m in logs)
    json.dumps(r.curve, allow_nan=False)  # no NaN reaches the curve


@pytest.mark.parametrize("schedule, end", [("none", 1.0), ("cosine", 0.0), ("step", 0.01)])
def test_schedules_scale_the_learning_rate(digits, schedule, end):
    holder = {}

    def make(ps):
        holder["opt"] = torch.optim.SGD(ps, lr=0.5)
        return holder["opt"]

    fit(mlp(digits), digits, Train(epochs=2), seed=0, optimizer=make, schedule=schedule, log=lambda m: None)
    assert holder["opt"].param_groups[0]["lr"] == pytest.approx(0.5 * end, abs=1e-9)


def test_quadratic_floor_is_the_objective_at_the_training_mean():
    q = load_quadratic(QuadraticParams(), 0)
    assert q.metric == "loss" and q.y_train is None and q.trainable
    theta = build_theta(ThetaParams(), q)
    with torch.no_grad():
        theta.theta.copy_(q.x_train.double().mean(0).float())
        at_mean = float(q.loss(theta(q.x_train), q.x_train, None))
        theta.theta.add_(0.1)
        moved = float(q.loss(theta(q.x_train), q.x_train, None))
    assert at_mean == pytest.approx(q.loss_floor, rel=1e-5)
    assert moved > q.loss_floor
    other_seed = load_quadratic(QuadraticParams(), 1)
    assert other_seed.loss_floor != q.loss_floor  # same Hessian, other noise samples


def test_loss_problems_target_one_percent_above_the_floor():
    q = load_quadratic(QuadraticParams(), 0)
    r = fit(build_theta(ThetaParams(), q), q, Train(epochs=100, batch_size=1000), seed=0, optimizer=sgd(0.03),
            log=lambda m: None)
    assert r.metric == "loss" and r.final_accuracy is None
    assert r.target_loss == pytest.approx(q.loss_floor * 1.01)
    assert r.steps_to_target is not None
    hit = next(p for p in r.curve if p["objective"] <= r.target_loss)
    assert hit["step"] == r.steps_to_target


def test_closure_gives_the_loss_as_a_function_of_a_flat_vector(digits):
    model = mlp(digits)
    x, y = digits.x_train[:32], digits.y_train[:32]
    params = list(model.parameters())
    closure = Closure(model, lambda m, xb, yb: digits.loss(m(xb), xb, yb), x, y, params)
    loss = closure()
    flat = torch.cat([p.detach().flatten() for p in params])
    assert float(closure.loss_of(params)(flat).detach()) == pytest.approx(float(loss.detach()), rel=1e-6)
    grad = torch.autograd.functional.jacobian(closure.loss_of(params), flat)
    assert torch.allclose(grad, torch.cat([p.grad.flatten() for p in params]), atol=1e-6)
    assert closure.evals == 1
    with pytest.raises(ValueError, match="only the model's own parameters"):
        closure.loss_of([torch.zeros(3, requires_grad=True)])


# --- the suite ----------------------------------------------------------------------------

TRAINING = """\
name: t
seeds: [0, 1]
datasets: [digits]
models:
  - name: mlp
    train: {epochs: 4}
methods:
  - name: test.sgd
    params: {lr: {log_grid: [1.0e-3, 1.0], points: 4}}
  - name: prune.magnitude
    params: {sparsity: 0.5}
train: {epochs: 2, batch_size: 32, target_accuracy: 0.9}
"""


def expand(text):
    suite, lines = parse_suite(text, "s.yaml")
    return build_matrix(suite, PluginManager.load().registry, file="s.yaml", lines=lines)


def test_log_grid_and_seeds_expand_into_cells_with_their_budget(misbehaving):
    cells = expand(TRAINING)
    assert len(cells) == 2 * (1 + 4 + 1)
    sgd_cells = [c for c in cells if c.method.name == "test.sgd"]
    assert sorted({c.method.params["lr"] for c in sgd_cells}) == [0.001, 0.01, 0.1, 1.0]
    assert {c.seed for c in sgd_cells} == {0, 1}
    assert all(c.method.search == ("lr",) for c in sgd_cells)
    # the model's own train block overrides the suite's epochs and inherits the rest
    assert sgd_cells[0].train == Train(epochs=4, batch_size=32, target_accuracy=0.9).model_dump(mode="json")
    assert all(c.train is None for c in cells if c.method.name != "test.sgd")  # compression cells have no budget
    assert len({c.cell_id for c in cells}) == len(cells)
    longer = expand(TRAINING.replace("train: {epochs: 4}", "train: {epochs: 5}"))
    changed = {c.cell_id for c in longer} ^ {c.cell_id for c in cells}
    assert len(changed) == 2 * 2 * 4  # only the training cells depend on the budget


@pytest.mark.parametrize("bad, message", [
    ("{log_grid: [1.0, 1.0e-3], points: 4}", "invalid log-grid search"),
    ("{log_grid: [0, 1.0]}", "invalid log-grid search"),
    ("{log_grid: [1.0e-3, 1.0], points: 1}", "invalid log-grid search"),
    ("{grid: []}", "a grid search is"),
])
def test_a_bad_search_is_located(misbehaving, capsys, write_suite, bad, message):
    path = write_suite(TRAINING.replace("{log_grid: [1.0e-3, 1.0], points: 4}", bad))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "suite.yaml:9 at methods[0].params.lr" in err


def test_seed_and_seeds_together_is_an_error(capsys, write_suite):
    path = write_suite(TRAINING.replace("seeds: [0, 1]", "seed: 3\nseeds: [0, 1]"))
    assert main(["validate", str(path)]) == 2
    assert "give `seed` (one) or `seeds` (a list), not both" in capsys.readouterr().err


def test_a_training_method_must_come_first_in_a_pipeline(misbehaving):
    text = TRAINING.replace("  - name: test.sgd\n    params: {lr: {log_grid: [1.0e-3, 1.0], points: 4}}\n",
                            "  - pipeline: [prune.magnitude, test.sgd]\n")
    with pytest.raises(SuiteError, match="can only be the first step of a pipeline"):
        expand(text)
    ok = expand(TRAINING.replace("  - name: test.sgd\n    params: {lr: {log_grid: [1.0e-3, 1.0], points: 4}}\n",
                                 "  - pipeline: [test.sgd, quantize.dynamic_int8]\n"))
    assert all(c.train is not None for c in ok if c.method.kind == "pipeline")


# --- end to end ---------------------------------------------------------------------------


def test_training_cells_record_the_training_figures_and_a_curve(misbehaving, optbench_run, tiny_suite):
    suite = tiny_suite("test.sgd", {"lr": 0.5, "schedule": "cosine"}, model_params={"hidden": [32], "epochs": 2},
                       train={"epochs": 3, "target_accuracy": 0.5}, seeds=[0, 1])
    run = optbench_run(suite)
    assert run.exit_code == 0
    trained = run.by_method("test.sgd")
    assert sorted(r["seed"] for r in trained) == [0, 1]
    for r in trained:
        assert r["status"] == "ok" and r["method_kind"] == "optimizer"
        assert r["epochs_run"] == 3 and r["steps_run"] == 66 and r["grad_evals"] == 66
        assert r["train_time_s"] > 0 and r["diverged"] is False
        assert r["final_accuracy"] == pytest.approx(r["accuracy"]) and r["final_accuracy"] > 0.3
        assert r["time_to_target_s"] is not None and r["epochs_to_target"] <= 3
        assert r["train"]["epochs"] == 3 and r["latency_p50_ms"] > 0  # still measured like any model
        curve = run.curves(r)["main"]
        assert [p["epoch"] for p in curve["points"]] == [0, 1, 2, 3]
        assert curve["metric"] == "accuracy" and curve["target_accuracy"] == 0.5
    baselines = run.by_method("baseline")
    assert all(b["train_time_s"] is None for b in baselines)  # the baseline is not a training cell
    # relative figures pair each record with the baseline of its own seed
    assert {(r["seed"], r["accuracy_delta"] is not None) for r in trained} == {(0, True), (1, True)}


def test_identical_training_cells_give_identical_results(misbehaving, optbench_run, tiny_suite):
    suite = tiny_suite("test.sgd", {"lr": 0.1}, model_params={"hidden": [32], "epochs": 1}, train={"epochs": 2})
    first, second = optbench_run(suite), optbench_run(suite)
    (a,), (b,) = first.by_method("test.sgd"), second.by_method("test.sgd")
    assert a["cell_id"] == b["cell_id"]
    for key in ("final_accuracy", "final_loss", "best_accuracy", "steps_run", "accuracy", "nonzero_params"):
        assert a[key] == b[key], key
    assert strip_time(first.curves(a)["main"]["points"]) == strip_time(second.curves(b)["main"]["points"])


def test_a_training_method_that_never_trains_fails_and_data_without_labels_skips(misbehaving, optbench_run, tiny_suite):
    run = optbench_run(tiny_suite("test.forgets", train={"epochs": 1}))
    (r,) = run.by_method("test.forgets")
    assert r["status"] == "failed" and "must call ctx.fit" in r["error"]
    suite = tiny_suite("test.sgd", train={"epochs": 1}, dataset="synthetic")
    suite["datasets"] = [{"name": "synthetic", "params": {"shape": [1, 8, 8]}}]
    (s,) = optbench_run(suite).by_method("test.sgd")
    assert s["status"] == "skipped" and "no labels or objective" in s["error"]


def test_quadratic_problem_through_a_suite(misbehaving, optbench_run, tiny_suite):
    suite = tiny_suite("test.sgd", {"lr": 0.03}, model="theta", model_params={}, dataset="quadratic",
                       train={"epochs": 150, "batch_size": 1000, "eval_every": 5})
    run = optbench_run(suite)
    (r,) = run.by_method("test.sgd")
    assert r["status"] == "ok" and r["accuracy"] is None and r["final_accuracy"] is None
    assert r["loss_floor"] > 0 and r["target_loss"] == pytest.approx(1.01 * r["loss_floor"])
    assert r["final_objective"] < r["target_loss"] and r["steps_to_target"] % 5 == 0
    assert math.isfinite(r["final_loss"])


def test_a_method_can_be_limited_to_some_models(misbehaving, capsys, write_suite):
    text = TRAINING.replace("  - name: mlp\n    train: {epochs: 4}\n",
                            "  - name: mlp\n    train: {epochs: 4}\n  - {name: logreg}\n")
    limited = text.replace("params: {sparsity: 0.5}", "params: {sparsity: 0.5}\n    models: [logreg]")
    cells = expand(limited)
    pruned = [c for c in cells if c.method.name == "prune.magnitude"]
    assert {c.model.id for c in pruned} == {"logreg"} and len(pruned) == 2  # one per seed
    assert {c.model.id for c in cells if c.method.name == "test.sgd"} == {"mlp", "logreg"}
    path = write_suite(text.replace("params: {sparsity: 0.5}", "params: {sparsity: 0.5}\n    models: [logregg]"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "methods[1].models[0]: no model with id 'logregg' in this suite" in err and "did you mean 'logreg'" in err


def test_accuracy_of_another_task_is_not_compared_with_the_baseline():
    from harness.results.records import add_relative_figures
    from harness.suite.schema import AccuracyGate

    base = {"status": "ok", "accuracy": 0.97, "latency_p50_ms": 1.0, "model_bytes": 10}
    moved = {"status": "ok", "accuracy": 0.80, "latency_p50_ms": 1.0, "model_bytes": 10, "task_changed": True}
    add_relative_figures(moved, base, AccuracyGate(relative=0.01))
    assert moved["accuracy_delta"] is None and moved["passes_gate"] is None and moved["speedup"] == 1.0
