"""``harness.results.load.load`` and ``optbench export``: a real run read back as a DataFrame, csv, parquet, markdown."""
from __future__ import annotations

import argparse
import io
import json
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.errors import OptbenchError
from harness.record.schema import CORE_SCHEMA
from harness.results.export import cmd_export
from harness.results.load import find_runs, load, machine_label, read_env
from harness.results.records import (
    RECORDS_FILE,
    append_records,
    fill_relative_figures,
    read_records,
)
from harness.testing import run_suite_file

REPO = Path(__file__).resolve().parents[1]
SUITE = """\
name: tiny-export
datasets: [digits]
models:
  - {name: mlp, params: {epochs: 3}}
methods:
  - name: prune.magnitude
    params: {sparsity: 0.5}
backends: [{name: cpu, params: {threads: 1}}]
accuracy_gate: {relative: 0.01}
measure:
  batch_sizes: [1, 8]
  warmup: {min_iters: 2, min_seconds: 0}
  repeat: {min_iters: 20, min_seconds: 0.05}
execution: {timeout_s: 120}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, optbench_cache_dir: Path, optbench_runs_suites: None) -> Path:
    """One real run (2 cells x 2 batch sizes) by the runner ``optbench run`` calls; tests copy it before
    changing it."""
    root = tmp_path_factory.mktemp("export")
    (root / "tiny-export.yaml").write_text(SUITE)
    run_dir = run_suite_file(root / "tiny-export.yaml", root / "results", optbench_cache_dir)
    assert len(read_records(run_dir)) == 4
    return run_dir


def export(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["export", *map(str, args)])
    return code, out.getvalue(), err.getvalue()


def expected(run_dir: Path) -> dict[tuple[str, int], dict]:
    """What the report shows: latest record per cell x batch size, relative figures recomputed."""
    return {(r["method"], r["batch_size"]): r for r in fill_relative_figures(read_records(run_dir))}


def test_load_returns_the_records_as_typed_columns(run):
    df = load(run)
    want = expected(run)
    assert len(df) == 4
    assert list(df.columns[: len(CORE_SCHEMA.names)]) == list(CORE_SCHEMA.names)
    assert list(df.columns[-2:]) == ["machine", "torch"]
    dtypes = {c: str(df[c].dtype) for c in df.columns}
    assert dtypes["batch_size"] == dtypes["latency_n"] == dtypes["model_bytes"] == "Int64"
    assert dtypes["latency_p50_ms"] == dtypes["speedup"] == dtypes["accuracy"] == "float64"
    assert dtypes["noisy"] == dtypes["passes_gate"] == "boolean"
    assert dtypes["model"] == dtypes["status"] == dtypes["error"] == "string"
    assert dtypes["params"] == dtypes["backend_params"] == "object"
    assert str(df["started_at"].dt.tz) == "UTC"
    for row in df.to_dict("records"):
        r = want[(row["method"], row["batch_size"])]
        for key in ("cell_id", "run_id", "suite", "status", "latency_n", "model_bytes"):
            assert row[key] == r[key], key
        for key in ("latency_p50_ms", "latency_p99_ms", "accuracy", "speedup", "size_ratio", "accuracy_delta"):
            assert row[key] == pytest.approx(r[key]), key
        assert row["params"] == r["params"] and isinstance(row["params"], dict)
        assert row["backend_params"] == {"threads": 1}
        assert pd.isna(row["error"]) and pd.isna(row["compile_s"])
        assert isinstance(r["passes_gate"], bool) and bool(row["passes_gate"]) == r["passes_gate"]
    assert "device_peak_allocated_mb" not in df.columns  # the gpu plugin's field: only in records of its cells
    assert set(df["machine"]) == {machine_label(read_env(run))} and set(df["torch"]) == {read_env(run)["torch"]}
    assert df.loc[df["method"] == "prune.magnitude", "params"].iloc[0] == {"sparsity": 0.5, "scope": "layer"}
    pd.testing.assert_frame_equal(load(run / RECORDS_FILE), df)  # the records file names the same run


def test_the_latest_record_wins_and_relative_figures_follow_it(run, tmp_path):
    rerun = shutil.copytree(run, tmp_path / "run")
    baseline = next(r for r in read_records(rerun) if r["method"] == "baseline" and r["batch_size"] == 1)
    append_records(rerun / RECORDS_FILE, [{**baseline, "latency_p50_ms": 123.0}])  # as a resumed run rewrites a cell
    df = load(rerun)
    assert len(df) == 4
    base = df[(df["method"] == "baseline") & (df["batch_size"] == 1)]
    assert base["latency_p50_ms"].tolist() == [123.0]
    pruned = df[(df["method"] == "prune.magnitude") & (df["batch_size"] == 1)].iloc[0]
    # timed paired with its own copy of the baseline: the pairs' ratio stands, whatever the baseline cell reads
    assert pruned["paired"] and pruned["speedup"] == pytest.approx(pruned["paired_speedup"])
    unpaired = [{**r, "paired": False, "paired_speedup": None} for r in read_records(rerun)]
    (rerun / RECORDS_FILE).unlink()
    append_records(rerun / RECORDS_FILE, unpaired)  # as a run without pairing (measure.paired: false) writes them
    pruned = (df := load(rerun))[(df["method"] == "prune.magnitude") & (df["batch_size"] == 1)].iloc[0]
    assert pruned["speedup"] == pytest.approx(123.0 / pruned["latency_p50_ms"])  # follows the latest baseline


def test_a_folder_of_runs_is_concatenated(run, tmp_path):
    results = tmp_path / "results"
    first = shutil.copytree(run, results / "tiny-export" / run.name)
    second = results / "other-suite" / "20990101-000000-beef"
    shutil.copytree(run, second)
    records = [{**r, "run_id": second.name, "suite": "other-suite"} for r in read_records(second)]
    (second / RECORDS_FILE).unlink()
    append_records(second / RECORDS_FILE, records)
    (results / "notes").mkdir()  # not a run: ignored

    assert find_runs(results) == [second, first]  # sorted by path
    assert find_runs(first) == [first] and find_runs(tmp_path / "nothing") == []
    df = load(results)
    assert len(df) == 8
    assert df.groupby("run_id").size().to_dict() == {run.name: 4, second.name: 4}
    assert set(df["suite"]) == {"tiny-export", "other-suite"}
    assert load(results / "other-suite")["run_id"].unique().tolist() == [second.name]


def test_csv_holds_every_field_with_nested_values_as_json(run, tmp_path):
    target = tmp_path / "records.csv"
    code, out, _ = export(run, "--format", "csv", "-o", target)
    assert code == 0 and out.strip() == str(target)
    df = pd.read_csv(target)
    assert list(df.columns) == list(load(run).columns)
    want = expected(run)
    for row in df.to_dict("records"):
        r = want[(row["method"], row["batch_size"])]
        assert json.loads(row["params"]) == r["params"] and json.loads(row["backend_params"]) == r["backend_params"]
        assert row["latency_p50_ms"] == pytest.approx(r["latency_p50_ms"], rel=1e-12)
        assert row["speedup"] == pytest.approx(r["speedup"], rel=1e-12)
    code, stdout, _ = export(run)  # csv is the default format, stdout the default target
    assert code == 0 and stdout == target.read_text()


def test_parquet_goes_next_to_the_records_and_reads_back(run, tmp_path):
    copy = shutil.copytree(run, tmp_path / "run")
    code, out, _ = export(copy, "--format", "parquet")
    assert code == 0 and out.strip() == str(copy / "records.parquet")
    df = pd.read_parquet(copy / "records.parquet")
    loaded = load(copy)
    assert list(df.columns) == list(loaded.columns) and len(df) == 4
    assert df["latency_p50_ms"].tolist() == loaded["latency_p50_ms"].tolist()
    assert str(df["batch_size"].dtype) == "Int64" and str(df["noisy"].dtype) == "boolean"
    assert [json.loads(p) for p in df["params"]] == loaded["params"].tolist()
    code, out, _ = export(copy, "--format", "parquet", "-o", tmp_path / "elsewhere.parquet")
    assert code == 0 and len(pd.read_parquet(tmp_path / "elsewhere.parquet")) == 4


def test_markdown_is_a_compact_table_for_a_pull_request(run, tmp_path):
    copy = shutil.copytree(run, tmp_path / "run")
    pruned = next(r for r in read_records(copy) if r["method"] == "prune.magnitude" and r["batch_size"] == 8)
    append_records(copy / RECORDS_FILE, [{**pruned, "status": "failed", "error": "RuntimeError: <b>a</b> | b\nline two",
                                          **{k: None for k in pruned if k.startswith("latency_")}}])
    code, out, _ = export(copy, "--format", "markdown")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("**tiny-export** run `") and "4 records (3 ok, 1 failed)" in lines[0]
    assert "dataset: digits(test_fraction=0.25)" in out and "backend: cpu(threads=1)" in out  # shared: said once
    assert "machine: " in out
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == ("| model | method | batch | status | p50 ms | speedup \\[95% CI\\] | accuracy | Δ accuracy "
                        "| size ratio (×) | gate | noisy |")
    rows = table[2:]
    assert len(rows) == 4 and all(row.count(" | ") == 10 for row in rows)  # the error's pipe is escaped
    assert rows[0].startswith("| mlp | baseline | 1 | ok | ")
    assert rows[1].startswith("| mlp | baseline | 8 | ok | ")
    assert rows[2].startswith("| mlp | prune.magnitude sparsity=0.5, scope=layer | 1 | ok | ")
    assert rows[3].startswith("| mlp | prune.magnitude sparsity=0.5, scope=layer | 8 | failed: ")
    assert "failed: RuntimeError: &lt;b&gt;a&lt;/b&gt; \\| b line two" in rows[3] and "| — |" in rows[3]
    assert "<b>" not in out  # names and errors come from plugins: no HTML reaches a PR comment
    want = expected(copy)[("prune.magnitude", 1)]
    interval = f" \\[{want['speedup_ci_low']:.2f}, {want['speedup_ci_high']:.2f}\\]" if want["paired"] else ""
    assert f"| {want['speedup']:.2f}×{interval} |" in rows[2] and f"| {want['accuracy']:.4f} |" in rows[2]
    assert f"| {want['accuracy_delta']:+.4f} |" in rows[2]


def test_bad_input_exits_2_with_a_message(run, tmp_path):
    code, _, err = export(tmp_path / "missing")
    assert code == 2 and f"{tmp_path / 'missing'}: no such file or directory" in err
    (tmp_path / "empty").mkdir()
    code, _, err = export(tmp_path / "empty", "--format", "markdown")
    assert code == 2 and "no runs in it (no records.jsonl in it or below it)" in err
    code, _, err = export(run, "-o", tmp_path / "no" / "such" / "dir.csv")
    assert code == 2 and "does not exist" in err
    with pytest.raises(OptbenchError, match="--format 'xlsx': expected one of csv, parquet, markdown"):
        cmd_export(argparse.Namespace(run_dir=str(run), format="xlsx", out=None))
    with pytest.raises(OptbenchError, match="no such file or directory"):
        load(tmp_path / "missing")
