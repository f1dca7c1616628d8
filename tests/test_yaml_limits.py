"""Hostile suite YAML: alias bombs, deep nesting, huge files and duplicate keys are refused.

Each refusal is a SuiteError (exit 2, no traceback) naming the file, the limit and its
value, and the line, raised before any Python object is built from the YAML.
"""
from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest

from harness.errors import SuiteError
from harness.results.compare import gate_of
from harness.suite.loader import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_NODES,
    LineMap,
    load_suite,
    load_yaml,
    parse_suite,
)

REPO = Path(__file__).resolve().parents[1]

VALID = """\
name: t
datasets: [digits]
models:
  - name: mlp
methods:
  - name: prune.magnitude
    params: {sparsity: [0.5, 0.9]}
"""


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """Billion laughs: each level a list of ``width`` aliases to the one before (9**9 leaves)."""
    lines = ["name: bomb", "a: &a [" + ", ".join(["lol"] * width) + "]"]
    names = "abcdefghijklmnopqrstuvwxyz"[:levels]
    for prev, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * width) + "]")
    lines.append(f"datasets: *{names[-1]}")
    return "\n".join(lines) + "\n"


def refusal(exc: pytest.ExceptionInfo[SuiteError]) -> str:
    return str(exc.value)


def test_alias_bomb_is_refused_quickly_through_the_cli(cli, write_suite):
    path = write_suite(alias_bomb())
    assert path.stat().st_size < 700  # the auditor's bomb was 613 bytes
    start = time.perf_counter()
    done = cli("validate", str(path), timeout=60)
    elapsed = time.perf_counter() - start
    assert elapsed < 5, f"alias bomb took {elapsed:.1f} s"
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert f"{path}:6: more YAML nodes than the limit of {MAX_NODES} (aliases expanded)" in done.stderr, done.stderr


def test_alias_bomb_is_refused_before_it_is_expanded():
    start = time.perf_counter()
    with pytest.raises(SuiteError) as exc:
        parse_suite(alias_bomb(levels=20), "bomb.yaml")  # 9**20 leaves if anything expanded it
    assert time.perf_counter() - start < 0.5
    assert f"limit of {MAX_NODES}" in refusal(exc)


def test_deep_nesting_is_refused_through_the_cli(cli, write_suite):
    path = write_suite("name: deep\ndatasets: " + "[" * 1000 + "]" * 1000 + "\n")
    done = cli("validate", str(path), timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr, done.stderr
    assert f"{path}:2: YAML nested deeper than the limit of {MAX_DEPTH} levels" in done.stderr, done.stderr


def test_nesting_is_counted_through_aliases():
    half = MAX_DEPTH // 2 + 4
    text = ("name: t\na: &a " + "[" * half + "]" * half + "\n"
            "datasets: " + "[" * half + "*a" + "]" * half + "\n")
    with pytest.raises(SuiteError) as exc:
        parse_suite(text, "s.yaml")
    assert f"s.yaml:3: YAML nested deeper than the limit of {MAX_DEPTH} levels" in refusal(exc)


def test_recursive_alias_is_refused():
    with pytest.raises(SuiteError) as exc:
        parse_suite("name: t\ndatasets: &d [digits, *d]\n", "s.yaml")
    assert "s.yaml:2: recursive alias *d" in refusal(exc)


def test_too_many_nodes_without_aliases_is_refused():
    text = "name: t\ndatasets: [" + ", ".join(["digits"] * MAX_NODES) + "]\n"
    assert len(text) < MAX_FILE_BYTES
    with pytest.raises(SuiteError) as exc:
        parse_suite(text, "s.yaml")
    assert f"s.yaml:2: more YAML nodes than the limit of {MAX_NODES}" in refusal(exc)


def test_oversized_file_is_refused_unread(write_suite):
    path = write_suite("name: big\ndatasets: [" + "digits, " * (MAX_FILE_BYTES // 8) + "digits]\n")
    size = path.stat().st_size
    start = time.perf_counter()
    with pytest.raises(SuiteError) as exc:
        load_suite(path)
    assert time.perf_counter() - start < 0.5
    text = refusal(exc)
    assert f"{path}: the file is larger than the limit of {MAX_FILE_BYTES} bytes" in text, text
    assert f"given:    {size} bytes" in text, text
    with pytest.raises(SuiteError, match=f"larger than the limit of {MAX_FILE_BYTES} bytes"):
        parse_suite(path.read_text(), str(path))  # text handed over directly (tests, tools) too


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_endless_file_is_read_only_up_to_the_limit():
    with pytest.raises(SuiteError) as exc:
        load_suite("/dev/zero")
    assert f"given:    more than {MAX_FILE_BYTES} bytes" in refusal(exc)


def test_duplicate_keys_are_refused_naming_both_lines():
    text = VALID + "measure:\n  batch_sizes: [1]\nexecution: {timeout_s: 60}\nmeasure:\n  batch_sizes: [64]\n"
    with pytest.raises(SuiteError) as exc:
        parse_suite(text, "s.yaml")
    assert "s.yaml:11: duplicate key 'measure' at line 11; first at line 8" in refusal(exc)
    with pytest.raises(SuiteError, match="s.yaml:3: duplicate key 'sparsity' at line 3; first at line 2"):
        parse_suite("methods:\n  - {name: prune.magnitude, params: {sparsity: 0.5,\n    sparsity: 0.9}}\n", "s.yaml")
    with pytest.raises(SuiteError, match="duplicate key 1 at line 2; first at line 1"):
        load_yaml("1: a\n0x1: b\n", "s.yaml")  # compared as the keys they construct to


def test_anchors_and_merge_keys_within_the_limits_still_load():
    text = ("name: t\n"
            "x-measure: &m {batch_sizes: [1, 64], accuracy: true}\n"
            "datasets: [digits]\n"
            "models: [{name: mlp}]\n"
            "methods: [{name: prune.magnitude}]\n"
            "measure:\n"
            "  <<: *m\n"
            "  batch_sizes: [8]\n")  # overriding a merged key is not a duplicate
    data = load_yaml(text, "s.yaml")
    assert data["measure"] == {"batch_sizes": [8], "accuracy": True}
    lines = LineMap(text)
    assert lines.line(("measure", "batch_sizes")) == 8
    assert lines.line(("models", 0, "name")) == 4


def test_gate_of_a_run_folder_with_a_bomb_is_none_and_quick(tmp_path):
    (tmp_path / "suite.yaml").write_text(alias_bomb().replace("datasets:", "accuracy_gate:"))
    start = time.perf_counter()
    assert gate_of(tmp_path) is None
    assert time.perf_counter() - start < 0.5
    (tmp_path / "suite.yaml").write_text("name: t\naccuracy_gate: {relative: 0.01}\n")
    assert gate_of(tmp_path).relative == 0.01


def test_the_quickstart_suite_still_validates(cli):
    done = cli("validate", str(REPO / "suites" / "quickstart.yaml"), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    suite, _ = load_suite(REPO / "suites" / "quickstart.yaml")
    assert suite.name == "quickstart"
