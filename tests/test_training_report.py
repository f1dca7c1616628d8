"""Seeds aggregated, searched hyperparameters tuned, and the report's training section."""
from __future__ import annotations

import json
import re

import pytest

from harness.report.run_report import render_report
from harness.results.seeds import configurations, mean_curve, tuned
from harness.testing import make_record


def rec(method, lr, seed, acc, *, loss=0.5, diverged=False, status="ok", ttt=1.0, model="mlp", **extra):
    """A training cell's record: an optimizer at ``lr`` on one seed."""
    return make_record(**{
        "cell_id": f"{method}-{lr}-{seed}-{model}", "model": model, "method": method, "method_kind": "optimizer",
        "params": {"lr": lr, "momentum": 0.0}, "search_params": ["lr"], "train": {"epochs": 2}, "seed": seed,
        "status": status, "final_accuracy": acc, "best_accuracy": acc, "final_loss": loss, "diverged": diverged,
        "time_to_target_s": ttt, "target_accuracy": 0.9, "train_time_s": 2.0, "latency_p50_ms": 0.1, "accuracy": acc,
        **extra})


def test_seeds_are_aggregated_and_the_best_mean_wins():
    records = [rec("optim.sgd", 0.1, s, a) for s, a in ((0, 0.90), (1, 0.92), (2, 0.94))]
    records += [rec("optim.sgd", 1.0, s, a) for s, a in ((0, 0.99), (1, 0.80), (2, 0.81))]  # one lucky seed
    records += [rec("optim.sgd", 0.1, 0, 0.90) | {"batch_size": 64}]  # another batch size of the same cell
    configs = configurations(records)
    assert len(configs) == 2 and all(len(c.records) == 3 for c in configs)
    ((best, candidates),) = tuned(configs)
    assert best.params["lr"] == 0.1 and len(candidates) == 2
    stat = best.stat("final_accuracy")
    assert stat.mean == pytest.approx(0.92) and stat.std == pytest.approx(0.02)


def test_a_diverged_or_failed_value_is_never_chosen_over_a_sound_one():
    records = [rec("optim.sgd", 0.01, s, 0.5) for s in (0, 1)]
    records += [rec("optim.sgd", 1.0, 0, 0.97), rec("optim.sgd", 1.0, 1, 0.1, diverged=True)]
    records += [rec("optim.sgd", 0.5, 0, 0.98), rec("optim.sgd", 0.5, 1, None, status="failed")]
    ((best, _),) = tuned(configurations(records))
    assert best.params["lr"] == 0.01


def test_loss_problems_pick_the_lowest_held_out_loss():
    records = [rec("optim.adam", lr, s, None, loss=loss, model="theta")
               for lr, loss in ((0.1, 260.0), (0.01, 256.0)) for s in (0, 1)]
    ((best, _),) = tuned(configurations(records))
    assert best.metric == "loss" and best.params["lr"] == 0.01


def test_unsearched_params_are_separate_methods():
    records = [rec("optim.sgd", 0.1, 0, 0.9) | {"params": {"lr": 0.1, "momentum": m}} for m in (0.0, 0.9)]
    for r, m in zip(records, (0.0, 0.9)):
        r["cell_id"] = f"c{m}"
    assert len(tuned(configurations(records))) == 2


def test_mean_curve_keeps_the_evaluations_every_seed_has():
    a = [{"epoch": e, "elapsed_s": e * 1.0, "test_accuracy": 0.1 * e} for e in range(4)]
    b = [{"epoch": e, "elapsed_s": e * 3.0, "test_accuracy": 0.1 * e + 0.2} for e in range(3)]  # stopped early
    pts = mean_curve([a, b], "test_accuracy")
    assert [p["epoch"] for p in pts] == [0, 1, 2]
    assert pts[2]["elapsed_s"] == pytest.approx(4.0) and pts[2]["value"] == pytest.approx(0.3)


def test_report_has_a_training_section_with_curves_and_escaped_names():
    evil = "</script><script>alert(1)</script>"
    records = [rec("optim.sgd", lr, s, 0.9 + 0.01 * s, model=evil) for lr in (0.1, 1.0) for s in (0, 1)]
    curves = {r["cell_id"]: {"main": {"points": [
        {"epoch": 0, "elapsed_s": 0.0, "test_accuracy": 0.1}, {"epoch": 1, "elapsed_s": 0.5, "test_accuracy": 0.8},
        {"epoch": 2, "elapsed_s": 1.0, "test_accuracy": r["final_accuracy"]}]}} for r in records}
    page = render_report(records, {}, curves)
    assert "<h2>Training</h2>" in page
    section = page.split("<h2>Training</h2>", 1)[1]
    outside = re.sub(r'<script type="application/json".*?</script>', "", section, flags=re.S)
    assert "<script>alert(1)" not in outside and "&lt;/script&gt;" in outside  # the model name is text
    figures = re.findall(r'<script type="application/json" data-figure="(plot-\d+)">(.*?)</script>', section, re.S)
    assert len(figures) == 3  # accuracy vs time, vs epoch, time-to-target bars
    vs_time = json.loads(figures[0][1])
    (trace,) = vs_time["data"]
    assert trace["x"] == [0.0, 0.5, 1.0] and trace["y"][-1] == pytest.approx(0.905)
    assert "lr=0.1" in trace["name"]  # the tuned value is named
    assert "0.9050 ± 0.0071" in section


def test_malformed_curve_files_are_left_out_and_the_report_still_renders(tmp_path):
    """curve.json is read back from the run folder, where a crashed writer, a hand edit or another
    tool may have left anything: what is not a curve is dropped, the rest is drawn."""
    from harness.report.training import load_curves

    records = [rec("optim.sgd", 0.1, s, 0.9) for s in range(6)]
    good = {"main": {"points": [{"epoch": 0, "elapsed_s": 0.0, "test_accuracy": 0.2},
                                {"epoch": 1, "elapsed_s": 0.5, "test_accuracy": 0.9}]}}
    contents = [json.dumps(good), "[1, 2, 3]", '{"main": [1, 2]}', '{"main": {"points": [[0], {"epoch": [1]}, 3]}}',
                '{"main": {"points": "many", "loss_floor": "low"}, "reference": null}', "{not json"]
    for r, text in zip(records, contents, strict=True):
        (tmp_path / "cells" / r["cell_id"]).mkdir(parents=True)
        (tmp_path / "cells" / r["cell_id"] / "curve.json").write_text(text)
    curves = load_curves(tmp_path, records)
    assert curves[records[0]["cell_id"]] == good
    assert curves[records[3]["cell_id"]] == {"main": {"points": []}}  # the points without a numeric epoch dropped
    assert set(curves) == {records[0]["cell_id"], records[3]["cell_id"]}
    page = render_report(records, {}, curves)
    assert "<h2>Training</h2>" in page
