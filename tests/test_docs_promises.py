"""What the README and the docs promise in words: the set-up commands are the ones CI runs, and
the error example is what ``optbench validate`` prints. (The plugin pages' code is run by
test_docs_examples.py.)"""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
SUITES_PAGE = (REPO / "docs" / "suites.md").read_text()


def block_after(text: str, marker: str, lang: str) -> str:
    """The first ```lang fenced block after ``marker``."""
    start = text.index(marker)
    m = re.compile(rf"```{lang}\n(.*?)```", re.S).search(text, start)
    assert m, (marker, lang)
    return m.group(1)


def test_the_readme_set_up_commands_are_what_ci_runs():
    quickstart = block_after(README, "Run the quickstart suite", "bash").strip()
    tests = block_after(README, "Run the tests:", "bash").strip()
    install = "pip install torch==2.14.1 torchvision==0.29.1 -r requirements.txt"
    assert quickstart == f"{install} && optbench run suites/quickstart.yaml"
    assert tests == f"{install} && pytest"
    ci = (REPO / ".ci" / "run").read_text()
    assert "torch==2.14.1 torchvision==0.29.1 -r requirements.txt" in ci and "\npytest\n" in ci


def test_error_example_matches_what_validate_prints(tmp_path, capsys, monkeypatch):
    from harness.cli import main

    shown = block_after(SUITES_PAGE, "all problems at once:", "")
    (tmp_path / "s.yaml").write_text(
        "name: t\ndatasets: [digits]\nmodels:\n  - name: mlp\nmethods:\n  - name: prune.magnitud\n"
        "measure:\n  batch_sizes: [1]\n  batch_size: [1]\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "s.yaml"]) == 2
    assert capsys.readouterr().err == shown
