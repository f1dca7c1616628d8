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


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real console entry point in a fresh process (``python -m harness``)."""
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
