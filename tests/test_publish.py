"""optbench publish without a browser: what the site holds, its figures' data, escaping, what it
loads from where, the CLI's errors, and the helpers (machine fingerprint, sample intervals).

Most runs here are written directly (records, samples, env.json) so each test says exactly
what it feeds in; one test publishes real runs made through the CLI (shared with
test_browser through browser_support).
"""
from __future__ import annotations

import base64
import gzip
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from plotly.offline import get_plotlyjs

from harness.cli import main
from harness.errors import OptbenchError
from harness.report.run_report import REPORT_FILE, write_report
from harness.results.records import append_records
from harness.site.publish import (
    SITE_MARKER,
    Task,
    find_runs,
    machine_fingerprint,
    machine_label,
    machines_of,
    median_interval_ms,
    process_run,
    publish,
    suite_page,
)
from harness.testing import make_record

PLOTLY_JS = get_plotlyjs()
XSS = "</script><script>alert(1)</script>"
ENV_A = {"hostname": "alpha", "cpu_model": "CPU A", "cores": 8, "torch": "2.14.1", "python": "3.11.7",
         "started_at": "2026-01-01T00:00:00+00:00"}
ENV_B = {**ENV_A, "hostname": "beta", "cpu_model": "CPU B"}
REMOTE = re.compile(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", re.I)


def record(**over: Any) -> dict[str, Any]:
    return make_record(**{"latency_p99_ms": 3.0, "flops": 200_000, "effective_flops": 200_000, **over})


def methods(model: str = "mlp", p50: float = 2.0, acc: float = 0.95, batch: int = 1) -> list[dict[str, Any]]:
    """A baseline, an int8 quantizer (smaller, faster) and a 50% pruner (theoretically 2x, measured 1x)."""
    return [record(model=model, batch_size=batch, latency_p50_ms=p50, accuracy=acc),
            record(model=model, batch_size=batch, method="quantize.dynamic_int8", method_kind="quantizer",
                   latency_p50_ms=p50 / 2, model_bytes=100_000, accuracy=acc - 0.002),
            record(model=model, batch_size=batch, method="prune.magnitude", method_kind="pruner",
                   params={"sparsity": 0.5}, latency_p50_ms=p50 * 1.01, effective_flops=100_000, accuracy=acc - 0.03,
                   passes_gate=False, noisy=True)]


def make_run(results: Path, suite: str, run_id: str, records: list[dict[str, Any]], env: dict | None = None,
             started: str = "2026-01-01T00:00:00+00:00", samples: bool = True, report: bool = False) -> Path:
    run_dir = results / suite / run_id
    run_dir.mkdir(parents=True)
    for r in records:
        r.update(run_id=run_id, suite=suite)
    append_records(run_dir / "records.jsonl", records)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_id, "suite": suite, "started_at": started}))
    if env is not None:
        (run_dir / "env.json").write_text(json.dumps(env))
    (run_dir / "suite.yaml").write_text(f"name: {suite}\n")
    if samples:
        rng = np.random.default_rng(0)
        by_cell: dict[str, dict[str, list[int]]] = {}
        for r in records:
            if r["status"] == "ok":
                ns = (r["latency_p50_ms"] * 1e6 * rng.lognormal(0, 0.05, 400)).astype(int)
                by_cell.setdefault(r["cell_id"], {})[str(r["batch_size"])] = ns.tolist()
        for cid, s in by_cell.items():
            (run_dir / "cells" / cid).mkdir(parents=True)
            (run_dir / "cells" / cid / "samples.json").write_text(json.dumps(s))
    if report:
        write_report(run_dir)
    return run_dir


def board_data(page: str) -> dict[str, Any]:
    blob = re.search(r'<script type="application/json" id="board-data">(.*?)</script>', page, re.S)
    return json.loads(blob.group(1))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Two suites: "quick" with a run on machine alpha (its report written) and one on beta; "other" with one."""
    res = tmp_path / "results"
    make_run(res, "quick", "run-a", methods() + methods(batch=8, p50=9.0), ENV_A, report=True)
    make_run(res, "quick", "run-b", methods(p50=1.0), ENV_B, started="2026-02-01T00:00:00+00:00")
    make_run(res, "other", "run-c", methods(model="cnn", acc=0.98), ENV_A, samples=False)
    return res


# --- what the site holds ----------------------------------------------------------------------

def test_publish_writes_an_index_a_page_per_suite_and_every_run(results: Path, tmp_path: Path) -> None:
    done = publish(results, tmp_path / "site")
    site = done.site
    assert (done.runs, done.suites, done.records) == (3, 2, 12)
    assert sorted(done.pages) == ["index.html", "suites/other.html", "suites/quick.html"]
    assert done.reports == {"rendered": 3}  # from the records, never copied
    for run in ("quick/run-a", "quick/run-b", "other/run-c"):
        for name in (REPORT_FILE, "env.json", "run.json", "suite.yaml"):
            assert (site / "runs" / run / name).is_file(), (run, name)
    original = results / "quick" / "run-a" / REPORT_FILE
    # rendered again, loading the site's one plotly.js instead of an inline copy of its own
    from harness.report.markup import plotly_script

    rendered = (site / "runs/quick/run-a" / REPORT_FILE).read_text()
    shared = '<script charset="utf-8" src="../../../assets/plotly.min.js"></script>'
    assert plotly_script("inline") not in rendered and original.read_text() != rendered
    assert shared in rendered and len(rendered) < 1_000_000 < original.stat().st_size
    assert (site / "assets/plotly.min.js").stat().st_size > 3_000_000
    assert (site / SITE_MARKER).is_file()
    index = (site / "index.html").read_text()
    for text in ('href="suites/quick.html"', 'href="suites/other.html"', 'href="runs/quick/run-b/report.html"',
                 'href="runs/quick/run-a/env.json"', "CPU A", "CPU B", "3 runs", "2 machines", "2026-02-01 00:00"):
        assert text in index, text
    page = (site / "suites/quick.html").read_text()
    data = board_data(page)
    assert len(data["rows"]["run"]) == 9
    assert data["runs"]["id"] == ["run-b", "run-a"]  # newest first
    assert [m["short"] for m in data["machines"]] == ["beta", "alpha"]
    assert data["runs"]["href"] == ["runs/quick/run-b", "runs/quick/run-a"]
    assert "These runs come from 2 machines" in page


def test_rows_carry_the_baseline_relative_figures_and_the_marks(results: Path, tmp_path: Path) -> None:
    page = (publish(results, tmp_path / "site").site / "suites/quick.html").read_text()
    data = board_data(page)
    rows, configs, strings = data["rows"], data["configs"], data["strings"]
    by_method: dict[str, list[int]] = {}
    for i, cfg in enumerate(rows["cfg"]):
        by_method.setdefault(strings[configs["method"][cfg]], []).append(i)
    for i in by_method["quantize.dynamic_int8"]:
        assert rows["speedup"][i] == 2 and rows["size"][i] == 4 and rows["dacc"][i] == pytest.approx(-0.002)
        assert rows["lo"][i] < 2 < rows["hi"][i]  # the interval from the raw samples brackets the point
    for i in by_method["prune.magnitude"]:
        assert rows["theo"][i] == 2 and rows["speedup"][i] == pytest.approx(1 / 1.01, rel=1e-3)
        assert rows["gate"][i] == 0 and rows["noisy"][i] == 1
    for i in by_method["baseline"]:
        assert rows["speedup"][i] == 1 and rows["lo"][i] is None  # a baseline has no interval against itself


def test_figures_group_by_model_backend_and_batch_with_one_front_per_machine(results: Path, tmp_path: Path) -> None:
    data = board_data((publish(results, tmp_path / "site").site / "suites/quick.html").read_text())
    fal = {tuple(s["key"]): s for s in data["figures"]["fal"]}
    assert sorted(fal) == [("mlp", "digits", "cpu", 1), ("mlp", "digits", "cpu", 8)]
    batch1 = fal[("mlp", "digits", "cpu", 1)]
    members = [i for i, f in enumerate(data["member"]["fal"]) if f == batch1["id"]]
    assert len(members) == 6  # 3 methods x 2 runs (machines)
    # beta (index 0) is twice as fast as alpha; ranked together, alpha's points would all be dominated
    assert sorted(batch1["fronts"]) == ["0", "1"]
    for m, front in batch1["fronts"].items():
        machines = {full_rows(data)["machine"][i] for i in front}
        assert machines == {int(m)} and len(front) == 2  # the quantizer (fast) and the baseline (accurate)
    assert "frontsAll" not in batch1  # nothing contended: one front per machine only
    assert [s["key"] for s in data["figures"]["fre"]] == [["cpu"]]
    assert sum(1 for f in data["member"]["fsp"] if f) == 6  # every non-baseline ok record
    (sa,) = data["figures"]["fsa"]
    assert sum(1 for f in data["member"]["fsa"] if f == sa["id"]) == 6  # one point per cell and machine
    page = (tmp_path / "site/suites/quick.html").read_text()
    assert page.count('<div class="plot"') == 2 + 2 + 1 + 1 and page.count('<p class="caption">') == 6


def test_a_suite_of_baselines_alone_draws_no_figure(tmp_path: Path) -> None:
    res = tmp_path / "results"
    make_run(res, "solo", "r", [record(), record(batch_size=8)], ENV_A)
    data = board_data((publish(res, tmp_path / "site").site / "suites/solo.html").read_text())
    assert all(not specs for specs in data["figures"].values())
    assert not any(f for col in data["member"].values() for f in col)


def test_republishing_replaces_the_site_and_keeps_nothing_stale(results: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    publish(results, site)
    (site / "stale.txt").write_text("from an older site")
    (results / "other" / "run-c" / "records.jsonl").unlink()  # that run is gone now
    done = publish(results, site)
    assert done.runs == 2 and not (site / "stale.txt").exists() and not (site / "suites/other.html").exists()
    assert [p.name for p in site.parent.iterdir() if p.name.startswith(".")] == []  # no temp or old site left


# --- repeated runs: one row per cell and machine -----------------------------------------------

REASON = "other processes used 1.3 cores during 4 of 6 timed blocks after 2 re-measurements"


def quant(p50: float, **over: Any) -> dict[str, Any]:
    return record(method="quantize.dynamic_int8", method_kind="quantizer", latency_p50_ms=p50, model_bytes=100_000,
                  accuracy=0.948, **over)


def prune(p50: float, **over: Any) -> dict[str, Any]:
    return record(method="prune.magnitude", method_kind="pruner", params={"sparsity": 0.5}, latency_p50_ms=p50,
                  effective_flops=100_000, model_bytes=50_000, accuracy=0.949, **over)


def full_rows(data: dict[str, Any]) -> dict[str, list[Any]]:
    """Every aggregated row, columnar, as the page's script makes them: those of several records are in
    data["agg"]; a row of one record is that record (no figures unless it is ok)."""
    R, several = data["rows"], data["agg"]
    keys = [k for k in several if k != "at"]
    out: dict[str, list[Any]] = {k: [None] * data["nAgg"] for k in ("cfg", "machine", *keys)}
    for i, a in reversed(list(enumerate(R["agg"]))):  # the newest run's record last
        ok = data["strings"][R["status"][i]] == "ok"
        out["cfg"][a], out["machine"][a] = R["cfg"][i], data["runs"]["machine"][R["run"][i]]
        for k in keys:
            out[k][a] = R[k][i] if k in ("run", "status") else (R[k][i] if ok else None) if k in R else None
        out["n"][a], out["out"][a], out["cont"][a] = int(ok), int(not ok), R["cont"][i] if ok else 0
    for j, a in enumerate(several["at"]):
        for k in keys:
            out[k][a] = several[k][j]
    return out


def agg_rows(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The aggregated rows by (method, machine short name), each as {column: value} with its range of
    speedup and p50 (None where the runs used agree or there is one), and the runs behind it."""
    A, C, S = full_rows(data), data["configs"], data["strings"]
    out = {}
    for a in range(data["nAgg"]):
        key = (S[C["method"][A["cfg"][a]]], data["machines"][A["machine"][a]]["short"])
        assert key not in out, key  # one row per cell and machine
        row = {k: v[a] for k, v in A.items()}
        row.update({f"range_{k}": data["ranges"].get(k, {}).get(str(a)) for k in ("speedup", "p50", "acc")})
        row["records"] = [i for i, x in enumerate(data["rows"]["agg"]) if x == a]
        row["index"] = a
        out[key] = row
    return out


@pytest.fixture
def repeated(tmp_path: Path) -> Path:
    """Four runs of one suite on alpha, one on beta. The quantizer's speedup is 2, 2.5 and 1.6 on alpha
    (one more run of it, contended and 10x, must not count); the pruner ran contended every time it did
    not fail (and is the fastest and smallest, so it would top both fronts)."""
    res = tmp_path / "results"
    make_run(res, "rep", "r1", [record(), quant(1.0), prune(0.25, contended=True, contended_reason=REASON)], ENV_A,
             started="2026-01-01T00:00:00+00:00", samples=False)
    make_run(res, "rep", "r2", [record(), quant(0.8), prune(0.35, contended=True, contended_reason=REASON)], ENV_A,
             started="2026-01-02T00:00:00+00:00", samples=False)
    make_run(res, "rep", "r3", [record(), quant(1.25), prune(0.3, status="failed", error="boom")], ENV_A,
             started="2026-01-03T00:00:00+00:00", samples=False)
    make_run(res, "rep", "r4", [record(), quant(0.2, contended=True, contended_reason=REASON)], ENV_A,
             started="2026-01-04T00:00:00+00:00", samples=False)
    make_run(res, "rep", "rb", [record(latency_p50_ms=1.0), quant(0.4)], ENV_B,
             started="2026-01-05T00:00:00+00:00", samples=False)
    return res


def test_repeated_runs_give_one_row_per_cell_and_machine(repeated: Path, tmp_path: Path) -> None:
    page = (publish(repeated, tmp_path / "site").site / "suites/rep.html").read_text()
    data = board_data(page)
    assert len(data["rows"]["run"]) == 13  # every record is still there, for the runs behind each row
    rows = agg_rows(data)
    assert sorted(rows) == [("baseline", "alpha"), ("baseline", "beta"), ("prune.magnitude", "alpha"),
                            ("quantize.dynamic_int8", "alpha"), ("quantize.dynamic_int8", "beta")]
    q = rows[("quantize.dynamic_int8", "alpha")]
    # the median over its three clean runs, their range; the contended fourth is left out
    assert (q["speedup"], q["range_speedup"], q["n"], q["out"], q["cont"]) == (2, [1.6, 2.5], 3, 1, 0)
    assert (q["p50"], q["range_p50"]) == (1, [0.8, 1.25])
    assert q["acc"] == 0.948 and q["range_acc"] is None  # the same in every run: no range
    assert q["lo"] is None and q["status"] == data["strings"].index("ok")
    assert data["runs"]["id"][q["run"]] == "r3"  # the latest run it is the median of
    assert len(q["records"]) == 4 and sum(data["rows"]["cont"][i] for i in q["records"]) == 1
    base = rows[("baseline", "alpha")]
    assert (base["n"], base["out"], base["p50"], base["range_p50"], base["speedup"]) == (4, 0, 2, None, 1)
    # another machine is another row, never pooled: one run there, so n=1 and no range
    qb = rows[("quantize.dynamic_int8", "beta")]
    assert (qb["speedup"], qb["range_speedup"], qb["n"], qb["out"]) == (2.5, None, 1, 0)


def test_a_contended_record_is_left_out_marked_and_off_the_fronts(repeated: Path, tmp_path: Path) -> None:
    page = (publish(repeated, tmp_path / "site").site / "suites/rep.html").read_text()
    data = board_data(page)
    rows = agg_rows(data)
    # every ok run of the pruner was contended: the row is the median of those, marked, the failed run left out
    pr = rows[("prune.magnitude", "alpha")]
    assert (pr["cont"], pr["n"], pr["out"], pr["p50"], pr["range_p50"]) == (1, 2, 1, 0.3, [0.25, 0.35])
    assert pr["status"] == data["strings"].index("ok")
    contended = [i for i in pr["records"] if data["rows"]["cont"][i]]
    assert len(contended) == 2 and all(data["reasons"][str(i)] == REASON for i in contended)
    assert [data["errors"][str(i)] for i in pr["records"] if str(i) in data["errors"]] == ["boom"]
    # the Pareto front of alpha leaves it out (it is the fastest and would be on it); "frontsAll" counts it in
    (fal,) = data["figures"]["fal"]
    alpha = str(data["machines"].index(next(m for m in data["machines"] if m["short"] == "alpha")))
    q, base = rows[("quantize.dynamic_int8", "alpha")]["index"], rows[("baseline", "alpha")]["index"]
    assert sorted(fal["fronts"][alpha]) == sorted([q, base])
    assert pr["index"] in fal["frontsAll"][alpha] and q not in fal["frontsAll"][alpha]
    assert data["member"]["fal"][pr["index"]] == fal["id"]  # drawn, when shown, as marked
    (fsa,) = data["figures"]["fsa"]
    assert pr["index"] not in fsa["front"] and pr["index"] in fsa["frontAll"]
    # the page has the toggle, off by default
    assert '<input id="show-contended" type="checkbox">' in page


def test_the_page_gets_each_row_of_one_record_once(repeated: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A row of one record is not repeated in data["agg"]: the page (full_rows here) takes it from the
    record, and must end with exactly the rows the publisher aggregated."""
    import harness.site.data as site_data

    made: list[Any] = []
    several = site_data._several
    monkeypatch.setattr(site_data, "_several", lambda agg, members: made.append(agg) or several(agg, members))
    data = board_data((publish(repeated, tmp_path / "site").site / "suites/rep.html").read_text())
    (agg,) = made
    rows = full_rows(data)
    kept = [k for k in agg.columns if k in rows]
    assert {k: rows[k] for k in kept} == {k: agg.columns[k] for k in kept}
    # what the page does not get is only a language model's columns and another task's quality, null throughout
    # in this suite
    assert all(k in (*site_data.LANGUAGE_COLUMNS, *site_data.TASK_COLUMNS) and set(agg.columns[k]) == {None}
               for k in agg.columns if k not in rows)
    assert data["agg"]["at"] == [a for a in range(data["nAgg"]) if data["rows"]["agg"].count(a) > 1]
    assert len(data["agg"]["at"]) == 3  # beta's two rows are one record each


def test_old_records_without_contended_count_as_clean(tmp_path: Path) -> None:
    res = tmp_path / "results"
    recs = methods()
    for r in recs:
        r.pop("contended", None)
        r.pop("contended_reason", None)
    make_run(res, "old", "r1", recs, ENV_A, samples=False)
    data = board_data((publish(res, tmp_path / "site").site / "suites/old.html").read_text())
    rows = full_rows(data)
    assert data["rows"]["cont"] == [0, 0, 0] and rows["cont"] == [0, 0, 0] and data["reasons"] == {}
    assert rows["n"] == [1, 1, 1] and data["ranges"] == {} and data["agg"]["at"] == []  # each row is its record
    assert rows["ref"] == [None] * 3 and data["reference"] == []  # no reference backend named: no vs reference


def test_rows_rank_every_backend_against_the_reference_baseline(tmp_path: Path) -> None:
    """reference_speedup (the cpu baseline's p50 / the row's) is every row's "vs reference": the median over its
    clean runs with their range, like speedup; the page names the reference backend, offers it as an objective,
    and a backend whose runtime ran in bf16 says so in its label."""
    res = tmp_path / "results"
    ref = {"reference_backend": "cpu", "reference_backend_params": {"threads": 1}}
    cpu = {**ref, "backend_params": {"threads": 1}}
    ov = {**ref, "backend": "openvino", "runtime": "openvino", "runtime_precision": "bf16"}
    for k, (q_ov, contended) in enumerate([(0.5, False), (0.4, False), (0.25, True)]):
        make_run(res, "mix", f"r{k + 1}", [
            record(**cpu, cell_id="cpu-base"), quant(1.0, **cpu, cell_id="cpu-q"),
            record(**ref, backend="onnxruntime", runtime="onnxruntime", runtime_precision="f32", latency_p50_ms=1.6,
                   cell_id="ort-base"),
            record(**ov, latency_p50_ms=0.8, cell_id="ov-base"),
            quant(q_ov, **ov, cell_id="ov-q", contended=contended, contended_reason=REASON if contended else None),
        ], ENV_A, started=f"2026-01-0{k + 1}T00:00:00+00:00", samples=False)
    page = (publish(res, tmp_path / "site", workers=1).site / "suites/mix.html").read_text()
    data = board_data(page)
    A, C, S = full_rows(data), data["configs"], data["strings"]
    rows = {(S[C["method"][cfg]], S[C["backend"][cfg]]): a for a, cfg in enumerate(A["cfg"])}
    assert sorted(rows) == [("baseline", "cpu(threads=1)"), ("baseline", "onnxruntime"),
                            ("baseline", "openvino · bf16"), ("quantize.dynamic_int8", "cpu(threads=1)"),
                            ("quantize.dynamic_int8", "openvino · bf16")]  # f32 is not said: it is the norm
    refs = {key: A["ref"][a] for key, a in rows.items()}
    assert refs == {("baseline", "cpu(threads=1)"): 1, ("quantize.dynamic_int8", "cpu(threads=1)"): 2,
                    ("baseline", "onnxruntime"): 1.25, ("baseline", "openvino · bf16"): 2.5,
                    ("quantize.dynamic_int8", "openvino · bf16"): 4.5}
    q = rows[("quantize.dynamic_int8", "openvino · bf16")]
    # the median of its two clean runs (2 / 0.5 and 2 / 0.4), their range; the contended 8x is left out
    assert (A["n"][q], A["out"][q], data["ranges"]["ref"][str(q)]) == (2, 1, [4, 5])
    assert A["speedup"][q] == 1.8 and A["speedup"][rows[("baseline", "onnxruntime")]] == 1  # against its own baseline
    every = [data["rows"]["ref"][i] for i, a in enumerate(data["rows"]["agg"]) if a == q]
    assert every == [8, 5, 4]  # every record keeps its own, newest run first
    assert data["reference"] == ["cpu(threads=1)"]
    assert "(the reference backend here: cpu(threads=1))" in page and '<option value="ref">vs reference' in page
    assert ["openvino · bf16", 1] in [s["key"][2:] for s in data["figures"]["fsp"]]


# --- what the pages load, and escaping ------------------------------------------------------------

def test_inline_pages_load_nothing_remote_and_carry_plotly_packed(results: Path, tmp_path: Path) -> None:
    site = publish(results, tmp_path / "site").site
    for page in site.rglob("*.html"):
        text = page.read_text().replace(PLOTLY_JS, "")  # the bundle names URLs in strings it never loads
        assert not REMOTE.search(text), page
        assert "@import" not in text and "url(" not in text, page
    suite = (site / "suites/quick.html").read_text()
    packed = re.search(r'<script type="application/octet-stream" id="plotly-gz">([A-Za-z0-9+/=]+)</script>', suite)
    assert gzip.decompress(base64.b64decode(packed.group(1))).decode() == PLOTLY_JS
    assert len(suite) < len(PLOTLY_JS) / 2  # packed: the whole page is well under half the bundle


def test_cdn_mode_references_the_cdn_everywhere_it_regenerates(results: Path, tmp_path: Path) -> None:
    done = publish(results, tmp_path / "site", plotly="cdn")
    assert done.reports == {"rendered": 3}  # reports follow --plotly too
    cdn = re.compile(r'<script charset="utf-8" src="https://cdn\.plot\.ly/plotly-[\d.]+\.min\.js" '
                     r'integrity="sha256-[A-Za-z0-9+/=]+" crossorigin="anonymous"></script>')
    for page in ("suites/quick.html", "runs/quick/run-a/report.html"):
        text = (done.site / page).read_text()
        assert len(cdn.findall(text)) == 1, page
        assert PLOTLY_JS not in text and 'id="plotly-gz"' not in text
    assert not REMOTE.search((done.site / "index.html").read_text())  # no figure there: no plotly at all


def test_hostile_names_are_text_in_html_and_inert_in_json(tmp_path: Path) -> None:
    res = tmp_path / "results"
    recs = methods(model=XSS)
    recs[1]["params"] = {"p": "<img src=x onerror=alert(1)>"}
    recs[2].update(status="failed", error=XSS)
    recs[1].update(contended=True, contended_reason=XSS)
    make_run(res, XSS, "run-x", recs, {**ENV_A, "hostname": XSS, "cpu_model": "<b>cpu</b>"})
    site = publish(res, tmp_path / "site").site
    pages = [site / "index.html", *(site / "suites").iterdir()]
    for page in pages:
        text = page.read_text()
        assert "<script>alert(1)" not in text and "<img src=x" not in text and "<b>cpu</b>" not in text, page
        blocks = re.findall(r"<script[^>]*>(.*?)</script>", text, re.S)
        assert all("alert(1)" not in b or "\\u003c/script\\u003e" in b for b in blocks)
    suite = next((site / "suites").iterdir())
    assert re.fullmatch(r"[A-Za-z0-9._-]+\.html", suite.name)  # the file name is made safe
    text = suite.read_text()
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in text  # headings show it as text
    data = board_data(text)
    assert XSS in data["strings"] and "p=<img src=x onerror=alert(1)>" in data["strings"]
    assert XSS in data["errors"].values() and XSS in data["reasons"].values()
    assert XSS in json.dumps(data["envs"]) and XSS in data["machines"][0]["label"]


# --- the CLI ---------------------------------------------------------------------------------------

def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["publish", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_the_index_and_a_summary(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run_cli(capsys, str(results), "--out", str(tmp_path / "site"))
    assert code == 0 and out.strip() == str((tmp_path / "site").resolve() / "index.html")
    assert "published 3 runs of 2 suites (12 records)" in err and "largest page suites/quick.html" in err


@pytest.mark.parametrize("case, expected", [
    ("missing", "no such folder; expected RESULTS_DIR to be a folder of runs"),
    ("results is a file", "is a file; expected RESULTS_DIR to be a folder of runs"),
    ("no runs", "no runs found; expected run folders holding records.jsonl"),
    ("out is a file", "is a file; expected SITE_DIR to be a folder"),
    ("out inside results", "is inside RESULTS_DIR"),
    ("results inside out", "contains RESULTS_DIR"),
    ("out is someone's folder", "exists and is not a site written by optbench publish"),
])
def test_user_errors_name_the_path_and_what_was_expected(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                         case: str, expected: str) -> None:
    res, out = tmp_path / "results", tmp_path / "site"
    res.mkdir()
    if case != "no runs":
        make_run(res, "quick", "r", methods(), ENV_A, samples=False)
    if case == "missing":
        res = tmp_path / "nowhere"
    elif case == "results is a file":
        res = tmp_path / "file.txt"
        res.write_text("x")
    elif case == "out is a file":
        out.write_text("x")
    elif case == "out inside results":
        out = res / "site"
    elif case == "results inside out":
        out = tmp_path
    elif case == "out is someone's folder":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    code, stdout, err = run_cli(capsys, str(res), "--out", str(out))
    assert code == 2 and stdout == "" and "Traceback" not in err
    assert err.startswith("optbench: error: ") and expected in err
    assert str(res) in err or str(out) in err
    if case == "out is someone's folder":
        assert (out / "notes.txt").read_text() == "mine"  # untouched


def test_publishing_real_runs_through_the_cli(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                                             optbench_runs_suites: None) -> None:
    import browser_support as support

    runs = support.real_runs(tmp_path_factory)
    for mode in ("inline", "cdn"):
        out = tmp_path / mode
        proc = support.cli("publish", str(runs.results), "--out", str(out), "--plotly", mode)
        assert proc.returncode == 0, proc.stderr
        tiny = (out / "suites/tiny.html").read_text()
        data = board_data(tiny)
        assert len(data["runs"]["id"]) == 3 and len(data["machines"]) == 2
        assert XSS in data["strings"] and "<script>alert(1)" not in tiny
        assert data["figures"]["fal"] and data["figures"]["fsp"] and data["figures"]["fre"] and data["figures"]["fsa"]
        assert any(v is not None for v in data["rows"]["lo"])  # intervals from the real samples
        training = (out / "suites/tiny-training.html").read_text()
        assert '<h2 id="training">Training</h2>' in training and training.count('data-figure="plot-') == 3
        if mode == "inline":
            for page in out.rglob("*.html"):
                assert not REMOTE.search(page.read_text().replace(PLOTLY_JS, "")), page
        else:
            assert "https://cdn.plot.ly/plotly-" in tiny and 'id="plotly-gz"' not in tiny


# --- helpers ---------------------------------------------------------------------------------------

def test_machine_fingerprint_tells_machines_apart_but_not_software() -> None:
    fp = machine_fingerprint(ENV_A)
    assert fp == machine_fingerprint({**ENV_A, "started_at": "later", "suite_git": {"commit": "x"}})
    assert fp == machine_fingerprint({**ENV_A, "torch": "2.13.0"})  # the same machine, as compare says
    for change in ({"hostname": "other"}, {"cpu_model": "other"}, {"cores": 2},
                   {"backends": {"cuda": {"gpus": [{"index": 0, "name": "NVIDIA H100"}]}}}):
        assert machine_fingerprint({**ENV_A, **change}) != fp, change
    assert machine_fingerprint({}) == "unknown" and re.fullmatch(r"[0-9a-f]{10}", fp)
    two = {**ENV_A, "backends": {"cuda": {"gpus": [{"name": "NVIDIA H100"}, {"name": "NVIDIA H100"}]}}}
    assert machine_label(two) == "alpha · CPU A · 8 cores · 2x NVIDIA H100"
    assert machine_label({}) == "unknown machine"


def test_median_interval_is_the_order_statistics_around_the_median() -> None:
    samples = np.arange(1, 1002) * 1_000_000  # 1..1001 ms, median 501
    lo, hi = median_interval_ms(samples[::-1])
    # n = 1001: ranks floor(500.5 - 2.2414 * sqrt(1001) / 2) = 465 and ceil(1 + 500.5 + 35.46) = 537
    assert (lo, hi) == (465.0, 537.0)
    assert median_interval_ms([5_000_000] * 3) == (5.0, 5.0)
    assert median_interval_ms([1_000_000, 9_000_000]) == (1.0, 9.0)  # few samples: the whole range
    assert median_interval_ms([]) is None
    # coverage: over many normal samples the 97.5% interval misses the true median about 2.5% of the time
    rng = np.random.default_rng(1)
    misses = sum(not (lo <= 10.0 <= hi) for lo, hi in (median_interval_ms(rng.normal(10e6, 1e6, 301))
                                                         for _ in range(2000)))
    assert 0.01 < misses / 2000 < 0.045


def test_a_run_without_samples_or_records_still_publishes(tmp_path: Path) -> None:
    res = tmp_path / "results"
    empty = res / "quick" / "empty"
    empty.mkdir(parents=True)
    (empty / "records.jsonl").write_text("")
    make_run(res, "quick", "r", methods(), None, samples=False)
    done = publish(res, tmp_path / "site")
    assert done.runs == 2 and done.records == 3
    data = board_data((done.site / "suites/quick.html").read_text())
    assert all(v is None for v in data["rows"]["lo"])
    assert data["machines"][0]["label"] == "unknown machine"
    assert "No records" in (done.site / "runs/quick/empty/report.html").read_text()


def test_the_suite_page_stays_compact(tmp_path: Path) -> None:
    """About 80 bytes of data per record, and under 200 per aggregated row (a cell on a machine, however
    many runs it has; the scale benchmark checks the 20,000-record page)."""
    res = tmp_path / "results"
    rng = np.random.default_rng(2)
    for k in range(10):
        recs = []
        for model in ("mlp", "cnn", "resnet18", "vit", "wide"):
            for batch in (1, 64):
                recs += [record(**{**r, "latency_p50_ms": r["latency_p50_ms"] * rng.lognormal(0, 0.1),
                                   "latency_p99_ms": rng.uniform(3, 9), "accuracy": rng.uniform(0.5, 1)})
                         for r in methods(model=model, batch=batch)]
        make_run(res, "big", f"run-{k:02d}", recs, {**ENV_A, "hostname": f"h{k % 3}"}, samples=False)
    done = publish(res, tmp_path / "site")
    page = (done.site / "suites/big.html").read_text()
    data = json.loads(re.search(r'id="board-data">(.*?)</script>', page, re.S).group(1))
    size = {k: len(json.dumps(v, separators=(",", ":"))) for k, v in data.items()}
    per_row = (size.pop("agg") + size.pop("ranges")) / data["nAgg"]
    assert data["nAgg"] == len(data["agg"]["at"]) == 90 and per_row < 200, per_row  # 30 cells x 3 machines, 3-4 runs
    assert sum(size.values()) / done.records < 110, sum(size.values()) / done.records
    assert os.path.getsize(done.site / "suites/big.html") < 2.6e6


def test_process_run_reads_one_run_into_rows(results: Path, tmp_path: Path) -> None:
    out = process_run(Task(str(results / "quick" / "run-b"), str(tmp_path / "t"), "inline"))
    assert out["report"] == "rendered" and len(out["rows"]) == 3
    config, status, error, p50, *_ = out["rows"][0]
    assert config[:3] == ("mlp", "digits", "baseline") and status == "ok" and error is None and p50 == 1


def test_suite_page_returns_its_data_for_the_size_budget(results: Path, tmp_path: Path) -> None:
    runs = find_runs(results)
    for run in runs:
        run.href = f"runs/x/{run.run_id}"
        run.records = process_run(Task(str(run.path), str(tmp_path / run.run_id), "inline"))["rows"]
    quick = [r for r in runs if r.suite == "quick"]
    page, data = suite_page("quick", quick, machines_of(runs), "inline")
    assert page.startswith("<!DOCTYPE html>") and len(data["rows"]["run"]) == 9


def test_errors_are_optbench_errors(tmp_path: Path) -> None:
    with pytest.raises(OptbenchError, match="expected inline or cdn"):
        publish(tmp_path, tmp_path / "site", plotly="svg")


def test_the_sweeping_pareto_front_matches_its_definition() -> None:
    """report.pareto_front sorts and sweeps (leaderboard figures hold thousands of points); it must
    keep exactly the points no other point dominates, as the quadratic definition does."""
    from harness.report.run_report import pareto_front

    def by_definition(pts: list[tuple]) -> list[tuple]:
        def dominated(p: tuple) -> bool:
            return any(q[0] <= p[0] and q[1] >= p[1] and (q[0] < p[0] or q[1] > p[1]) for q in pts)
        return sorted((p for p in pts if not dominated(p)), key=lambda p: (p[0], -p[1]))

    rng = np.random.default_rng(3)
    for _ in range(500):  # coarse grids, so ties in x, in y and whole duplicates are common
        pts = [(int(rng.integers(0, 6)) / 2, int(rng.integers(0, 6)) / 3, k) for k in range(int(rng.integers(0, 25)))]
        assert pareto_front(pts) == by_definition(pts)


def test_a_planted_report_and_linked_files_never_reach_the_site(results: Path, tmp_path: Path) -> None:
    """A report.html newer than the records used to be copied verbatim (its script then ran on the
    site), and env.json / run.json / suite.yaml were copied following symlinks (/etc/passwd)."""
    run = results / "quick" / "run-b"
    (run / REPORT_FILE).write_text("<html><script>alert('planted')</script></html>")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    (run / "suite.yaml").unlink()
    (run / "suite.yaml").symlink_to(secret)
    (run / "env.json").unlink()
    (run / "env.json").symlink_to(secret)
    with pytest.warns(UserWarning, match="symbolic link"):
        done = publish(results, tmp_path / "site")
    out = done.site / "runs/quick/run-b"
    assert "planted" not in (out / REPORT_FILE).read_text()
    assert not (out / "suite.yaml").exists() and not (out / "env.json").exists()
    assert not [p for p in done.site.rglob("*") if p.is_file() and "root:x:0:0" in p.read_text(errors="replace")]
    assert json.loads((out / "run.json").read_text())  # its own run.json, re-serialised, is still there
