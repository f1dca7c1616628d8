"""pytest plugin for plugin authors (installed as the ``optbench`` pytest11 entry point).

Fixtures:

- ``optbench_plugin``: ``optbench_plugin(obj, name="mine")`` registers a plugin for this
  test only (unregistered afterwards, even on failure). Cells run in their own
  processes and re-create it by reference, so define it at module level of an
  importable module (a test module is fine). A plugin already loaded through its
  installed entry point (the same module) is not registered twice: the call is a no-op.
- ``optbench_run``: ``optbench_run(suite)`` runs a suite (a dict, YAML text or a path)
  in a temporary results folder, a dict without ``measure`` with fast measurement
  settings, and returns a ``SuiteRun`` (exit_code, run_dir, records, by_method, log,
  curves); ``optbench_run(None, resume=run_dir)`` resumes a run.
- ``tiny_suite``: ``tiny_suite("prune.magnitude", {"sparsity": [0.5]})`` builds a
  small digits x mlp x cpu suite dict around one method (None: the baseline alone);
  ``model``, ``dataset`` and ``backend`` (with ``*_params``) swap in a plugin under test,
  ``train={"epochs": 2}`` and ``seeds=[0, 1]`` add a budget for training-time methods.

The docs page "Testing a plugin" describes each with examples.

``registered_objects(plugin)`` returns what a plugin registers, through the same
plugin manager (and validation) the harness uses. ``run_suite_file(path, results, cache_dir)``
runs a suite file with the runner ``optbench run`` calls, in this process, for a fixture wider
than one test (a second run reuses the first one's cell processes' server, so it starts faster).

Trained baseline weights are cached for the whole test session in a temporary folder.
This module imports nothing heavy at load time: pytest loads it in every project.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FAST_MEASURE: dict[str, Any] = {
    "batch_sizes": [1],
    "warmup": {"min_iters": 2, "min_seconds": 0.0},
    "repeat": {"min_iters": 5, "min_seconds": 0.0},
    "accuracy": True,
}


@dataclass
class SuiteRun:
    """What ``optbench_run`` returns: the run's exit code (0 when every cell is ok or skipped, 1
    when one failed or timed out), its folder ``run_dir`` (results/<suite>/<run-id>/, holding
    records.jsonl, report.html and cells/<cell_id>/log.txt) and ``records``, the records read
    back from records.jsonl (one dict per cell x batch size, the fields of ``harness.results.records``)."""

    exit_code: int
    run_dir: Path
    records: list[dict[str, Any]]

    def log(self, record: dict[str, Any]) -> str:
        """Everything a cell printed (its ``ctx.log`` lines, warnings, a failure's traceback)."""
        return (self.run_dir / "cells" / record["cell_id"] / "log.txt").read_text()

    def by_method(self, method: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["method"] == method]

    def curves(self, record: dict[str, Any]) -> dict[str, Any]:
        """A training cell's curves by role ("main", "reference", "pretrain"): the run's
        figures and its ``points`` (epoch, step, elapsed_s, train_loss, test_loss,
        test_accuracy, and objective for loss problems)."""
        import json

        return json.loads((self.run_dir / "cells" / record["cell_id"] / "curve.json").read_text())


def registered_objects(plugin: Any, name: str = "under-test") -> list[Any]:
    """Everything ``plugin`` registers, validated exactly as at discovery (errors raise)."""
    from harness.registry.manager import PluginManager

    pm = PluginManager.load(entry_points=False, extra=[])
    return list(pm.add(plugin, name=name).registered)


def run_suite_file(suite: Path, results: Path, cache_dir: Path | None = None) -> Path:
    """Run the suite file ``suite`` into ``results`` with the runner ``optbench run`` calls, in this process
    (weights cached in ``cache_dir`` when given); returns the run folder. Fails the test when the run did
    not end with exit code 0."""
    from harness.run.runner import Runner

    with pytest.MonkeyPatch.context() as mp:
        if cache_dir is not None:
            mp.setenv("OPTBENCH_CACHE_DIR", str(cache_dir))
        result = Runner().run(Path(suite), Path(results))
    if result.exit_code != 0:
        pytest.fail(f"optbench run {suite} ended with exit code {result.exit_code} ({result.run_dir})")
    return result.run_dir


def make_tiny_suite(
    method: str | None = None,
    params: dict[str, Any] | None = None,
    *,
    model: str = "mlp",
    model_params: dict[str, Any] | None = None,
    dataset: str = "digits",
    dataset_params: dict[str, Any] | None = None,
    backend: str = "cpu",
    backend_params: dict[str, Any] | None = None,
    name: str = "tiny",
    train: dict[str, Any] | None = None,
    seeds: list[int] | None = None,
) -> dict[str, Any]:
    """A one-model, one-dataset, one-backend suite around ``method`` (None: the baseline alone,
    for testing a model, dataset or backend plugin); ``train`` (for training-time methods, e.g.
    ``{"epochs": 3}``) and ``seeds`` are added when given."""
    methods = [] if method is None else [{"name": method, "params": params or {}}]
    suite: dict[str, Any] = {
        "name": name,
        "datasets": [{"name": dataset, "params": dataset_params or {}}],
        "models": [{"name": model, "params": {"epochs": 3} if model_params is None else model_params}],
        "methods": methods,
        "backends": [{"name": backend, "params": backend_params or {}}],
        "measure": dict(FAST_MEASURE),
        "execution": {"timeout_s": 120},
    }
    if train is not None:
        suite["train"] = train
    if seeds is not None:
        suite["seeds"] = seeds
    return suite


@pytest.fixture(scope="session")
def optbench_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("optbench-cache")


@pytest.fixture
def optbench_plugin() -> Iterator[Callable[..., Any]]:
    from harness.registry.manager import (
        register_session_plugin,
        unregister_session_plugin,
    )

    names: list[str] = []

    def register(plugin: Any, name: str | None = None) -> Any:
        name = name or getattr(plugin, "__name__", type(plugin).__name__)
        register_session_plugin(plugin, name)
        names.append(name)
        return plugin

    try:
        yield register
    finally:
        for name in names:
            unregister_session_plugin(name)


@pytest.fixture
def tiny_suite() -> Callable[..., dict[str, Any]]:
    return make_tiny_suite


@pytest.fixture
def optbench_run(
    tmp_path: Path, optbench_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., SuiteRun]:
    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(optbench_cache_dir))

    def run(suite: dict[str, Any] | str | Path | None, *, resume: Path | None = None) -> SuiteRun:
        import yaml

        from harness.results import records
        from harness.run.runner import Runner

        if suite is None:
            if resume is None:
                raise ValueError("optbench_run(None) needs resume=RUN_DIR")
            path = None
        elif isinstance(suite, dict):
            data = {**suite, "measure": suite.get("measure", FAST_MEASURE)}
            path = tmp_path / f"{data.get('name', 'suite')}.yaml"
            path.write_text(yaml.safe_dump(data, sort_keys=False))
        elif isinstance(suite, str) and "\n" in suite:
            path = tmp_path / "suite.yaml"
            path.write_text(suite)
        else:
            path = Path(suite)
        result = Runner().run(None if resume else path, tmp_path / "results", resume)
        return SuiteRun(result.exit_code, result.run_dir, records.read_records(result.run_dir))

    return run




