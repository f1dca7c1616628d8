"""What the browser tests and the publish tests share: real runs made through the CLI, and a
headless Chromium that is found, or installed, or else the test is skipped.

The test modules ``import browser_support`` (tests/ is on sys.path, as for
optbench_test_plugins), so they share this module object and the runs are made once per
session, whichever module asks first.

Chromium: Debian's ``chromium`` (``/usr/bin/chromium``, or ``chromium`` / ``chromium-browser``
on PATH), driven by Playwright's Python client. When it is missing and we are root with
apt-get, it is installed (``apt-get install -y chromium``); a missing Playwright client is
pip-installed. If that is still impossible the tests skip, except under
``OPTBENCH_REQUIRE_BROWSER=1`` (CI), where they fail.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
XSS = "</script><script>alert(1)</script>"
#: A second "machine": a copy of the compression run whose env.json says it ran elsewhere.
OTHER_HOST, OTHER_CPU = "bench-other", "Other CPU 9000 (test)"

COMPRESSION_SUITE = """\
name: tiny
datasets: [digits]
models:
  - name: mlp
    params: {hidden: [64], epochs: 5}
methods:
  - name: prune.magnitude
    params: {sparsity: [0.5, 0.9]}
  - name: quantize.dynamic_int8
backends: [cpu]
measure:
  batch_sizes: [1, 8]
  warmup: {min_iters: 2, min_seconds: 0.0}
  repeat: {min_iters: 20, min_seconds: 0.05}
  accuracy: true
accuracy_gate: {relative: 0.01}
execution: {timeout_s: 120}
"""
TRAINING_SUITE = """\
name: tiny-training
seeds: [0, 1]
datasets: [digits]
models:
  - name: mlp
    params: {hidden: [64], epochs: 5}
    train: {epochs: 2, batch_size: 64, target_accuracy: 0.4}
methods:
  - name: optim.sgd
    params: {lr: {grid: [0.05, 0.5]}}
backends: [cpu]
measure:
  batch_sizes: [1]
  warmup: {min_iters: 2, min_seconds: 0.0}
  repeat: {min_iters: 10, min_seconds: 0.0}
  accuracy: true
execution: {timeout_s: 120}
"""


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m harness ...`` in a fresh process, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=timeout)


@dataclass
class Runs:
    """A results folder with a compression run, the same run copied as if made a minute later on a
    second machine, a copy made "earlier" whose records carry a hostile model id, and a training
    run (an optimizer over two seeds)."""

    results: Path
    compression: Path
    other_machine: Path
    hostile: Path
    training: Path


_RUNS: dict[str, Runs] = {}


def real_runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Made once per session by the runner ``optbench run`` calls, in this process (the second run reuses
    the first one's forkserver), then shared."""
    if "runs" in _RUNS:
        return _RUNS["runs"]
    import datetime as dt

    root = tmp_path_factory.mktemp("published-runs")
    results = root / "results"
    from harness.testing import run_suite_file

    made = {}
    for name, text in (("tiny", COMPRESSION_SUITE), ("tiny-training", TRAINING_SUITE)):
        suite = root / f"{name}.yaml"
        suite.write_text(text)
        made[name] = run_suite_file(suite, results, root / "cache")
    started = dt.datetime.fromisoformat(json.loads((made["tiny"] / "run.json").read_text())["started_at"])
    later = (started + dt.timedelta(minutes=1)).isoformat()
    other = copy_run(made["tiny"], "20991231-000000-othr", hostname=OTHER_HOST, cpu_model=OTHER_CPU, started_at=later)
    hostile = copy_run(made["tiny"], "20000101-000000-xss", started_at="2000-01-01T00:00:00+00:00", model=XSS)
    _RUNS["runs"] = Runs(results, made["tiny"], other, hostile, made["tiny-training"])
    return _RUNS["runs"]


def copy_run(run_dir: Path, run_id: str, *, started_at: str, hostname: str | None = None,
             cpu_model: str | None = None, model: str | None = None) -> Path:
    """A copy of a run under another id and start time (its report stays behind: it would not match),
    as if made on another machine when ``hostname`` and ``cpu_model`` are given; ``model`` renames the
    model in every record."""
    target = run_dir.parent / run_id
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("report.html"))
    env = json.loads((target / "env.json").read_text())
    env["started_at"] = started_at
    env.update({k: v for k, v in (("hostname", hostname), ("cpu_model", cpu_model)) if v is not None})
    (target / "env.json").write_text(json.dumps(env, indent=2))
    meta = json.loads((target / "run.json").read_text())
    meta.update(run_id=run_id, started_at=started_at, finished_at=started_at)
    (target / "run.json").write_text(json.dumps(meta, indent=2))
    lines = []
    for line in (target / "records.jsonl").read_text().splitlines():
        r = json.loads(line)
        r["run_id"] = run_id
        if model is not None:
            r["model"] = model
        lines.append(json.dumps(r))
    (target / "records.jsonl").write_text("\n".join(lines) + "\n")
    return target


# --- the browser ---------------------------------------------------------------------------

def unavailable(reason: str) -> None:
    if os.environ.get("OPTBENCH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"OPTBENCH_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def ensure_chromium() -> str:
    """The Chromium executable, installing Debian's package and Playwright's client if needed."""
    path = chromium_path()
    if path is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(install, capture_output=True, env=env, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, env=env, timeout=600)
            subprocess.run(install, capture_output=True, env=env, timeout=900)
        path = chromium_path()
    if path is None:
        unavailable("no Chromium (apt-get install chromium) and it could not be installed here")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "playwright"], capture_output=True, timeout=900)
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            unavailable("Playwright's Python client is missing and `pip install playwright` failed")
    return path


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright Browser) for the duration of the block."""
    path = ensure_chromium()
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        except Error as exc:
            unavailable(f"Chromium at {path} does not start: {exc}")
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Visit:
    """A page and what went wrong on it: console errors, uncaught exceptions, dialogs (alert())."""

    page: Any
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def wait_until(page: Any, expression: str, timeout: int = 30_000) -> None:
    """Poll a JavaScript expression until it is truthy. Playwright's own wait_for_function turns its
    predicate into a function with eval inside the page, which the pages' Content-Security-Policy
    (rightly) refuses; page.evaluate goes through the debugger protocol, which a page's CSP does not govern."""
    import time

    deadline = time.monotonic() + timeout / 1000
    while True:
        if page.evaluate(expression):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout} ms: {expression}")
        page.wait_for_timeout(50)


def visit(browser: Any, url: str, *, width: int = 1400, height: int = 1000, wait_figures: bool = False) -> Visit:
    page = browser.new_page(viewport={"width": width, "height": height})
    v = Visit(page)
    page.on("console", lambda m: v.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: v.errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: v.errors.append(f"request failed: {r.url} {r.failure}"))

    def on_dialog(d: Any) -> None:
        v.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()
    page.on("dialog", on_dialog)
    page.goto(url, wait_until="load")
    if wait_figures:
        wait_until(page, "document.body.dataset.figures !== undefined", timeout=60_000)
    return v
