"""Running suites: records, isolation of misbehaving cells, resume after SIGKILL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from harness.record.schema import CORE_SCHEMA
from harness.results.records import RECORDS_FILE, read_records

NUMERIC = [
    "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms", "latency_std_ms",
    "latency_iqr_ms", "throughput_per_s", "host_peak_mb", "accuracy", "speedup", "size_ratio", "duration_s",
]


def test_records_carry_every_field_with_consistent_figures(optbench_run, tiny_suite):
    suite = tiny_suite("prune.magnitude", {"sparsity": 0.5})
    suite["measure"] = {**suite["measure"], "batch_sizes": [1, 16]}
    run = optbench_run(suite)
    assert run.exit_code == 0
    assert len(run.records) == 4
    for r in run.records:
        assert list(r)[: len(CORE_SCHEMA.names)] == list(CORE_SCHEMA.names)
        assert r["status"] == "ok" and r["error"] is None
        for key in NUMERIC:
            assert isinstance(r[key], float), key
        assert r["latency_n"] >= 5
        assert r["latency_p50_ms"] <= r["latency_p90_ms"] <= r["latency_p99_ms"]
        assert r["throughput_per_s"] == pytest.approx(r["batch_size"] / (r["latency_mean_ms"] / 1e3))
        assert r["model_bytes"] > 0 and r["flops"] > 0 and r["threads"] >= 1
        assert 0.0 <= r["accuracy"] <= 1.0
    base = {r["batch_size"]: r for r in run.by_method("baseline")}
    for r in run.by_method("prune.magnitude"):
        b = base[r["batch_size"]]
        # timed paired with its own copy of the baseline: the pairs' ratio, inside its interval
        assert r["paired"] and r["speedup"] == r["paired_speedup"]
        assert r["speedup_ci_low"] <= r["speedup"] <= r["speedup_ci_high"]
        assert r["baseline_p50_ms"] > 0 and r["pair_blocks"] >= 5
        assert r["accuracy_delta"] == pytest.approx(r["accuracy"] - b["accuracy"])
        assert r["params_count"] == b["params_count"]
        assert r["nonzero_params"] < 0.6 * b["nonzero_params"]
        assert r["params"] == {"sparsity": 0.5, "scope": "layer"} and r["method_kind"] == "pruner"
    assert base[1]["speedup"] == 1.0 and base[1]["accuracy_delta"] == 0.0
    # side files: raw samples per batch size and a log per cell
    cell = run.records[-1]["cell_id"]
    samples = json.loads((run.run_dir / "cells" / cell / "samples.json").read_text())
    assert sorted(samples) == ["1", "16"] and len(samples["1"]) == run.records[-2]["latency_n"]
    assert "method prune.magnitude applied" in (run.run_dir / "cells" / cell / "log.txt").read_text()
    env = json.loads((run.run_dir / "env.json").read_text())
    assert {"torch", "python", "cpu_model", "cores", "hostname", "plugins", "started_at"} <= set(env)
    meta = json.loads((run.run_dir / "run.json").read_text())
    assert meta["status_counts"]["ok"] == 2 and meta["isolation_overhead_s"]["n"] == 2
    assert (run.run_dir / "report.html").stat().st_size > 10_000


def test_a_crash_segfault_exception_hang_and_skip_each_cost_only_their_cell(optbench_run, tiny_suite, misbehaving):
    suite = tiny_suite()
    suite["methods"] = [
        {"name": "test.crash"}, {"name": "test.segfault"}, {"name": "test.raise"},
        {"name": "test.hang"}, {"name": "test.skip"}, {"name": "prune.magnitude"},
    ]
    suite["execution"] = {"timeout_s": 4}
    t0 = time.monotonic()
    run = optbench_run(suite)
    assert time.monotonic() - t0 < 60
    assert run.exit_code == 1
    status = {r["method"]: (r["status"], r["error"]) for r in run.records}
    assert status["baseline"] == ("ok", None) and status["prune.magnitude"] == ("ok", None)
    assert status["test.crash"][0] == "failed"
    assert status["test.crash"][1].startswith("cell process exited with code 3 before writing its result; see ")
    assert status["test.crash"][1].endswith("/log.txt")
    assert status["test.segfault"][0] == "failed" and "SIGSEGV" in status["test.segfault"][1]
    assert status["test.raise"] == ("failed", "RuntimeError: plugin bug: tensor shapes do not match")
    assert status["test.hang"][0] == "timeout" and "timeout_s=4" in status["test.hang"][1]
    assert status["test.skip"] == ("skipped", "needs hardware this machine does not have")
    raised = next(r for r in run.records if r["method"] == "test.raise")
    log = (run.run_dir / "cells" / raised["cell_id"] / "log.txt").read_text()
    assert "Traceback" in log and "plugin bug" in log
    assert all(r["latency_p50_ms"] is None for r in run.records if r["status"] != "ok")
    meta = json.loads((run.run_dir / "run.json").read_text())
    assert meta["status_counts"] == {"ok": 2, "failed": 3, "oom": 0, "timeout": 1, "skipped": 1}
    # the hung cell's process is gone
    out = subprocess.run(["pgrep", "-f", "cell-" + next(r["cell_id"] for r in run.records if r["method"] == "test.hang")],
                         capture_output=True)
    assert out.stdout == b""


def test_resume_after_sigkill_loses_no_finished_cell(tmp_path, write_suite, cli, optbench_cache_dir, optbench_runs_suites):
    path = write_suite(
        "name: killme\ndatasets: [digits]\nmodels: [{name: mlp, params: {epochs: 2}}]\n"
        "methods:\n  - name: prune.magnitude\n    params: {sparsity: [0.2, 0.5, 0.8]}\n"
        "measure:\n  batch_sizes: [1, 4]\n  warmup: {min_iters: 2, min_seconds: 0}\n"
        "  repeat: {min_iters: 5, min_seconds: 0.4}\n"
    )
    results = tmp_path / "res"
    env = {**os.environ, "OPTBENCH_CACHE_DIR": str(optbench_cache_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(path), "--results", str(results), "-q"],
                            env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    records_file = None
    while time.monotonic() < deadline:
        found = list(results.glob("killme/*/" + RECORDS_FILE))
        if found and len(found[0].read_text().splitlines()) >= 4:
            records_file = found[0]
            break
        time.sleep(0.05)
    assert records_file is not None, "no cell finished"
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its forkserver and the running cell
    proc.wait()
    before = read_records(records_file.parent)
    assert 4 <= len(before) < 8 and all(r["status"] == "ok" for r in before)
    with open(records_file, "a") as f:
        f.write('{"run_id": "torn", "cell_id": "abc", "stat')  # a write cut off mid-line
    out = cli("run", "--resume", str(records_file.parent), "-q", env={"OPTBENCH_CACHE_DIR": str(optbench_cache_dir)})
    assert out.returncode == 0, out.stderr
    lines = records_file.read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # every line parses: the torn tail was cut
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    assert len({(r["cell_id"], r["batch_size"]) for r in rows}) == 8  # no finished cell was run again
    assert rows[: len(before)] == before
    meta = json.loads((records_file.parent / "run.json").read_text())
    assert meta["status_counts"]["ok"] == 4 and len(meta["resumes"]) == 1


def test_hostile_strings_in_a_suite_are_escaped_in_the_report(optbench_run, tiny_suite):
    suite = tiny_suite()
    suite["models"][0]["id"] = "</script><script>alert(1)</script>"
    run = optbench_run(suite)
    html = (run.run_dir / "report.html").read_text()
    assert "<script>alert(1)" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_synthetic_data_measures_speed_with_null_accuracy(optbench_run, tiny_suite):
    suite = tiny_suite("quantize.dynamic_int8", dataset="synthetic", model="mlp")
    suite["datasets"] = [{"name": "synthetic", "params": {"shape": [32], "classes": 4, "samples": 16}}]
    run = optbench_run(suite)
    assert run.exit_code == 0
    assert all(r["accuracy"] is None and r["accuracy_delta"] is None for r in run.records)
    assert all(r["latency_p50_ms"] > 0 for r in run.records)
    q = run.by_method("quantize.dynamic_int8")[0]
    assert q["size_ratio"] > 2.0  # int8 weights against float32


def test_user_checkpoint_is_loaded_instead_of_training(optbench_run, tiny_suite, tmp_path):
    import torch

    from harness.builtin.datasets import DIGITS, DigitsParams
    from harness.builtin.models import MLP, MLPParams

    data = DIGITS.load(DigitsParams(), 0)
    model = MLP.build(MLPParams(hidden=[8]), data)
    torch.nn.init.zeros_(model[-1].weight)
    torch.nn.init.zeros_(model[-1].bias)  # predicts class 0 for everything: ~10% accuracy
    torch.save(model.state_dict(), tmp_path / "zeros.pt")
    suite = tiny_suite(model_params={"hidden": [8]})
    suite["models"][0]["checkpoint"] = str(tmp_path / "zeros.pt")
    run = optbench_run(suite)
    assert run.records[0]["accuracy"] == pytest.approx(0.1, abs=0.02)
    assert "checkpoint" in (run.run_dir / "cells" / run.records[0]["cell_id"] / "log.txt").read_text()


def test_each_backend_variant_is_compared_with_its_own_baseline(optbench_run, tiny_suite):
    suite = tiny_suite("prune.magnitude", {"sparsity": 0.5})
    suite["backends"] = [{"name": "cpu", "params": {"threads": 1}}, {"name": "cpu", "params": {"threads": 2}}]
    run = optbench_run(suite)
    assert run.exit_code == 0 and len(run.records) == 4
    for threads in (1, 2):
        rows = [r for r in run.records if r["backend_params"] == {"threads": threads}]
        base, pruned = sorted(rows, key=lambda r: r["method"] != "baseline")
        assert base["threads"] == pruned["threads"] == threads
        # timed paired with its own copy of the baseline: the pairs' ratio, inside its interval
        assert pruned["paired"] and pruned["speedup"] == pruned["paired_speedup"]
        assert pruned["speedup_ci_low"] <= pruned["speedup"] <= pruned["speedup_ci_high"]
        assert pruned["baseline_p50_ms"] > 0 and pruned["pair_blocks"] >= 5
    assert "cpu(threads=1)" in (run.run_dir / "report.html").read_text()


def test_ctrl_c_keeps_finished_cells_and_says_how_to_resume(tmp_path, write_suite, optbench_cache_dir, optbench_runs_suites):
    path = write_suite(
        "name: interrupt\ndatasets: [digits]\nmodels: [{name: mlp, params: {epochs: 1}}]\n"
        "methods:\n  - name: prune.magnitude\n    params: {sparsity: [0.2, 0.4, 0.6, 0.8]}\n"
        "measure:\n  batch_sizes: [1]\n  warmup: {min_iters: 1, min_seconds: 0}\n"
        "  repeat: {min_iters: 5, min_seconds: 1.0}\n"
    )
    results = tmp_path / "res"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", str(path), "--results", str(results)],
        env={**os.environ, "OPTBENCH_CACHE_DIR": str(optbench_cache_dir)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    def a_cell_is_written() -> bool:
        found = list(results.glob("interrupt/*/" + RECORDS_FILE))
        return bool(found) and found[0].read_text().endswith("\n")

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not a_cell_is_written():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    (run_dir,) = results.glob("interrupt/*")
    assert f"finish with: optbench run --resume {run_dir}" in err and "Traceback" not in err
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["interrupted_at"] and meta["status_counts"]["ok"] >= 1
    assert len(read_records(run_dir)) == meta["status_counts"]["ok"]


def test_env_json_records_each_backends_hardware_from_a_throwaway_process(optbench_run, tiny_suite):
    suite = tiny_suite()
    suite["backends"] = ["cpu", {"name": "cpu", "params": {"threads": 1}}]
    run = optbench_run(suite)
    env = json.loads((run.run_dir / "env.json").read_text())
    assert env["backends"]["cpu"]["logical_cores"] >= 1
    assert env["backends"]['cpu({"threads": 1})']["threads"] == 1


def test_a_shared_gpu_is_warned_about_in_the_run_output(misbehaving, tmp_path, optbench_cache_dir, monkeypatch, optbench_runs_suites):
    import io

    import yaml

    from harness.run.progress import Progress
    from harness.run.runner import Runner
    from harness.testing import make_tiny_suite

    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(optbench_cache_dir))
    suite = make_tiny_suite()
    suite["backends"] = ["test.busy-gpu"]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = io.StringIO()
    result = Runner(progress=Progress(stream=out)).run(path, tmp_path / "results")
    assert result.exit_code == 0
    assert "warning: mlp · digits · baseline · test.busy-gpu: another process used the GPU" in out.getvalue()
