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
- ``optbench_runs_suites``: requested by every fixture that runs a whole suite (``optbench_run``
  does): a test whose fixtures request it, however indirectly, is marked ``slow`` at collection,
  so ``pytest -m "not slow"`` is a fast lane of unit tests. A fixture of yours that runs suites
  (``run_suite_file`` in a module-scoped fixture) requests it too.
- ``optbench_digits``: the built-in digits dataset (seed 0), loaded once per session;
  ``trained_digits_model``: ``trained_digits_model("mlp" | "cnn")`` a fresh copy of that built-in
  model trained on it (once per session); ``method_context``: ``method_context(data, logs=None,
  device="cpu", seed=0)`` a ``MethodContext`` as a cell builds one; ``one_torch_thread``: one
  intra-op thread inside the test (tiny models: faster, and immune to a busy machine).

The docs page "Testing a plugin" describes each with examples.

``registered_objects(plugin)`` returns what a plugin registers, through the same
plugin manager (and validation) the harness uses. ``run_suite_file(path, results, cache_dir)``
runs a suite file with the runner ``optbench run`` calls, in this process, for a fixture wider
than one test (a second run reuses the first one's cell processes' server, so it starts faster).
``make_method_context(data, logs=...)`` is a ``MethodContext`` as a cell builds one. ``make_record(**fields)`` is a
plausible record holding every field the harness declares, for
tests of readers (reports, exports, the site); ``make_run_folder(path, records, run=, env=)``
writes records (and run.json, env.json) as a run folder.

With ``optbench_guard_fast_lane = true`` in a project's pytest settings, a test that runs a suite
without being marked ``slow`` fails, naming the fixture to use: the fast lane stays fast.

Trained baseline weights are cached for the whole test session in a temporary folder.
This module imports nothing heavy at load time: pytest loads it in every project.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: The fixture every suite-running fixture requests; its tests are marked slow.
SUITE_FIXTURE = "optbench_runs_suites"
GUARD_INI = "optbench_guard_fast_lane"

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


def make_record(**fields: Any) -> dict[str, Any]:
    """A plausible ok record of the baseline (mlp on digits, cpu, batch 1: p50 2 ms, 400 kB, accuracy 0.95)
    holding every field the harness declares, null where not given; keyword arguments set any field.
    ``cell_id`` defaults to one made from the model, dataset, method, params and backend, so records of one
    cell share it."""
    from harness.record.schema import CORE_SCHEMA

    r: dict[str, Any] = dict.fromkeys(CORE_SCHEMA.names)
    r.update(run_id="r1", suite="quick", model="mlp", dataset="digits", method="baseline", method_kind="baseline",
             params={}, backend="cpu", seed=0, batch_size=1, status="ok", latency_p50_ms=2.0, noisy=False,
             model_bytes=400_000, accuracy=0.95)
    r.update(fields)
    if not r["cell_id"]:
        ident = (r["model"], r["dataset"], r["method"], json.dumps(r["params"], sort_keys=True), r["backend"])
        r["cell_id"] = "-".join(map(str, ident)).replace("/", "_")
    return r


def make_run_folder(run_dir: Path, records: list[dict[str, Any]], run: dict[str, Any] | None = None,
                    env: dict[str, Any] | None = None) -> Path:
    """``records`` written as ``run_dir``'s records.jsonl (the folder made if needed), with ``run`` as
    run.json and ``env`` as env.json when given; returns ``run_dir``."""
    from harness.results.records import RECORDS_FILE, append_records

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    append_records(run_dir / RECORDS_FILE, records)
    for name, data in (("run.json", run), ("env.json", env)):
        if data is not None:
            (run_dir / name).write_text(json.dumps(data))
    return run_dir


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
    tmp_path: Path, optbench_cache_dir: Path, monkeypatch: pytest.MonkeyPatch, optbench_runs_suites: None
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


# -- the fast lane ---------------------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(GUARD_INI, "fail a test that runs an optbench suite without being marked slow", type="bool",
                  default=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: runs real suites end to end (marked automatically when a test's "
                                       f"fixtures request {SUITE_FIXTURE})")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark slow every test whose fixtures, however indirectly, run a suite."""
    for item in items:
        if SUITE_FIXTURE in getattr(item, "fixturenames", ()) and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def optbench_runs_suites() -> None:
    """Requested by every fixture that runs a whole suite: its tests are marked ``slow`` at collection."""


def _guarded(item: pytest.Item) -> Any:
    """A context in which running a suite fails the test, when the guard is on and ``item`` is not slow."""
    import contextlib

    if not item.config.getini(GUARD_INI) or item.get_closest_marker("slow") is not None:
        return contextlib.nullcontext()
    from harness.run.runner import Runner

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{item.nodeid} runs a whole suite but is not marked slow: take it through a fixture "
                             f"that requests {SUITE_FIXTURE} (optbench_run does), or mark it @pytest.mark.slow, so "
                             "`pytest -m 'not slow'` stays a fast lane")

    mp = pytest.MonkeyPatch()
    mp.setattr(Runner, "_execute", refuse)
    return contextlib.closing(_Undo(mp))


class _Undo:
    def __init__(self, mp: pytest.MonkeyPatch) -> None:
        self.mp = mp

    def close(self) -> None:
        self.mp.undo()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    """The guard around a test's set-up (its module- and session-scoped fixtures are set up here too)."""
    with _guarded(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    with _guarded(item):
        return (yield)


# -- shared fixtures for plugin tests ------------------------------------------------------------------

@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread inside the test, restored afterwards: on a small machine shared with other work,
    two OpenMP threads spin-wait on each other (training the digits CNN took 41 s with 2 threads, 0.25 s
    with 1), and tiny models run no slower on one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def optbench_digits() -> Any:
    """The built-in digits dataset (scikit-learn's 8x8 digits, seed 0), loaded once per session."""
    from harness.builtin.datasets import DIGITS, DigitsParams

    return DIGITS.load(DigitsParams(), 0)


@pytest.fixture(scope="session")
def _optbench_trained_models() -> dict[tuple, Any]:
    return {}


@pytest.fixture
def trained_digits_model(optbench_digits: Any, _optbench_trained_models: dict[tuple, Any]) -> Callable[..., Any]:
    """``trained_digits_model("mlp" | "cnn", epochs=10, **params)``: a fresh copy of that built-in model trained on
    digits (seed 0, Adam lr 1e-3, batch 64, one thread), trained once per session for each set of arguments."""
    import copy

    def get(name: str, epochs: int = 10, lr: float = 1e-3, **params: Any) -> Any:
        import torch

        from harness.builtin.models import CNN, MLP
        from harness.train.classifier import train_classifier

        spec = {"mlp": MLP, "cnn": CNN}[name]
        key = (name, epochs, lr, json.dumps(params, sort_keys=True))
        if key not in _optbench_trained_models:
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                torch.manual_seed(0)
                model = spec.build(spec.params(**params), optbench_digits)
                train_classifier(model, optbench_digits, epochs=epochs, lr=lr, batch_size=64, seed=0)
            finally:
                torch.set_num_threads(before)
            _optbench_trained_models[key] = model
        return copy.deepcopy(_optbench_trained_models[key]).eval()

    return get


def make_method_context(data: Any = None, logs: list[str] | None = None, device: str = "cpu", seed: int = 0,
                        batch_sizes: tuple[int, ...] = (1,)) -> Any:
    """A ``MethodContext`` as a cell builds one: ``data`` (default: four blank unlabelled 8x8 images, for a method
    that needs none), ``logs`` a list its ``ctx.log`` lines go to."""
    import torch

    from harness.plugin.types import DatasetSplits, MethodContext

    if data is None:
        x = torch.zeros(4, 1, 8, 8)
        data = DatasetSplits(x, None, x, None, num_classes=10)
    return MethodContext(data=data, device=torch.device(device), backend=device, seed=seed,
                         log=(lambda _msg: None) if logs is None else logs.append, batch_sizes=batch_sizes)


@pytest.fixture
def method_context() -> Callable[..., Any]:
    """``method_context(data, logs=None, device="cpu", seed=0, batch_sizes=(1,))``: ``make_method_context``."""
    return make_method_context
