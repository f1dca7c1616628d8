"""The HTML report: what a reader sees, that it opens offline, and that nothing in it executes."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from plotly.offline import get_plotlyjs

from harness.record.schema import CORE_SCHEMA
from harness.report.run_report import pareto_front, render_report, write_report
from harness.results.records import RECORDS_FILE, append_records
from harness.testing import make_record

PLOTLY_JS = get_plotlyjs()
XSS_MODEL = "</script><script>alert(1)</script>"
XSS_ERROR = "<img src=x onerror=alert(1)>"


def record(**over: Any) -> dict[str, Any]:
    """A plausible ok record with every declared field; keyword arguments override."""
    return make_record(**{
        "suite": "quickstart", "seed": None, "latency_p90_ms": 2.2, "latency_p99_ms": 2.5, "latency_mean_ms": 2.05,
        "latency_std_ms": 0.1, "latency_iqr_ms": 0.08, "latency_n": 200, "throughput_per_s": 500.0,
        "host_peak_mb": 120.0, "params_count": 100_000, "nonzero_params": 100_000, "flops": 200_000,
        "setup_s": 0.5, "threads": 4, "duration_s": 3.0, "started_at": "2025-01-01T00:00:00Z", **over})


def sample_records() -> list[dict[str, Any]]:
    """Two models x two batch sizes: baseline, a quantizer, a pruner; one failure, one noisy row."""
    out = []
    for model, acc in (("mlp", 0.95), ("cnn", 0.98)):
        for batch, scale in ((1, 1.0), (32, 8.0)):
            out += [
                record(model=model, batch_size=batch, latency_p50_ms=2.0 * scale, accuracy=acc),
                record(model=model, batch_size=batch, method="dynamic_int8", method_kind="quantizer",
                       latency_p50_ms=1.2 * scale, model_bytes=100_000, accuracy=acc - 0.01,
                       noisy=(model == "cnn" and batch == 32)),
                record(model=model, batch_size=batch, method="magnitude", method_kind="pruner",
                       params={"sparsity": 0.5}, latency_p50_ms=2.4 * scale, nonzero_params=50_000,
                       accuracy=acc - 0.03),
            ]
    out.append(record(model="mlp", method="svd", method_kind="factorizer", params={"rank": 8},
                      status="failed", error="RuntimeError: shapes do not match",
                      **{k: None for k in CORE_SCHEMA.names if k.startswith("latency_") or k in (
                          "accuracy", "throughput_per_s", "model_bytes", "noisy")}))
    return out


def make_run(tmp_path: Path, records: list[dict[str, Any]], run: dict | None = None,
             env: dict | None = None) -> Path:
    append_records(tmp_path / RECORDS_FILE, records)
    if run is not None:
        (tmp_path / "run.json").write_text(json.dumps(run))
    if env is not None:
        (tmp_path / "env.json").write_text(json.dumps(env))
    return tmp_path


def body_rows(page: str) -> list[str]:
    tbody = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr[ >].*?</tr>", tbody, flags=re.S)


def without_plotly(page: str) -> str:
    """The page minus the plotly.js bundle, whose source mentions URLs in strings it never loads."""
    return page.replace(PLOTLY_JS, "")


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run_dir = make_run(
        tmp_path_factory.mktemp("run"), sample_records(),
        run={"run_id": "r1", "suite": "quickstart", "started_at": "2025-01-01T00:00:00Z",
             "status_counts": {"ok": 12, "failed": 1, "timeout": 0, "skipped": 0}},
        env={"cpu_model": "Test CPU 9000", "cores": 16, "torch": "2.13.0"})
    path = write_report(run_dir)
    return path, path.read_text(encoding="utf-8")


def test_write_report_writes_one_self_contained_page(full_report: tuple[Path, str]) -> None:
    path, page = full_report
    assert path.name == "report.html" and path.parent.joinpath("report.html") == path
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".report-")] == []  # no temp left
    assert page.count(PLOTLY_JS) == 1
    rest = without_plotly(page)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", rest, flags=re.I)
    assert "@import" not in rest and "url(" not in rest


def test_page_names_everything_and_has_one_row_per_record(full_report: tuple[Path, str]) -> None:
    _, page = full_report
    for name in ("mlp", "cnn", "digits", "baseline", "dynamic_int8", "magnitude", "svd", "sparsity=0.5",
                 "quickstart", "r1", "2025-01-01T00:00:00Z", "Test CPU 9000", "16 cores", "torch 2.13.0"):
        assert name in page, name
    assert len(body_rows(page)) == len(sample_records())
    assert page.count("<h3>") == 2  # one figure section per model (same dataset and backend)
    assert page.count('<div class="plot"') == 2


def test_rows_mark_baseline_failure_noise_and_slowdown(full_report: tuple[Path, str]) -> None:
    _, page = full_report
    rows = body_rows(page)
    assert sum('class="baseline' in r for r in rows) == 4
    failed = [r for r in rows if "st-failed" in r]
    assert len(failed) == 1 and 'class="not-ok"' in failed[0] and "—" in failed[0]
    assert "RuntimeError: shapes do not match" in failed[0]
    assert sum('class="noisy"' in r for r in rows) == 1
    # the pruner is slower than its baseline: 2.0 / 2.4 = 0.83x, shown in red
    pruner = [r for r in rows if "magnitude" in r]
    assert all('class="worse num" data-sort="0.8333' in r and "0.83×" in r for r in pruner)
    # model bytes are human-readable but sort by the raw number
    assert 'data-sort="400000.0">390.6 KiB<' in page
    assert "NaN" not in without_plotly(page)


def test_hostile_strings_are_shown_as_text_and_never_run(tmp_path: Path) -> None:
    recs = [record(model=XSS_MODEL, suite=XSS_MODEL),
            record(model=XSS_MODEL, method="evil", method_kind="pruner", params={"p": XSS_ERROR},
                   latency_p50_ms=1.0, accuracy=0.9),
            record(model=XSS_MODEL, method="evil2", status="failed", error=XSS_ERROR * 10,
                   latency_p50_ms=None, accuracy=None)]
    run_dir = make_run(tmp_path, recs, run={"run_id": XSS_MODEL, "suite": XSS_MODEL},
                       env={"cpu_model": XSS_ERROR})
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert page.count(PLOTLY_JS) == 1  # the figure for the hostile model is drawn
    rest = without_plotly(page)
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "alert(1)</script>" not in rest
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as visible text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    # every <script> in the page is ours: the bundle, figure JSON blocks and the sort script
    assert rest.count("<script") == rest.count("</script>") == 1 + 1 + 1
    # the figure JSON is still valid and carries the (escaped) name for plotly to display
    blob = re.search(r'<script type="application/json" data-figure="plot-0">(.*?)</script>', rest, re.S)
    fig = json.loads(blob.group(1))
    assert any("alert(1)" in t for trace in fig["data"] for t in (trace.get("text") or []))


def test_empty_run_still_renders(tmp_path: Path) -> None:
    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert "No records" in page and "<table" not in page
    assert page.rstrip().endswith("</html>")


def test_synthetic_data_skips_the_figure_and_says_why() -> None:
    page = render_report([record(accuracy=None), record(method="q", accuracy=None, latency_p50_ms=1.0)],
                         {"run": {}, "env": {}})
    assert "No quality-vs-latency figure" in page and "no quality figure" in page
    assert '<div class="plot"' not in page
    assert len(body_rows(page)) == 2


def test_missing_meta_falls_back_to_records() -> None:
    page = render_report([record(), record(status="timeout", method="slow")], {})
    assert "quickstart" in page and "r1" in page and "machine: unknown" in page
    assert "timeout 1" in page and "ok 1" in page


def test_pareto_front_keeps_only_undominated_points_sorted_by_latency() -> None:
    points = [(5.0, 0.90), (1.0, 0.80), (2.0, 0.85), (2.5, 0.84), (3.0, 0.85), (6.0, 0.95), (1.0, 0.70)]
    assert pareto_front(points) == [(1.0, 0.80), (2.0, 0.85), (5.0, 0.90), (6.0, 0.95)]
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 0.5, "payload")]) == [(1.0, 0.5, "payload")]
    # equal points do not dominate each other
    assert pareto_front([(1.0, 0.5), (1.0, 0.5)]) == [(1.0, 0.5), (1.0, 0.5)]
