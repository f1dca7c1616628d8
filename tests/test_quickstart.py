"""The README's first command: the quickstart suite through the real CLI, cold cache."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.results.records import read_records

pytestmark = pytest.mark.slow


def test_quickstart_suite_runs_clean_and_reports(cli, tmp_path, optbench_runs_suites):
    out = cli("run", "suites/quickstart.yaml", "--results", str(tmp_path / "res"),
              env={"OPTBENCH_CACHE_DIR": str(tmp_path / "cache")}, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = Path(out.stdout.strip().splitlines()[-1])
    assert report.name == "report.html" and report.exists()
    rows = read_records(report.parent)
    assert len(rows) == 16 and all(r["status"] == "ok" for r in rows)
    assert {(r["model"], r["method"]) for r in rows} == {
        (m, k) for m in ("mlp", "small-cnn") for k in ("baseline", "quantize.dynamic_int8", "prune.magnitude")
    }
    for r in rows:
        if r["method"] == "baseline":
            assert r["accuracy"] >= 0.95, r
        assert r["latency_n"] >= 30 and r["speedup"] is not None
    pruned = [r for r in rows if r["method"] == "prune.magnitude"]
    assert {r["params"]["sparsity"] for r in pruned} == {0.5, 0.9}
    for r in pruned:
        assert r["nonzero_params"] <= (1.05 - r["params"]["sparsity"]) * r["params_count"]
    quantized = [r for r in rows if r["method"] == "quantize.dynamic_int8"]
    assert all(r["size_ratio"] > 2 for r in quantized)
    meta = json.loads((report.parent / "run.json").read_text())
    assert meta["isolation_overhead_s"]["median"] < 0.5
    html = report.read_text()
    assert html.count("<tr") >= 17 and "small-cnn" in html
