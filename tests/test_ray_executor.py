"""The Ray executor: a real local Ray instance (2 CPUs) running real cells end to end."""
from __future__ import annotations

import builtins
import itertools
import json

import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    """One local Ray instance for the module; RayExecutor(address=local) reuses it."""
    import logging
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield
    ray.shutdown()


def ray_suite(tiny_suite, *methods, **execution):
    suite = tiny_suite()
    suite["methods"] = list(methods)
    suite["execution"] = {"timeout_s": 120, "executor": "ray", "address": "local", **execution}
    return suite


def test_a_suite_runs_on_ray_with_relative_figures_and_a_report(optbench_run, tiny_suite):
    suite = ray_suite(tiny_suite, {"name": "prune.magnitude", "params": {"sparsity": [0.5, 0.9]}})
    run = optbench_run(suite)
    assert run.exit_code == 0
    assert len(run.records) == 3 and all(r["status"] == "ok" for r in run.records)
    assert run.records[0]["method"] == "baseline"  # a group's baseline is recorded before its other cells
    base = run.by_method("baseline")[0]
    for r in run.by_method("prune.magnitude"):
        # timed paired with its own copy of the baseline: the pairs' ratio, inside its interval
        assert r["paired"] and r["speedup"] == r["paired_speedup"]
        assert r["speedup_ci_low"] <= r["speedup"] <= r["speedup_ci_high"]
        assert r["baseline_p50_ms"] > 0 and r["pair_blocks"] >= 5
        assert r["accuracy_delta"] == pytest.approx(r["accuracy"] - base["accuracy"])
        cell_dir = run.run_dir / "cells" / r["cell_id"]
        assert "method prune.magnitude applied" in (cell_dir / "log.txt").read_text()  # shipped back by the task
        assert sorted(json.loads((cell_dir / "samples.json").read_text())) == ["1"]
    meta = json.loads((run.run_dir / "run.json").read_text())
    assert meta["executor"] == "ray" and meta["status_counts"]["ok"] == 3
    assert meta["execution"]["address"] == "local" and meta["execution"]["cpus_per_cell"] == 1.0
    assert "device_key" in meta["execution"]["device_exclusivity"]
    assert meta["isolation_overhead_s"]["n"] == 3
    assert (run.run_dir / "report.html").stat().st_size > 10_000


def test_cells_on_one_device_never_overlap_unless_the_suite_allows_it(optbench_run, tiny_suite):
    def spans(run):
        out = []
        for r in run.records:
            log = (run.run_dir / "cells" / r["cell_id"] / "result.json").read_text()
            out.append((r["started_at"], json.loads(log)["work_s"]))
        return out

    suite = ray_suite(tiny_suite, {"name": "prune.magnitude", "params": {"sparsity": [0.3, 0.6]}})
    run = optbench_run(suite)
    assert run.exit_code == 0
    import datetime as dt

    starts = sorted((dt.datetime.fromisoformat(s), w) for s, w in spans(run))
    for (a, wa), (b, _) in itertools.pairwise(starts):
        assert (b - a).total_seconds() >= wa  # the next cell started after the previous one's work ended


def test_a_crash_and_a_segfault_cost_only_their_cells(optbench_run, tiny_suite, misbehaving):
    suite = ray_suite(tiny_suite, {"name": "test.crash"}, {"name": "test.segfault"}, {"name": "prune.magnitude"},
                      timing_exclusive=False)
    run = optbench_run(suite)
    assert run.exit_code == 1
    status = {r["method"]: (r["status"], r["error"]) for r in run.records}
    assert status["baseline"] == ("ok", None) and status["prune.magnitude"] == ("ok", None)
    assert status["test.crash"] == ("failed", "cell process exited with code 3 before writing its result")
    assert status["test.segfault"][0] == "failed" and "SIGSEGV" in status["test.segfault"][1]
    assert run.by_method("prune.magnitude")[0]["speedup"] is not None
    meta = json.loads((run.run_dir / "run.json").read_text())
    assert meta["status_counts"] == {"ok": 2, "failed": 2, "oom": 0, "timeout": 0, "skipped": 0}
    assert meta["execution"]["device_exclusivity"].startswith("none")


def test_a_hang_times_out_and_the_run_goes_on(optbench_run, tiny_suite, misbehaving):
    suite = ray_suite(tiny_suite, {"name": "test.hang"}, {"name": "test.raise"}, timeout_s=4)
    run = optbench_run(suite)
    status = {r["method"]: (r["status"], r["error"]) for r in run.records}
    assert status["baseline"] == ("ok", None)
    assert status["test.hang"][0] == "timeout" and "timeout_s=4" in status["test.hang"][1]
    assert status["test.raise"] == ("failed", "RuntimeError: plugin bug: tensor shapes do not match")
    assert run.exit_code == 1


def test_missing_ray_is_a_clear_error(monkeypatch, tiny_suite, tmp_path, capsys):
    import yaml

    from harness.cli import main

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(ray_suite(tiny_suite)))
    code = main(["run", str(path), "--results", str(tmp_path / "res"), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "the ray executor needs Ray: pip install 'optbench[ray]'" in err and "Traceback" not in err


@pytest.mark.parametrize("execution, fragments", [
    ("{executor: dask}", ["suite.yaml:4 at execution.executor", "'local' or 'ray'", "dask"]),
    ("{executor: ray, address: 'http://x:1'}", ["at execution.address"]),
    ("{executor: ray, cpus_per_cell: 0}", ["at execution.cpus_per_cell"]),
    ("{executor: ray, max_concurrent: 0}", ["at execution.max_concurrent"]),
    ("{executor: ray, speed: fast}", ["at execution.speed: unknown key 'speed'"]),
    ("{gpus_per_cell: 1}", ["gpus_per_cell: only meaningful with `executor: ray`"]),
])
def test_execution_keys_are_validated(execution, fragments, write_suite, capsys):
    from harness.cli import main

    path = write_suite(f"name: t\ndatasets: [digits]\nmodels: [mlp]\nexecution: {execution}\n")
    code = main(["validate", str(path)])
    err = capsys.readouterr().err.replace(str(path), "suite.yaml")
    assert code == 2 and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_valid_ray_execution_validates(write_suite, capsys):
    from harness.cli import main

    path = write_suite("name: t\ndatasets: [digits]\nmodels: [mlp]\n"
                       "execution: {executor: ray, address: 'ray://head:10001', cpus_per_cell: 2, max_concurrent: 4}\n")
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_a_flooding_cells_log_is_capped_before_it_is_shipped_to_the_driver(tmp_path):
    from harness.run.cell_log import read_capped

    log = tmp_path / "log.txt"
    log.write_bytes(b"x" * 1023 + b"\n" + b"y" * (2 * 2**20))
    text = read_capped(log, 1)
    assert len(text.encode()) < 2**20 + 200 and text.startswith("x" * 1023 + "\n")
    assert text.endswith(f"log capped at execution.log_limit_mb=1: {2 * 2**20 + 1024 - 2**20:,} more bytes of "
                         "output were dropped\n")
    assert read_capped(log, None) == log.read_text()  # no limit: all of it
    log.write_bytes(b"short\n")
    assert read_capped(log, 1) == "short\n"
