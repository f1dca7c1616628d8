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
from typing import TYPE_CHECKING, Any

import yaml

from harness.errors import Interrupted, OptbenchError, SuiteError
from harness.measure.stats import summarize
from harness.registry.manager import PluginManager
from harness.results import records as rec
from harness.run import environment, limits
from harness.run.progress import Progress, QuietProgress
from harness.run.run_lock import RunLock, check_own_files
from harness.suite.loader import LineMap, load_suite, load_yaml, read_suite_text
from harness.suite.matrix import Cell, build_matrix
from harness.suite.paths import resolve_paths
from harness.suite.schema import Suite

if TYPE_CHECKING:  # the executor imports torch; planning and validating do not need it
    from harness.run.local_executor import Outcome

SUITE_COPY = "suite.yaml"


@dataclass
class RunResult:
    run_dir: Path
    counts: dict[str, int] = field(default_factory=dict)
    report: Path | None = None

    @property
    def exit_code(self) -> int:
        return 1 if any(self.counts.get(s, 0) for s in ("failed", "timeout", "oom")) else 0


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


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


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


def _base_record(cell: Cell, run_id: str, suite: Suite, bs: int, prompt: int | None = None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "cell_id": cell.cell_id,
        "suite": suite.name,
        "model": cell.model.id or cell.model.name,
        "model_name": cell.model.name,
        "dataset": cell.dataset.id or cell.dataset.name,
        "dataset_name": cell.dataset.name,
        "dataset_params": cell.dataset.params,
        "method": cell.method.name,
        "method_kind": cell.method.kind,
        "method_id": cell.method.id,
        "params": cell.method.params,
        "search_params": list(cell.method.search),
        "train": cell.train,
        "backend": cell.backend.name,
        "backend_params": cell.backend.params,
        "reference_backend": cell.reference.name if cell.reference else None,
        "reference_backend_params": cell.reference.params if cell.reference else None,
        "batch_size": bs,
        "prompt_tokens": prompt,
        "new_tokens": suite.measure.generate.new_tokens if prompt is not None and suite.measure.generate else None,
        "seed": cell.seed,
    }


def records_for(cell: Cell, outcome: Outcome, run_id: str, suite: Suite, samples: dict[str, list[int]],
                started_at: str) -> list[dict[str, Any]]:
    out = []
    facts = outcome.result.get("facts", {})
    per_batch = outcome.result.get("per_batch", {})
    for bs, prompt in cell.points:
        r = _base_record(cell, run_id, suite, bs, prompt)
        r.update(status=outcome.status, error=outcome.error, duration_s=round(outcome.wall_s, 3), started_at=started_at)
        if outcome.status == "ok":
            key = rec.point_key(bs, prompt)
            ns = samples.get(key)
            if not ns:
                what = f"batch size {bs}" + (f", prompt {prompt} tokens" if prompt is not None else "")
                r.update(status="failed", error=f"no latency samples for {what}")
            else:
                r.update(summarize(ns, bs))
                r.update(facts)
                r.update(per_batch.get(key, {}))
        out.append(r)
    return out


def cell_status(records: list[dict[str, Any]]) -> str:
    """One status for a cell from its records (one per batch size): the worst of them."""
    statuses = {r.get("status") for r in records}
    return next((s for s in ("failed", "oom", "timeout", "skipped") if s in statuses), "ok")


def status_counts(records: list[dict[str, Any]], cells: list[Cell]) -> dict[str, int]:
    """Cells of this matrix per status, from the records written so far."""
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_cell.setdefault(r.get("cell_id"), []).append(r)
    counts = {s: 0 for s in rec.STATUSES}
    for cell in cells:
        if cell.cell_id in by_cell:
            counts[cell_status(by_cell[cell.cell_id])] += 1
    return counts


def suite_preload(cells: list[Cell], registry: Any) -> list[str]:
    """The modules the plugins of these cells declare slow to import (their ``preload``), each once."""
    from harness.suite.matrix import method_steps

    specs: list[Any] = []
    for c in cells:
        specs += [registry.datasets.get(c.dataset.name), registry.models.get(c.model.name),
                  registry.backends.get(c.backend.name)]
        specs += [registry.methods.get(step["name"])
                  for step in method_steps({"kind": c.method.kind, "name": c.method.name, "params": c.method.params})]
    return list(dict.fromkeys(mod for spec in specs if spec is not None for mod in getattr(spec, "preload", ())))


class Runner:
    def __init__(self, pm: PluginManager | None = None, progress: Progress | None = None,
                 executor: Any = None) -> None:
        self.pm = pm or PluginManager.load()
        self.progress = progress or QuietProgress()
        self.executor = executor

    def _begin_executor(self, suite: Suite, cells: list[Cell]) -> None:
        if suite.execution.executor != "ray":
            begin = getattr(self._executor(suite, cells), "begin", None)
            if begin is not None:
                begin()

    def _executor(self, suite: Suite, cells: list[Cell] | None = None) -> Any:
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
            run_dir = Path(resume)
            if not (run_dir / SUITE_COPY).is_file():
                raise OptbenchError(f"--resume {run_dir}: not a run directory (no {SUITE_COPY} in it)")
            check_own_files(run_dir)
            with RunLock(run_dir):  # refused here, before anything is read, if another run writes it
                pass
            copy = run_dir / SUITE_COPY
            suite, lines = load_suite(copy)
            cells = build_matrix(suite, self.pm.registry, file=str(copy), lines=lines)
            self._begin_executor(suite, cells)
            run_id = run_dir.name
            meta = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
            meta.setdefault("resumes", []).append(_now())
        else:
            suite, cells = plan(Path(suite_path), self.pm)
            if suite.execution.executor == "ray" and self.executor is None:
                from harness.run.ray_executor import import_ray

                import_ray()  # before a run directory exists
            self._begin_executor(suite, cells)  # its imports load while the run directory and env.json are made
            run_id = new_run_id()
            run_dir = Path(results_root) / suite.name / run_id
            run_dir.mkdir(parents=True, exist_ok=False)
            copy = suite.model_dump(mode="json")
            if suite.seeds is not None:
                copy.pop("seed", None)  # one of `seed` or `seeds`: the copy must validate again on --resume
            (run_dir / SUITE_COPY).write_text(yaml.safe_dump(copy, sort_keys=False))
            env = environment.collect(self.pm, Path(suite_path).resolve())
            (run_dir / "env.json").write_text(json.dumps(env, indent=2))
            meta = {"run_id": run_id, "suite": suite.name, "suite_file": str(Path(suite_path).resolve()),
                    "started_at": _now(), "executor": suite.execution.executor}
        with RunLock(run_dir):
            check_own_files(run_dir)
            return self._execute(suite, cells, run_dir, run_id, meta)

    def _execute(self, suite: Suite, cells: list[Cell], run_dir: Path, run_id: str, meta: dict) -> RunResult:
        records_path = run_dir / rec.RECORDS_FILE
        rec.repair_torn_tail(records_path)
        existing = rec.read_records(records_path)
        by_cell: dict[str, list[dict]] = {}
        for r in existing:
            by_cell.setdefault(r.get("cell_id"), []).append(r)
        wanted = {c.cell_id: len(c.points) for c in cells}
        done = {cid for cid, rs in by_cell.items()
                if cid in wanted and len(rs) >= wanted[cid] and all(r.get("status") == "ok" for r in rs)}
        baselines = {rec.baseline_key(r): r for r in existing if r.get("method") == "baseline" and r.get("cell_id") in done}
        pending = [c for c in cells if c.cell_id not in done]
        meta["cells_total"] = len(cells)
        meta.setdefault("executor", suite.execution.executor)
        self._write_meta(run_dir, meta)

        overheads: list[float] = list(meta.get("isolation_overhead_s", {}).get("samples", []))
        self.progress.start(len(cells), str(run_dir), skipped_done=len(cells) - len(pending))
        t_run = time.perf_counter()
        started: dict[str, str] = {}

        def payload_for(cell: Cell) -> dict[str, Any]:
            cell_dir = run_dir / "cells" / cell.cell_id
            cell_dir.mkdir(parents=True, exist_ok=True)
            return {
                "cell": cell.to_dict(),
                "measure": {**suite.measure.model_dump(mode="json"), "batch_sizes": list(cell.batch_sizes),
                            "prompt_tokens": list(cell.prompt_tokens)},
                "plugins": self.pm.setup_payload(),
                "log_path": str(cell_dir / "log.txt"),
                "result_path": str(cell_dir / "result.json"),
                "samples_path": str(cell_dir / "samples.json"),
                "finetune": suite.finetune.model_dump(mode="json") if suite.finetune else None,
                "limits": {"memory_mb": suite.execution.memory_limit_mb or limits.default_memory_limit_mb(),
                           "log_mb": suite.execution.log_limit_mb},
            }

        def record(cell: Cell, outcome: Outcome) -> None:
            cell_dir = run_dir / "cells" / cell.cell_id
            samples = _read_json(cell_dir / "samples.json") if outcome.status == "ok" else {}
            new = records_for(cell, outcome, run_id, suite, samples or {}, started.get(cell.cell_id) or _now())
            for r in new:
                if r["method"] == "baseline" and r["status"] == "ok":
                    baselines[rec.baseline_key(r)] = r
                rec.add_relative_figures(r, baselines.get(rec.baseline_key(r)), suite.accuracy_gate)
                # the reference backend's baseline, when it has run (readers recompute it from every record)
                rec.add_reference_speedup(r, baselines.get(rec.reference_key(r)))
            rec.append_records(records_path, new)
            busy = [r for r in new if (r.get("gpu_other_processes") or 0) > 0]
            if busy:
                self.progress.line(f"warning: {cell.label}: another process used the GPU while it was measured "
                                   f"(batch sizes {', '.join(str(r['batch_size']) for r in busy)}); "
                                   "its latency and energy may be off")
            contended = [r for r in new if r.get("contended")]
            if contended:
                self.progress.line(f"warning: {cell.label}: contended at batch size"
                                   f"{'s' * (len(contended) > 1)} {', '.join(str(r['batch_size']) for r in contended)}"
                                   f": {contended[0].get('contended_reason')}; its latency is marked contended "
                                   "and left out of rankings")
            if outcome.overhead_s is not None:
                overheads.append(outcome.overhead_s)
            self.progress.cell_finished(cell.label, cell_status(new), outcome.wall_s,
                                        outcome.error or new[0].get("error"))

        interrupted = False
        try:
            executor = self._executor(suite, pending) if pending else None
            if executor is not None:
                meta["executor"] = executor.name
                meta["executor_startup_s"] = round(executor.start(), 3)
                if hasattr(executor, "backend_info") and (run_dir / "env.json").exists():
                    env = json.loads((run_dir / "env.json").read_text())
                    if "backends" not in env:  # a resume keeps the first run's record
                        env["backends"] = executor.backend_info(
                            self.pm.setup_payload(), [{"name": b.name, "params": b.params} for b in suite.backends])
                        (run_dir / "env.json").write_text(json.dumps(env, indent=2))
                if hasattr(executor, "describe"):
                    meta["execution"] = executor.describe()
                self._write_meta(run_dir, meta)
            if executor is not None and hasattr(executor, "run_many"):
                self._run_concurrently(executor, suite, pending, run_id, payload_for, record, started)
            else:
                for cell in pending:
                    payload = payload_for(cell)
                    self.progress.cell_started(cell.label)
                    started[cell.cell_id] = _now()
                    record(cell, executor.run(payload, suite.execution.timeout_s))
        except KeyboardInterrupt:
            # Another Ctrl-C while the finished cells' records and report are written must not cut that
            # short: the cell is already killed, and finishing takes a moment.
            interrupted = True
            with _sigint_ignored():
                if self.executor is not None:
                    self.executor.kill()
                meta["interrupted_at"] = _now()
                result = self._finish(run_dir, meta, cells, overheads, time.perf_counter() - t_run)
            raise Interrupted(
                f"interrupted with {sum(result.counts.values())} of {len(cells)} cells done (records kept); "
                f"finish with: optbench run --resume {run_dir}"
            ) from None
        finally:
            # after a Ctrl-C, the executor's shutdown is part of finishing too
            with _sigint_ignored() if interrupted else contextlib.nullcontext():
                self.progress.close()
                if self.executor is not None and hasattr(self.executor, "shutdown"):
                    self.executor.shutdown()
        return self._finish(run_dir, meta, cells, overheads, time.perf_counter() - t_run)

    def _run_concurrently(self, executor: Any, suite: Suite, pending: list[Cell], run_id: str,
                          payload_for: Any, record: Any, started: dict[str, str]) -> None:
        """Cells stream back in any order; the driver alone appends records. Baseline cells
        start first, and a cell that finishes before its group's baseline is held until the
        baseline is recorded, so its relative figures (speedup, ...) are filled."""
        from harness.run.ray_executor import Job

        def group(cell: Cell) -> tuple[Any, ...]:
            return rec.baseline_key(_base_record(cell, run_id, suite, 0))[:-1]  # all but batch size

        waiting_for = {group(c) for c in pending if c.method.name == "baseline"}
        held: dict[tuple[Any, ...], list[tuple[Cell, Outcome]]] = {}
        by_id = {c.cell_id: c for c in pending}
        ordered = sorted(pending, key=lambda c: c.method.name != "baseline")  # stable: suite order otherwise
        jobs = [Job(c.cell_id, payload_for(c), _device_key(self.pm, c), c.label) for c in ordered]

        def on_start(job: Job) -> None:
            started[job.cell_id] = _now()
            self.progress.cell_started(job.label)

        def on_done(job: Job, outcome: Outcome) -> None:
            cell = by_id[job.cell_id]
            g = group(cell)
            if cell.method.name == "baseline":
                record(cell, outcome)
                waiting_for.discard(g)
                for c, o in held.pop(g, []):
                    record(c, o)
            elif g in waiting_for:
                held.setdefault(g, []).append((cell, outcome))
            else:
                record(cell, outcome)

        executor.run_many(jobs, suite.execution.timeout_s, on_start, on_done)
        for items in held.values():  # only if a baseline never reported (cannot happen without an error)
            for c, o in items:
                record(c, o)

    def _finish(self, run_dir: Path, meta: dict, cells: list[Cell], overheads: list[float], elapsed: float) -> RunResult:
        from harness.report.run_report import write_report

        meta["finished_at"] = _now()
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


def _device_key(pm: PluginManager, cell: Cell) -> str:
    """The device a cell times latency on (BackendSession.device_key), read without setup()."""
    try:
        spec = pm.registry.backends[cell.backend.name]
        return str(spec.create(spec.params.model_validate(cell.backend.params)).device_key)
    except Exception:  # noqa: BLE001 - a backend that cannot open here still gets its own slot
        return f"backend:{cell.backend.name}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
