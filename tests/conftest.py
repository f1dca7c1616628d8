from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The tests never touch a network: Hugging Face libraries look in their caches only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SUITES = REPO / "suites"


#: The test being set up or run: ``run_cli`` refuses to run a suite for a test the fast lane holds.
_CURRENT: list[pytest.Item | None] = [None]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    _CURRENT[0] = item
    return (yield)


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300,
            runs_suite: bool | None = None) -> subprocess.CompletedProcess:
    """The real console entry point in a fresh process (``python -m harness``). ``run`` (a whole suite) only for
    a test marked slow: request the ``optbench_runs_suites`` fixture (harness.testing), which marks it;
    ``runs_suite=False`` for a ``run`` refused before anything runs (a suite that does not validate)."""
    item = _CURRENT[0]
    runs = (bool(args) and args[0] == "run") if runs_suite is None else runs_suite
    if runs and item is not None and item.get_closest_marker("slow") is None:
        raise AssertionError(f"{item.nodeid} runs a suite through the CLI but is not marked slow: request the "
                             "optbench_runs_suites fixture (or mark it slow), so `pytest -m 'not slow'` stays fast")
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=full_env,
        cwd=cwd or REPO, timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def write_suite(tmp_path):
    def write(text: str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def misbehaving(optbench_plugin):
    import optbench_test_plugins

    return optbench_plugin(optbench_test_plugins, name="misbehaving")
