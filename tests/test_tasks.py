"""Tasks other than classification, through the real CLI: the worked examples of docs/tasks.md run as written
(regression, multi-label, segmentation, with the task's metrics, a torchmetrics class, a user's metrics and
gates on a metric), and a suite's metric mistakes are validation errors."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "tasks.md"
FILE_BLOCK = re.compile(r"^`([\w.-]+\.(?:py|yaml))`\n```(?:python|yaml)\n(.*?)^```", re.S | re.M)


def _examples(folder: Path) -> Path:
    files = dict(FILE_BLOCK.findall(PAGE.read_text()))
    assert {"data.py", "metrics.py", "model.py", "regression.yaml", "multilabel.yaml", "segmentation.yaml",
            "detection_data.py", "detector.py", "detection.yaml", "embedder.py", "embeddings.yaml"} <= set(files)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _run(cli, folder: Path, suite: str, cache: Path) -> tuple[dict[tuple, dict], str]:
    done = cli("run", suite, "--results", str(folder / "results"), cwd=folder, timeout=600,
                   env={"OPTBENCH_CACHE_DIR": str(cache)})
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(line) for line in _latest(folder, suite).read_text().splitlines()]
    by_method = {(r["method"], r["params"].get("sparsity")): r for r in records}
    return by_method, done.stdout


def _latest(folder: Path, suite: str) -> Path:
    name = re.search(r"^name: (\S+)", (folder / suite).read_text(), re.M).group(1)
    return sorted((folder / "results" / name).glob("*/records.jsonl"))[-1]


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return _examples(tmp_path_factory.mktemp("tasks")), tmp_path_factory.mktemp("tasks-cache")


def test_regression_is_scored_by_its_errors_and_a_users_metrics(examples, cli, optbench_runs_suites):
    folder, cache = examples
    r, out = _run(cli, folder, "regression.yaml", cache)
    base, int8, pruned = r[("baseline", None)], r[("quantize.dynamic_int8", None)], r[("prune.magnitude", 0.9)]
    assert base["task"] == "regression" and base["quality_metric"] == "rmse"
    assert base["quality_higher_is_better"] is False
    assert list(base["metrics"]) == ["rmse", "r2", "pearson", "within_20pct", "max_error"]
    assert set(base["lower_is_better"]) == {"rmse", "max_error"}  # the class says so; the function is a share
    assert 40 < base["metrics"]["rmse"] < 70 and 0.3 < base["metrics"]["r2"] < 0.7  # docs: 54.1 and 0.484
    assert base["accuracy"] is None  # a regressor has no accuracy, not a zero one
    # int8 keeps the error; 90% pruning more than doubles it: a rise of an error fails the 5% gate
    assert int8["passes_gate"] is True and abs(int8["quality_delta"]) < 1
    assert pruned["quality_delta"] > 50 and pruned["passes_gate"] is False
    assert pruned["metrics_delta"]["r2"] < -1
    assert pruned["rel_err"] > 0.5 and pruned["cosine"] is None  # one value per input: no cosine
    assert re.search(r"rmse \+\d+ .*fails gate", out)  # the error rose: its row says by how much, and fails


def test_multilabel_is_scored_by_f1_both_ways_and_map(examples, cli, optbench_runs_suites):
    folder, cache = examples
    r, _ = _run(cli, folder, "multilabel.yaml", cache)
    base, int8, pruned = r[("baseline", None)], r[("quantize.dynamic_int8", None)], r[("prune.magnitude", 0.9)]
    assert base["task"] == "multilabel" and list(base["metrics"]) == ["f1", "f1_macro", "average_precision"]
    assert base["metrics"]["f1"] > 0.85 and base["metrics"]["average_precision"] > 0.9  # docs: 0.940, 0.990
    assert int8["agreement"] > 0.99 and int8["passes_gate"] is True
    assert pruned["metrics"]["f1"] < base["metrics"]["f1"] - 0.05 and pruned["passes_gate"] is False


def test_segmentation_is_scored_by_miou_and_gated_on_it(examples, cli, optbench_runs_suites):
    folder, cache = examples
    r, _ = _run(cli, folder, "segmentation.yaml", cache)
    base, int8 = r[("baseline", None)], r[("quantize.static_int8", None)]
    half, pruned = r[("prune.magnitude", 0.5)], r[("prune.magnitude", 0.9)]
    assert base["task"] == "segmentation" and list(base["metrics"]) == ["miou", "pixel_accuracy"]
    assert base["metrics"]["miou"] > 0.6 and base["metrics"]["pixel_accuracy"] > 0.95  # docs: 0.782, 0.989
    assert int8["status"] == "ok" and int8["agreement"] > 0.98 and int8["passes_gate"] is True
    # mIoU falls while pixel accuracy barely moves: the gate judges the metric it names
    assert pruned["metrics_delta"]["miou"] < -0.1 and pruned["metrics_delta"]["pixel_accuracy"] > -0.1
    assert pruned["passes_gate"] is False and half["metrics"]["miou"] >= pruned["metrics"]["miou"]


def test_a_detector_is_trained_on_its_boxes_and_scored_by_map_and_against_the_baselines_boxes(
        examples, cli, optbench_runs_suites):
    folder, cache = examples
    r, out = _run(cli, folder, "detection.yaml", cache)
    base, int8 = r[("baseline", None)], r[("quantize.dynamic_int8", None)]
    half, pruned = r[("prune.magnitude", 0.5)], r[("prune.magnitude", 0.9)]
    assert base["task"] == "detection" and list(base["metrics"]) == ["map", "map_50"]
    assert base["metrics"]["map"] > 0.3 and base["metrics"]["map_50"] > base["metrics"]["map"]  # docs: 0.500, 0.730
    assert base["map_vs_baseline"] == 1.0
    assert int8["map_vs_baseline"] > 0.9 and abs(int8["quality_delta"]) < 0.02 and int8["passes_gate"] is True
    assert pruned["metrics"]["map"] < half["metrics"]["map"] < base["metrics"]["map"]
    assert pruned["map_vs_baseline"] < half["map_vs_baseline"] < int8["map_vs_baseline"]
    assert pruned["passes_gate"] is False and re.search(r"map -0\.\d+ .*fails gate", out)


def test_an_embedding_model_is_scored_by_a_linear_probe(examples, cli, optbench_runs_suites):
    folder, cache = examples
    r, _ = _run(cli, folder, "embeddings.yaml", cache)
    base, int8, pruned = r[("baseline", None)], r[("quantize.dynamic_int8", None)], r[("prune.magnitude", 0.95)]
    assert base["task"] == "classification" and base["accuracy"] is None  # no class scores: no accuracy...
    assert base["quality_metric"] == "linear_probe" and base["quality"] > 0.8  # ...but a probe's (docs: 0.880)
    assert abs(int8["quality_delta"]) < 0.01 and int8["cosine"] > 0.999
    assert pruned["quality_delta"] < -0.02 and pruned["cosine"] < 0.9


SUITE = """name: t
datasets:
  - name: digits
    metrics: {metrics}
models: [{{name: logreg}}]
methods: [{{name: prune.magnitude}}]
{gate}
"""


def _validate(cli, tmp_path: Path, metrics: str, gate: str = "") -> str:
    (tmp_path / "s.yaml").write_text(SUITE.format(metrics=metrics, gate=gate))
    done = cli("validate", "s.yaml", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stdout + done.stderr
    return done.stderr


def test_an_unknown_metric_is_a_validation_error_with_a_suggestion(cli, tmp_path):
    err = _validate(cli, tmp_path, "[rmsee]")
    assert "s.yaml" in err and "datasets[0].metrics[0].name" in err and "unknown metric 'rmsee'" in err
    assert "rmse" in err


def test_a_torchmetrics_path_that_is_no_class_is_a_validation_error(cli, tmp_path):
    pytest.importorskip("torchmetrics")
    err = _validate(cli, tmp_path, "[torchmetrics.regression.PearsonCorr]")
    assert "torchmetrics.regression has no class PearsonCorr" in err


def test_a_bad_metric_param_and_a_duplicate_id_are_validation_errors(cli, tmp_path):
    err = _validate(cli, tmp_path, "[{name: f1, params: {average: weighted}}, rmse, rmse]")
    assert "datasets[0].metrics[0].params.average" in err
    assert "two metrics of this dataset are named 'rmse'" in err


def test_a_gate_on_a_metric_the_dataset_is_not_scored_by_is_a_validation_error(cli, tmp_path):
    err = _validate(cli, tmp_path, "[accuracy]", gate="accuracy_gate: {metric: rmse, relative: 0.05}")
    assert "accuracy_gate.metric" in err and "not scored by 'rmse'" in err and "its metrics are accuracy" in err


def test_a_users_metric_file_that_does_not_load_is_a_validation_error(cli, tmp_path):
    (tmp_path / "m.py").write_text("def score(predictions, targets):\n    return 1.0\n")
    err = _validate(cli, tmp_path, '["m.py:scor"]')
    assert "cannot load metric" in err and "m.py" in err
