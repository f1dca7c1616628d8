"""``optbench publish``: a static leaderboard site from every run under a results folder.

The site, written to SITE_DIR:

- ``index.html``: every suite, run and machine, with dates;
- ``suites/<suite>.html``: one page per suite, the leaderboard across its runs (sortable,
  filterable, "best under constraints") and its figures. A row is a cell (and batch size) on
  one machine: the median over its clean runs (status ok, not contended), the range over them
  and how many were left out, with the runs behind it (each linked to its report) one click
  away; a row whose every run was contended is marked, and hidden and left out of the fronts
  and answers unless the page's "show contended rows" is ticked;
- ``runs/<suite>/<run>/``: each run's ``report.html``, rendered from its records (a report
  file in a run folder is never copied: it could be anyone's page), beside its ``env.json``
  and ``run.json`` (re-serialised) and ``suite.yaml``, each taken only when it is a file of
  the run folder itself (never through a symbolic link), so the machine and software behind a
  row are one click away.

It opens from disk and from any static host: nothing is fetched unless ``--plotly cdn``.
With ``--plotly inline`` plotly.js travels inside each suite page gzip-compressed and
base64-encoded (about 2 MB instead of 4.8 MB), unpacked by the browser's own
DecompressionStream; the run reports inside the site load the site's one copy,
``assets/plotly.min.js``, a local file (a report that carried its own 4.8 MB would make
200 runs a 1 GB site).

The suite page must stay small with tens of thousands of records, so its data is columnar
JSON of only the fields it shows (every record's, and the aggregated rows' beside them), numbers rounded to four significant digits and strings
stored once; everything else about a record is in its run's report. Figures are drawn in
the browser from the same data; the Python side decides which record goes in which figure
and computes the aggregated rows (``harness.site.data.aggregate``) and the Pareto fronts
(``harness.report.run_report.pareto_front``), so that logic is tested here once. Every string from a suite, a plugin or a record is escaped for HTML, and the
embedded JSON cannot close its ``<script>`` tag; the page's JavaScript writes text with
``textContent`` only.

Runs on different machines are never ranked together silently: each run carries a machine
fingerprint (``machine_fingerprint``) from its env.json; figures keep one trace and one
front per machine, and the page says so whenever a view mixes machines.

The work is in three modules, each using only the ones before it: ``harness.site.runs`` finds
the runs and describes their machines; ``harness.site.data`` reads each run (``process_run``,
in a process pool) and builds a suite page's data (``suite_data``); ``harness.site.pages``
writes the HTML (``index_page``, ``suite_page``). This module checks the paths, builds the
site in a temporary folder and swaps it in (``publish``, ``optbench publish``), and re-exports
the names callers import from ``harness.site.publish``.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import OptbenchError
from harness.site.data import (
    PLOTLY_ASSET,
    Task,
    median_interval_ms,
    process_all,
    process_run,
)
from harness.site.pages import index_page, suite_page
from harness.site.runs import (
    Run,
    find_runs,
    machine_fingerprint,
    machine_label,
    machines_of,
    slug,
)

__all__ = [
    "PLOTLY_ASSET",
    "SITE_MARKER",
    "Published",
    "Run",
    "Task",
    "machines_of",
    "cmd_publish",
    "find_runs",
    "index_page",
    "machine_fingerprint",
    "machine_label",
    "median_interval_ms",
    "process_run",
    "publish",
    "suite_page",
]

SITE_MARKER = ".optbench-site"


# --- publish --------------------------------------------------------------------------------

def _check_paths(results_dir: Path, out: Path) -> tuple[Path, Path]:
    if not results_dir.exists():
        raise OptbenchError(f"{results_dir}: no such folder; expected RESULTS_DIR to be a folder of runs "
                            f"(<suite>/<run-id>/records.jsonl, as `optbench run --results` writes them)")
    if not results_dir.is_dir():
        raise OptbenchError(f"{results_dir}: is a file; expected RESULTS_DIR to be a folder of runs "
                            f"(<suite>/<run-id>/records.jsonl)")
    if out.exists() and not out.is_dir():
        raise OptbenchError(f"--out {out}: is a file; expected SITE_DIR to be a folder (new, empty, or a site "
                            f"written by optbench publish)")
    res, site = results_dir.resolve(), out.resolve()
    if site == res or site.is_relative_to(res):
        raise OptbenchError(f"--out {out}: is inside RESULTS_DIR {results_dir}; write the site outside the "
                            f"results (e.g. --out site), so a site is never read back as runs")
    if res.is_relative_to(site):
        raise OptbenchError(f"--out {out}: contains RESULTS_DIR {results_dir}; publishing replaces SITE_DIR, "
                            f"so it must be a folder of its own")
    if site.is_dir() and any(site.iterdir()) and not (site / SITE_MARKER).exists():
        raise OptbenchError(f"--out {out}: exists and is not a site written by optbench publish (no {SITE_MARKER} "
                            f"in it); expected a new or empty folder, since publishing replaces its content")
    return res, site



@dataclass
class Published:
    site: Path
    runs: int
    suites: int
    records: int
    seconds: float
    pages: dict[str, int]  # page path relative to the site -> bytes
    reports: Counter


def publish(results_dir: Path, out: Path, plotly: str = "inline", workers: int | None = None) -> Published:
    """Build the site of every run under ``results_dir`` into ``out`` (replacing an earlier site there)."""
    t0 = time.perf_counter()
    if plotly not in ("inline", "cdn"):
        raise OptbenchError(f"--plotly {plotly}: expected inline or cdn")
    results_dir, out = _check_paths(Path(results_dir), Path(out))
    runs = find_runs(results_dir)
    if not runs:
        raise OptbenchError(f"{results_dir}: no runs found; expected run folders holding records.jsonl "
                            f"(<suite>/<run-id>/records.jsonl, as `optbench run --results {results_dir}` writes them)")
    suite_slugs: dict[str, str] = {}
    taken: set[str] = set()
    for suite in sorted({r.suite for r in runs}):
        suite_slugs[suite] = slug(suite, taken)
    run_taken: dict[str, set[str]] = {}
    for run in sorted(runs, key=lambda r: r.rel):
        run.href = f"runs/{suite_slugs[run.suite]}/{slug(run.run_id, run_taken.setdefault(run.suite, set()))}"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        results = process_all([Task(str(r.path), str(tmp / r.href), plotly) for r in runs], workers)
        for run, res in zip(runs, results, strict=True):
            run.records, run.report = res["rows"], res["report"]
            run.training = any(config[-1] for config, *_ in run.records)
        machines = machines_of(runs)
        suites: dict[str, list[Run]] = {}
        for run in sorted(runs, key=lambda r: (str(r.started or ""), r.run_id), reverse=True):
            suites.setdefault(run.suite, []).append(run)
        pages = {}
        (tmp / "suites").mkdir()
        for suite, rs in suites.items():
            page, _ = suite_page(suite, rs, machines, plotly)
            name = f"suites/{suite_slugs[suite]}.html"
            pages[name] = len(page.encode("utf-8"))
            (tmp / name).write_text(page, encoding="utf-8")
        generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        index = index_page(suites, suite_slugs, machines, results_dir.name, generated)
        (tmp / "index.html").write_text(index, encoding="utf-8")
        pages["index.html"] = len(index.encode("utf-8"))
        if plotly == "inline":
            from plotly.offline import get_plotlyjs

            (tmp / PLOTLY_ASSET).parent.mkdir(parents=True, exist_ok=True)
            (tmp / PLOTLY_ASSET).write_text(get_plotlyjs(), encoding="utf-8")
        (tmp / SITE_MARKER).write_text(json.dumps({"generator": "optbench publish", "published": generated,
                                                    "runs": len(runs)}) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a static host must be able to serve it
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Published(out, len(runs), len(suites), sum(len(r.records) for r in runs), time.perf_counter() - t0,
                     pages, Counter(r.report for r in runs))


def _swap(new: Path, out: Path) -> None:
    """Put the finished site in place; an earlier one is moved aside first, then removed."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(out, old)
    os.replace(new, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def cmd_publish(args: Any) -> int:
    """``optbench publish RESULTS_DIR --out SITE_DIR [--plotly inline|cdn]``; prints the index path."""
    import sys

    done = publish(Path(args.results_dir), Path(args.out), getattr(args, "plotly", "inline") or "inline")
    largest = max((v, k) for k, v in done.pages.items())
    print(f"published {done.runs} run{'s' * (done.runs != 1)} of {done.suites} suite{'s' * (done.suites != 1)} "
          f"({done.records} records) in {done.seconds:.1f} s; reports: "
          + ", ".join(f"{n} {how}" for how, n in sorted(done.reports.items()))
          + f"; largest page {largest[1]} ({largest[0] / 1e6:.2f} MB)", file=sys.stderr)
    print(done.site / "index.html")
    return 0
