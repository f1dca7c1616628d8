"""The ``python`` model reference: a user's own model file or module, no plugin needed, through
the real CLI. Editing the file retrains it; a factory that does not import is a validation error
that names the suite line and the file and line that failed."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

MODEL = """\
import math

from torch import nn


def build(hidden=32, num_classes=2, input_shape=(1,)):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))
"""
MEASURE = {"batch_sizes": [1], "warmup": {"min_iters": 2, "min_seconds": 0.0},
           "repeat": {"min_iters": 5, "min_seconds": 0.0}}


def write(folder: Path, model: str = MODEL, **entry) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mymodel.py").write_text(model)
    suite = {"name": "mine", "datasets": ["digits"],
             "models": [{"name": "python", "id": "mine",
                         "params": {"factory": "mymodel.py:build", "kwargs": {"hidden": 48}, "epochs": 8}, **entry}],
             "methods": [{"name": "quantize.dynamic_int8"}], "backends": [{"name": "cpu", "params": {"threads": 1}}],
             "measure": MEASURE}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def run(cli, suite: Path, tmp_path: Path) -> tuple[Path, list[dict]]:
    done = cli("run", str(suite), "--results", str(tmp_path / "results"), "-q",
               env={"OPTBENCH_CACHE_DIR": str(tmp_path / "cache")}, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1]).parent
    return run_dir, [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]


def model_log(run_dir: Path, records: list[dict]) -> str:
    baseline = next(r for r in records if r["method"] == "baseline")
    return (run_dir / "cells" / baseline["cell_id"] / "log.txt").read_text()


def test_a_model_file_beside_the_suite_is_trained_cached_and_retrained_after_an_edit(optbench_run, tmp_path):
    # in this process (the runner the CLI calls): the CLI's own path is what the tests below run
    suite = write(tmp_path / "project")
    first = optbench_run(suite)
    assert first.exit_code == 0 and [r["status"] for r in first.records] == ["ok", "ok"]
    baseline, int8 = first.records
    assert baseline["model"] == "mine" and baseline["model_name"] == "python" and baseline["accuracy"] > 0.85
    assert int8["cosine"] > 0.99 and int8["accuracy"] > 0.85
    assert "trained in" in first.log(baseline)
    copy = yaml.safe_load((first.run_dir / "suite.yaml").read_text())  # what a --resume re-reads
    assert copy["models"][0]["params"]["factory"] == f"{(tmp_path / 'project' / 'mymodel.py').resolve()}:build"

    data = yaml.safe_load(suite.read_text())
    data["methods"] = []  # the baseline alone shows where its weights came from
    suite.write_text(yaml.safe_dump(data, sort_keys=False))
    again = optbench_run(suite)
    assert "cached weights" in again.log(again.records[0])
    assert again.records[0]["accuracy"] == baseline["accuracy"]

    (tmp_path / "project" / "mymodel.py").write_text(MODEL.replace("nn.ReLU()", "nn.Tanh()"))
    edited = optbench_run(suite)
    assert "trained in" in edited.log(edited.records[0]), "an edited model file must not load the old weights"
    assert edited.records[0]["cell_id"] == baseline["cell_id"]  # the same cell; its weights follow the code


def test_epochs_0_uses_the_module_as_built_and_a_checkpoint_loads(cli, tmp_path):
    import torch

    project = tmp_path / "project"
    project.mkdir()
    exec(compile(MODEL, "mymodel", "exec"), ns := {})
    torch.manual_seed(0)
    torch.save(ns["build"](hidden=48, num_classes=10, input_shape=(1, 8, 8)).state_dict(), project / "w.pt")
    suite = write(project, checkpoint="w.pt")
    data = yaml.safe_load(suite.read_text())
    entry = data["models"][0]
    entry["params"]["epochs"] = 0
    data["models"] = [entry, {**{k: v for k, v in entry.items() if k != "checkpoint"}, "id": "as-built"}]
    data["methods"] = []
    suite.write_text(yaml.safe_dump(data))
    run_dir, records = run(cli, suite, tmp_path)
    logs = {r["model"]: (run_dir / "cells" / r["cell_id"] / "log.txt").read_text() for r in records}
    assert "checkpoint" in logs["mine"] and "as built (epochs 0" in logs["as-built"]
    by = {r["model"]: r for r in records}
    assert by["mine"]["accuracy"] is not None
    assert by["as-built"]["accuracy"] < 0.5  # untrained: about chance, and reported as measured


def test_a_module_reference_and_the_arguments_the_factory_asks_for(cli, tmp_path, optbench_runs_suites):
    lib = tmp_path / "lib" / "nets"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text("")
    (lib / "tiny.py").write_text(textwrap.dedent("""
        from torch import nn

        def make(data, width=16):
            n = 1
            for d in data.input_shape:
                n *= d
            return nn.Sequential(nn.Flatten(), nn.Linear(n, width), nn.ReLU(), nn.Linear(width, data.num_classes))
    """))
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "mod", "datasets": ["digits"], "backends": [{"name": "cpu", "params": {"threads": 1}}],
        "models": [{"name": "python", "params": {"factory": "nets.tiny:make", "kwargs": {"width": 24}, "epochs": 20}}],
        "measure": MEASURE}))
    done = cli("run", str(suite), "--results", str(tmp_path / "results"), "-q", cwd=tmp_path,
               env={"PYTHONPATH": str(tmp_path / "lib"), "OPTBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    (records_file,) = (tmp_path / "results").glob("mod/*/records.jsonl")
    (baseline,) = [json.loads(line) for line in records_file.read_text().splitlines()]
    assert baseline["status"] == "ok" and baseline["accuracy"] > 0.8
    assert baseline["params_count"] == 64 * 24 + 24 + 24 * 10 + 10  # built from the data it was given


def test_validate_names_the_suite_line_and_the_file_and_line_that_failed(cli, tmp_path):
    cases = {
        "def build(:\n": "SyntaxError: invalid syntax (mymodel.py, line 1)",
        "import math\nx = undefined_name\n": "NameError: name 'undefined_name' is not defined",
    }
    for source, message in cases.items():
        suite = write(tmp_path / "p", model=source)
        done = cli("validate", str(suite), cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        lines = [i for i, line in enumerate(suite.read_text().splitlines(), 1) if "mymodel.py:build" in line]
        assert f"suite.yaml:{lines[0]} at models[0].params.factory" in done.stderr, done.stderr
        assert message in done.stderr, done.stderr
    assert f"({(tmp_path / 'p' / 'mymodel.py').resolve()}, line 2)" in done.stderr
    suite = write(tmp_path / "q")
    data = yaml.safe_load(suite.read_text())
    data["models"][0]["params"]["factory"] = "mymodel.py:biuld"
    suite.write_text(yaml.safe_dump(data))
    done = cli("validate", str(suite), cwd=tmp_path)
    assert done.returncode == 2 and "has no attribute 'biuld'; its callables: build" in done.stderr
    data["models"][0]["params"]["factory"] = "mymodel:build"
    suite.write_text(yaml.safe_dump(data))
    done = cli("validate", str(suite), cwd=tmp_path)
    assert "No module named 'mymodel'; a file is named with its path: 'path/to/file.py:callable'" in done.stderr
