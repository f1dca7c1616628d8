"""The README's promises: its plugin example works as written, its error example is real."""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def block_after(marker: str, lang: str) -> str:
    """The first ```lang fenced block after ``marker`` in the README."""
    start = README.index(marker)
    m = re.compile(rf"```{lang}\n(.*?)```", re.S).search(README, start)
    assert m, (marker, lang)
    return m.group(1)


@pytest.fixture
def example_plugin(tmp_path, monkeypatch):
    (tmp_path / "optbench_fp16_round.py").write_text(block_after("`optbench_fp16_round.py`", "python"))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("optbench_fp16_round", None)


def test_plugin_example_pyproject_declares_an_optbench_entry_point():
    project = tomllib.loads(block_after("`pyproject.toml`", "toml"))
    assert project["project"]["entry-points"]["optbench"] == {"fp16_round": "optbench_fp16_round"}


def test_plugin_example_and_its_test_run_as_written(example_plugin, optbench_plugin, optbench_run, tiny_suite):
    namespace: dict = {}
    exec(compile(block_after("### Testing a plugin", "python"), "README-test", "exec"), namespace)
    namespace["test_rounding_keeps_accuracy"](optbench_plugin, optbench_run, tiny_suite)


def test_error_example_matches_what_validate_prints(tmp_path, capsys, monkeypatch):
    from harness.cli import main

    shown = block_after("all problems at once:", "")
    (tmp_path / "s.yaml").write_text(
        "name: t\ndatasets: [digits]\nmodels:\n  - name: mlp\nmethods:\n  - name: prune.magnitud\n"
        "measure:\n  batch_sizes: [1]\n  batch_size: [1]\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "s.yaml"]) == 2
    assert capsys.readouterr().err == shown
