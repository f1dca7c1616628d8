"""records.jsonl: append-only, torn tails survived, last record per cell wins."""
from __future__ import annotations

import json

from harness.results.records import (
    add_relative_figures,
    append_records,
    fill_relative_figures,
    read_records,
    repair_torn_tail,
)


def rec(cell, bs=1, **kw):
    base = {"cell_id": cell, "batch_size": bs, "status": "ok", "model": "m", "dataset": "d", "backend": "cpu",
            "method": "baseline", "latency_p50_ms": 2.0, "model_bytes": 100, "accuracy": 0.9}
    return {**base, **kw}


def test_append_writes_records_as_given_and_reads_them_back(tmp_path):
    path = tmp_path / "records.jsonl"
    append_records(path, [rec("a"), rec("a", 8)])
    rows = read_records(path)
    assert rows == [rec("a"), rec("a", 8)]


def test_torn_tail_is_ignored_then_cut_before_the_next_append(tmp_path):
    path = tmp_path / "records.jsonl"
    append_records(path, [rec("a")])
    with open(path, "a") as f:
        f.write('{"cell_id": "b", "batch')
    assert [r["cell_id"] for r in read_records(path)] == ["a"]
    assert repair_torn_tail(path) == len('{"cell_id": "b", "batch')
    append_records(path, [rec("c")])
    assert [json.loads(line)["cell_id"] for line in path.read_text().splitlines()] == ["a", "c"]
    assert repair_torn_tail(path) == 0


def test_a_rerun_cell_replaces_its_earlier_record(tmp_path):
    path = tmp_path / "records.jsonl"
    append_records(path, [rec("a", status="failed"), rec("b")])
    append_records(path, [rec("a", status="ok")])
    rows = read_records(path)
    assert [(r["cell_id"], r["status"]) for r in rows] == [("a", "ok"), ("b", "ok")]
    assert len(read_records(path, latest_only=False)) == 3


def test_relative_figures_divide_by_the_matching_baseline():
    base = rec("base")
    faster = rec("x", method="prune.magnitude", latency_p50_ms=1.0, model_bytes=25, accuracy=0.85)
    add_relative_figures(faster, base)
    assert (faster["speedup"], faster["size_ratio"]) == (2.0, 4.0)
    assert abs(faster["accuracy_delta"] - (-0.05)) < 1e-12
    slower = rec("y", method="q", latency_p50_ms=4.0)
    failed_base = rec("base2", status="failed")
    assert add_relative_figures(slower, failed_base)["speedup"] is None
    other_bs = rec("z", bs=8, method="q")
    fill_relative_figures([base, slower, other_bs])
    assert slower["speedup"] == 0.5 and other_bs["speedup"] is None
