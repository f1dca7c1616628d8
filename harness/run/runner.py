"""Running a suite: expand the matrix, run each cell in isolation, append records.

A run directory holds records.jsonl, suite.yaml (the resolved suite), env.json,
run.json (timings, status counts, isolation overhead), cells/<cell_id>/ (log.txt,
samples.json with raw latency samples in ns per batch size) and report.html.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import Interrupted, OptbenchError, SuiteError
from harness.record.status import BASELINE, FAULTS, Status
from harness.registry.manager import PluginManager, Registry
from harness.results import records as rec
from harness.run import environment, limits
from harness.run.cell_payload import CellFiles, CellPayload
from harness.run.cell_records import RecordWriter, cell_plugins, identity, now, status_counts
from harness.run.executor import Executor, Job, Outcome
from harness.run.progress import Progress, QuietProgress
from harness.run.run_lock import RunLock, check_own_files
from harness.suite.loader import LineMap, load_suite, load_yaml, read_suite_text
from harness.suite.matrix import Cell, build_matrix
from harness.suite.metric_refs import TORCHMETRICS
from harness.suite.paths import resolve_paths
from harness.suite.schema import Suite

SUITE_COPY = "suite.yaml"


@dataclass
class RunResult:
    run_dir: Path
    counts: dict[str, int] = field(default_factory=dict)
    report: Path | None = None

    @property
    def exit_code(self) -> int:
        return 1 if any(self.counts.get(s, 0) for s in FAULTS) else 0


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored inside the block (main thread only; elsewhere a no-op)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def new_run_id() -> str:
    return f"{dt.datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _add_name_problems(exc: SuiteError, path: Path, pm: PluginManager) -> None:
    from harness.suite.matrix import check_names

    try:  # the suite loader's limits again: the file may be what load_suite refused
        text = read_suite_text(path)
        data = load_yaml(text, str(path))
    except SuiteError:
        return
    exc.problems += check_names(data, pm.registry, LineMap(text))
    exc.problems.sort(key=lambda p: (p.line or 0))


def plan(suite_path: Path, pm: PluginManager) -> tuple[Suite, list[Cell]]:
    """Load, validate and expand a suite file (what ``optbench validate`` does)."""
    try:
        suite, lines = load_suite(suite_path)
    except SuiteError as exc:
        _add_name_problems(exc, Path(suite_path), pm)
        raise
    suite = resolve_paths(suite, pm.registry, Path(suite_path).resolve().parent, str(suite_path), lines)
    return suite, build_matrix(suite, pm.registry, file=str(suite_path), lines=lines)


def suite_preload(cells: list[Cell], registry: Registry) -> list[str]:
    """The modules the plugins and metrics of these cells declare slow to import (their ``preload``; torchmetrics
    where a suite names one of its classes), each once."""
    specs = [spec for c in cells for spec in cell_plugins(c, registry)]
    specs += [registry.metrics[m.name] for c in cells for m in c.metrics if m.name in registry.metrics]
    modules = [mod for spec in specs for mod in spec.preload]
    modules += ["torchmetrics" for c in cells for m in c.metrics if m.source == TORCHMETRICS]
    return list(dict.fromkeys(modules))


class Runner:
    def __init__(self, pm: PluginManager | None = None, progress: Progress | None = None,
                 executor: Executor | None = None) -> None:
        self.pm = pm or PluginManager.load()
        self.progress = progress or QuietProgress()
        self.executor = executor

    def _executor(self, suite: Suite, cells: list[Cell] | None = None) -> Executor:
        if self.executor is None:
            if suite.execution.executor == "ray":
                from harness.run.ray_executor import RayExecutor, import_ray

                import_ray()  # a clear error before anything runs when Ray is missing
                self.executor = RayExecutor.from_execution(suite.execution)
            else:
                from harness.run.local_executor import LocalExecutor

                modules = [info.module.split(":")[0] for info in self.pm.plugins.values()
                           if info.distribution != "(in-process)"]
                self.executor = LocalExecutor(preload=modules + suite_preload(cells or [], self.pm.registry))
        return self.executor

    def run(self, suite_path: Path | None, results_root: Path = Path("results"), resume: Path | None = None) -> RunResult:
        if resume is not None:
            suite, cells, run_dir, meta = self._resumed(Path(resume))
        else:
            suite, cells, run_dir, meta = self._new_run(Path(suite_path), Path(results_root))
        with RunLock(run_dir):
            check_own_files(run_dir)
            return self._execute(suite, cells, run_dir, run_dir.name, meta)

    def _resumed(self, run_dir: Path) -> tuple[Suite, list[Cell], Path, dict]:
        if not (run_dir / SUITE_COPY).is_file():
            raise OptbenchError(f"--resume {run_dir}: not a run directory (no {SUITE_COPY} in it)")
        check_own_files(run_dir)
        with RunLock(run_dir):  # refused here, before anything is read, if another run writes it
            pass
        copy = run_dir / SUITE_COPY
        suite, lines = load_suite(copy)
        cells = build_matrix(suite, self.pm.registry, file=str(copy), lines=lines)
        self._executor(suite, cells).begin()
        meta = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
        meta.setdefault("resumes", []).append(now())
        return suite, cells, run_dir, meta

    def _new_run(self, suite_path: Path, results_root: Path) -> tuple[Suite, list[Cell], Path, dict]:
        suite, cells = plan(suite_path, self.pm)
        self._executor(suite, cells).begin()  # its imports load while the run directory and env.json are made
        run_id = new_run_id()
        run_dir = results_root / suite.name / run_id
        run_dir.mkdir(parents=True, exist_ok=False)
        copy = suite.model_dump(mode="json")
        if suite.seeds is not None:
            copy.pop("seed", None)  # one of `seed` or `seeds`: the copy must validate again on --resume
        (run_dir / SUITE_COPY).write_text(yaml.safe_dump(copy, sort_keys=False))
        env = environment.collect(self.pm, suite_path.resolve())
        (run_dir / "env.json").write_text(json.dumps(env, indent=2))
        meta = {"run_id": run_id, "suite": suite.name, "suite_file": str(suite_path.resolve()),
                "started_at": now(), "executor": suite.execution.executor}
        return suite, cells, run_dir, meta

    def _execute(self, suite: Suite, cells: list[Cell], run_dir: Path, run_id: str, meta: dict) -> RunResult:
        records_path = run_dir / rec.RECORDS_FILE
        rec.repair_torn_tail(records_path)
        existing = rec.read_records(records_path)
        done = _done_cells(existing, cells)
        baselines = {rec.baseline_key(r): r for r in existing if r.get("method") == BASELINE and r.get("cell_id") in done}
        pending = [c for c in cells if c.cell_id not in done]
        meta["cells_total"] = len(cells)
        meta.setdefault("executor", suite.execution.executor)
        self._write_meta(run_dir, meta)
        writer = RecordWriter(run_dir, run_id, suite, self.pm.registry, self.progress, baselines)
        writer.overheads = list(meta.get("isolation_overhead_s", {}).get("samples", []))
        self.progress.start(len(cells), str(run_dir), skipped_done=len(cells) - len(pending))
        t_run = time.perf_counter()
        interrupted = False
        try:
            if pending:
                executor = self._start_executor(suite, pending, run_dir, meta)
                self._run_cells(executor, suite, pending, run_dir, writer)
        except KeyboardInterrupt:
            # Another Ctrl-C while the finished cells' records and report are written must not cut that
            # short: the cell is already killed, and finishing takes a moment.
            interrupted = True
            with _sigint_ignored():
                if self.executor is not None:
                    self.executor.kill()
                meta["interrupted_at"] = now()
                result = self._finish(run_dir, meta, cells, writer.overheads, time.perf_counter() - t_run)
            raise Interrupted(
                f"interrupted with {sum(result.counts.values())} of {len(cells)} cells done (records kept); "
                f"finish with: optbench run --resume {run_dir}"
            ) from None
        finally:
            # after a Ctrl-C, the executor's shutdown is part of finishing too
            with _sigint_ignored() if interrupted else contextlib.nullcontext():
                self.progress.close()
                if self.executor is not None:
                    self.executor.shutdown()
        return self._finish(run_dir, meta, cells, writer.overheads, time.perf_counter() - t_run)

    def _start_executor(self, suite: Suite, pending: list[Cell], run_dir: Path, meta: dict) -> Executor:
        """The executor, started: its start-up time, the backends' hardware in env.json (a resume keeps the
        first run's), and where cells run, in run.json."""
        executor = self._executor(suite, pending)
        meta["executor"] = executor.name
        meta["executor_startup_s"] = round(executor.start(), 3)
        env_path = run_dir / "env.json"
        env = json.loads(env_path.read_text()) if env_path.exists() else None
        if env is not None and "backends" not in env:
            info = executor.backend_info(self.pm.setup_payload(),
                                         [{"name": b.name, "params": b.params} for b in suite.backends])
            if info is not None:
                env["backends"] = info
                env_path.write_text(json.dumps(env, indent=2))
        described = executor.describe()
        if described is not None:
            meta["execution"] = described
        self._write_meta(run_dir, meta)
        return executor

    def _run_cells(self, executor: Executor, suite: Suite, pending: list[Cell], run_dir: Path,
                   writer: RecordWriter) -> None:
        """Every pending cell through the executor. Cells may end in any order (the driver alone appends
        records): a cell that ends before its group's baseline is held until the baseline is recorded, so
        its relative figures (speedup, ...) are filled."""
        def group(cell: Cell) -> tuple[Any, ...]:
            return rec.baseline_key(identity(cell, "", suite, 0))[:-2]  # all but batch size and prompt length

        waiting_for = {group(c) for c in pending if c.method.name == BASELINE}
        held: dict[tuple[Any, ...], list[tuple[Cell, Outcome]]] = {}
        by_id = {c.cell_id: c for c in pending}
        plugins = self.pm.setup_payload()
        jobs = [Job(c.cell_id, self._payload(c, suite, run_dir, plugins), _device_key(self.pm, c), c.label,
                    baseline=c.method.name == BASELINE) for c in pending]

        def on_start(job: Job) -> None:
            writer.started[job.cell_id] = now()
            self.progress.cell_started(job.label)

        def on_done(job: Job, outcome: Outcome) -> None:
            cell = by_id[job.cell_id]
            g = group(cell)
            if cell.method.name == BASELINE:
                writer.write(cell, outcome)
                waiting_for.discard(g)
                for c, o in held.pop(g, []):
                    writer.write(c, o)
            elif g in waiting_for:
                held.setdefault(g, []).append((cell, outcome))
            else:
                writer.write(cell, outcome)

        executor.run_many(jobs, suite.execution.timeout_s, on_start, on_done)
        for items in held.values():  # only if a baseline never reported (cannot happen without an error)
            for c, o in items:
                writer.write(c, o)

    @staticmethod
    def _payload(cell: Cell, suite: Suite, run_dir: Path, plugins: dict[str, Any]) -> CellPayload:
        return CellPayload(cell=cell, measure=suite.measure, plugins=plugins,
                           files=CellFiles(str(run_dir / "cells" / cell.cell_id)), finetune=suite.finetune,
                           memory_limit_mb=suite.execution.memory_limit_mb or limits.default_memory_limit_mb(),
                           log_limit_mb=suite.execution.log_limit_mb)

    def _finish(self, run_dir: Path, meta: dict, cells: list[Cell], overheads: list[float], elapsed: float) -> RunResult:
        from harness.report.run_report import write_report

        meta["finished_at"] = now()
        meta["wall_s"] = round(meta.get("wall_s", 0.0) + elapsed, 3)
        counts = status_counts(rec.read_records(run_dir), cells)  # the records file is the truth
        meta["status_counts"] = counts
        meta["isolation_overhead_s"] = {
            "what": "per cell: wall time from asking for a process to reading its result, minus the time the cell reported working",
            "median": statistics.median(overheads) if overheads else None,
            "max": max(overheads) if overheads else None,
            "n": len(overheads),
            "samples": [round(o, 4) for o in overheads],
        }
        self._write_meta(run_dir, meta)
        report = write_report(run_dir)
        return RunResult(run_dir, counts, report)

    @staticmethod
    def _write_meta(run_dir: Path, meta: dict) -> None:
        tmp = run_dir / "run.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, run_dir / "run.json")


def _done_cells(existing: list[dict[str, Any]], cells: list[Cell]) -> set[str]:
    """The cells of the matrix whose every point already has an ok record (a resume skips them)."""
    by_cell: dict[str, list[dict]] = {}
    for r in existing:
        by_cell.setdefault(r.get("cell_id"), []).append(r)
    wanted = {c.cell_id: len(c.points) for c in cells}
    return {cid for cid, rs in by_cell.items()
            if cid in wanted and len(rs) >= wanted[cid] and all(r.get("status") == Status.OK for r in rs)}


def _device_key(pm: PluginManager, cell: Cell) -> str:
    """The device a cell times latency on (BackendSession.device_key), read without setup()."""
    try:
        spec = pm.registry.backends[cell.backend.name]
        return str(spec.create(spec.params.model_validate(cell.backend.params)).device_key)
    except Exception:  # noqa: BLE001 - a backend that cannot open here still gets its own slot
        return f"backend:{cell.backend.name}"
