"""The Ray executor: each cell is a Ray task that runs the cell in a fresh process.

The task (``_cell_task``) starts the cell from a per-Ray-worker forkserver (torch and the
harness imported once, so a cell starts in ~50 ms) in a node-local temporary folder, so a
segfault, ``os._exit`` or hang of the cell costs only that cell and the Ray worker
survives. The task reads back result.json, samples.json, curve.json and log.txt and
returns their text; the driver writes them into the run directory, so nodes need not share the driver's filesystem (they do need optbench and
the suite's plugins installed, and any checkpoint at the same absolute path).

Device exclusivity: every cell times latency, so the driver never has two cells in
flight on the same (node, backend device_key) unless ``execution.timing_exclusive`` is
false. The driver picks the node itself (a hard NodeAffinitySchedulingStrategy), so
this holds on any cluster without custom resources.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import OptbenchError
from harness.run import limits
from harness.run.cell_log import read_capped
from harness.run.cell_payload import CURVE_FILE, LOG_FILE, RESULT_FILE, SAMPLES_FILE, CellPayload, CellResult
from harness.run.executor import Executor, Job, Outcome, describe_exit

MISSING_RAY = "the ray executor needs Ray: pip install 'optbench[ray]'"

#: Files a cell writes (worker.run_cell), shipped back from the node to the driver.
CELL_FILES = (RESULT_FILE, SAMPLES_FILE, CURVE_FILE, LOG_FILE)

#: Environment variables passed from the driver to every cell process.
FORWARDED_ENV = ("OPTBENCH_CACHE_DIR", "OPTBENCH_DISABLE_PLUGINS", "XDG_CACHE_HOME")

#: Extra seconds the driver waits past timeout_s (process start, shipping files) before
#: it force-cancels a task whose own timeout did not fire.
GRACE_S = 60.0

_CONTEXT: Any = None  # this Ray worker's forkserver context, started by its first cell


def _cell_main(payload: bytes, tmp: str, sys_path: list[str], env_vars: dict[str, str]) -> None:
    """Cell process entry (forked from the Ray worker's forkserver)."""
    _die_with_parent()
    os.environ.update(env_vars)
    sys.path[:0] = [p for p in sys_path if p not in sys.path and os.path.isdir(p)]
    data: CellPayload = pickle.loads(payload)  # plugins given as objects need the driver's sys.path
    from harness.run import worker

    worker.run_cell(data.elsewhere(tmp))


@contextlib.contextmanager
def _no_main_module() -> Any:
    """Hide the Ray worker's __main__ (ray's default_worker.py) from multiprocessing while a
    cell process starts: a forkserver child otherwise re-runs it (~0.6 s) before the cell."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def _context() -> Any:
    """A forkserver that has imported torch and the harness once per Ray worker, so a cell
    starts in milliseconds (a fresh interpreter pays ~3 s of imports) in a clean process."""
    global _CONTEXT
    if _CONTEXT is None:
        import multiprocessing as mp

        from harness.run.local_executor import PRELOAD, start_forkserver

        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        with _no_main_module():
            start_forkserver()
        _CONTEXT = ctx
    return _CONTEXT


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise OptbenchError(MISSING_RAY) from None
    return ray


def _die_with_parent() -> None:
    """In the cell process: SIGKILL it when its parent (the forkserver, which exits with the
    Ray worker) dies, so a force-cancelled task leaves no cell behind (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _kill(proc: Any) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the cell calls setpgrp: its group is its pid
    with contextlib.suppress(OSError, ValueError):
        proc.kill()
    proc.join(10)


def _cell_task(payload: bytes, timeout_s: float, sys_path: list[str], env_vars: dict[str, str],
               log_limit_mb: float | None = None) -> dict[str, Any]:
    """Runs on a Ray worker: one cell in its own process; returns its files' text."""
    import shutil

    tmp = tempfile.mkdtemp(prefix="optbench-cell-")
    try:
        ctx = _context()
        t0 = time.perf_counter()
        oom_before = limits.oom_kills()
        proc = ctx.Process(target=_cell_main, args=(payload, tmp, sys_path, env_vars), name="optbench-cell")
        try:
            with _no_main_module():
                proc.start()
            proc.join(timeout_s)
            timed_out = proc.is_alive()
            if timed_out:
                _kill(proc)
        except BaseException:  # cancelled: Ray raises KeyboardInterrupt in the task
            _kill(proc)
            raise
        wall = time.perf_counter() - t0
        files = {}
        for name in CELL_FILES:
            with contextlib.suppress(OSError):
                files[name] = (read_capped(Path(tmp) / name, log_limit_mb) if name == LOG_FILE
                               else (Path(tmp) / name).read_text(errors="replace"))
        return {"exitcode": proc.exitcode, "timed_out": timed_out, "wall_s": wall, "files": files,
                "host": os.uname().nodename, "oom_kills": (oom_before, limits.oom_kills())}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class _Flight:
    job: Job
    node: str
    t0: float
    deadline: float


@dataclass
class RayExecutor(Executor):
    """Runs cells as Ray tasks, streaming outcomes back to the driver as they finish."""

    address: str = "local"
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0
    max_concurrent: int | None = None
    timing_exclusive: bool = True
    num_cpus: int | None = None  # address local: CPUs of the Ray instance (default: this machine's)
    name: str = "ray"
    startup_s: float | None = None
    _ray: Any = None
    _started_ray: bool = False
    _flights: dict[Any, _Flight] = field(default_factory=dict)
    _remote: Any = None
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_execution(cls, execution: Any) -> RayExecutor:
        return cls(address=execution.address, cpus_per_cell=execution.cpus_per_cell,
                   gpus_per_cell=execution.gpus_per_cell, max_concurrent=execution.max_concurrent,
                   timing_exclusive=execution.timing_exclusive)

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> float:
        if self.startup_s is not None:
            return self.startup_s
        ray = import_ray()
        t0 = time.perf_counter()
        if not ray.is_initialized():
            import logging

            kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
            try:
                if self.address == "local":
                    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                    ray.init(num_cpus=self.num_cpus or os.cpu_count() or 1, include_dashboard=False, **kwargs)
                else:
                    ray.init(address=self.address, **kwargs)
            except ConnectionError as exc:
                raise OptbenchError(f"execution.address {self.address}: cannot reach a Ray cluster ({exc})") from None
            self._started_ray = True
        self._ray = ray
        self._remote = ray.remote(num_cpus=self.cpus_per_cell, num_gpus=self.gpus_per_cell, max_retries=0)(_cell_task)
        self._refresh_nodes()
        if not self.nodes:
            raise OptbenchError(
                f"no Ray node has the resources a cell asks for (execution.cpus_per_cell={self.cpus_per_cell:g}, "
                f"gpus_per_cell={self.gpus_per_cell:g})"
            )
        self.startup_s = time.perf_counter() - t0
        return self.startup_s

    def _refresh_nodes(self) -> None:
        """Alive nodes and how many cells each fits at once by CPU/GPU."""
        nodes = {}
        for n in self._ray.nodes():
            if not n.get("Alive"):
                continue
            res = n.get("Resources", {})
            fits = []
            if self.cpus_per_cell > 0:
                fits.append(int(res.get("CPU", 0) // self.cpus_per_cell))
            if self.gpus_per_cell > 0:
                fits.append(int(res.get("GPU", 0) // self.gpus_per_cell))
            capacity = min(fits) if fits else 1
            if capacity >= 1:
                nodes[n["NodeID"]] = {"host": n.get("NodeManagerHostname") or n.get("NodeManagerAddress"),
                                      "capacity": capacity, "CPU": res.get("CPU", 0), "GPU": res.get("GPU", 0)}
        self.nodes = nodes

    def describe(self) -> dict[str, Any]:
        """For run.json: where cells ran and what was enforced."""
        rule = ("at most one cell at a time per (node, backend device_key): every cell times latency"
                if self.timing_exclusive else
                "none: execution.timing_exclusive is false, cells on one device overlap and skew latency")
        return {
            "address": self.address,
            "cpus_per_cell": self.cpus_per_cell,
            "gpus_per_cell": self.gpus_per_cell,
            "max_concurrent": self.max_concurrent,
            "device_exclusivity": rule,
            "nodes": [{"host": v["host"], "cells_at_once_by_resources": v["capacity"], "CPU": v["CPU"],
                       "GPU": v["GPU"]} for v in self.nodes.values()],
        }

    def shutdown(self) -> None:
        if self._started_ray and self._ray is not None:
            self._ray.shutdown()
            self._started_ray = False
            self.startup_s = None

    def kill(self, proc: Any = None) -> None:
        """Cancel every outstanding task (Ctrl-C); their cell processes die with their workers."""
        if self._ray is None:
            return
        for ref in list(self._flights):
            with contextlib.suppress(Exception):
                self._ray.cancel(ref, force=True)
        self._flights.clear()

    # -- running ---------------------------------------------------------------------
    def _pick_node(self, job: Job, busy: set[tuple[str, str]], per_node: dict[str, int]) -> str | None:
        for node_id, info in self.nodes.items():
            if per_node.get(node_id, 0) >= info["capacity"]:
                continue
            if self.timing_exclusive and (node_id, job.device_key) in busy:
                continue
            return node_id
        return None

    def run_many(self, jobs: list[Job], timeout_s: float, on_start: Callable[[Job], None],
                 on_done: Callable[[Job, Outcome], None]) -> None:
        """Run jobs, calling ``on_done`` in this (the driver's) thread as each finishes.

        Baseline jobs first, then the others in the order given, each whenever a node has a free slot.
        """
        self.start()
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        queue = sorted(jobs, key=lambda j: not j.baseline)  # stable: the suite's order otherwise
        env_vars = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        sys_path = [p for p in sys.path if p]
        while queue or self._flights:
            busy = {(f.node, f.job.device_key) for f in self._flights.values()}
            per_node: dict[str, int] = {}
            for f in self._flights.values():
                per_node[f.node] = per_node.get(f.node, 0) + 1
            for job in list(queue):
                if self.max_concurrent and len(self._flights) >= self.max_concurrent:
                    break
                node = self._pick_node(job, busy, per_node)
                if node is None:
                    continue
                job.payload.files.result.unlink(missing_ok=True)
                ref = self._remote.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
                    name=f"cell-{job.cell_id}",
                ).remote(pickle.dumps(job.payload), timeout_s, sys_path, env_vars, job.payload.log_limit_mb)
                now = time.perf_counter()
                self._flights[ref] = _Flight(job, node, now, now + timeout_s + GRACE_S)
                busy.add((node, job.device_key))
                per_node[node] = per_node.get(node, 0) + 1
                queue.remove(job)
                on_start(job)
            if not self._flights:  # nodes left the cluster: nothing can start
                self._refresh_nodes()
                if not self.nodes:
                    raise OptbenchError("no alive Ray node can run the remaining cells")
                continue
            wait_s = max(0.0, min(min(f.deadline for f in self._flights.values()) - time.perf_counter(), 5.0))
            ready, _ = ray.wait(list(self._flights), num_returns=1, timeout=wait_s)
            for ref in ready:
                flight = self._flights.pop(ref)
                on_done(flight.job, self._outcome(ref, flight, timeout_s))
            now = time.perf_counter()
            for ref, flight in list(self._flights.items()):
                if now >= flight.deadline:
                    ray.cancel(ref, force=True)
                    del self._flights[ref]
                    on_done(flight.job, Outcome(
                        "timeout", None, f"cell exceeded execution.timeout_s={timeout_s:g}s and its Ray task was "
                        "cancelled", now - flight.t0, None))

    def _outcome(self, ref: Any, flight: _Flight, timeout_s: float) -> Outcome:
        wall = time.perf_counter() - flight.t0
        try:
            data = self._ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - the task itself died (worker killed, node lost)
            return Outcome("failed", None, f"Ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0][:500]}",
                           wall, None)
        result = _write_cell_files(Path(flight.job.payload.files.folder), data)
        if data["timed_out"]:
            return Outcome("timeout", result, f"cell exceeded execution.timeout_s={timeout_s:g}s and was killed",
                           wall, None)
        if result is None:
            status, error = describe_exit(data["exitcode"], tuple(data.get("oom_kills") or (None, None)))
            return Outcome(status, None, error, wall, None)
        return Outcome.of(result, wall)


def _write_cell_files(cell_dir: Path, data: dict[str, Any]) -> CellResult | None:
    """Write what the task shipped back into the run directory; returns the cell's result."""
    import json

    cell_dir.mkdir(parents=True, exist_ok=True)
    files = dict(data.get("files", {}))
    log = files.pop(LOG_FILE, "")
    (cell_dir / LOG_FILE).write_text(f"[ray] ran on {data.get('host')}\n" + log)
    for name, text in files.items():
        tmp = cell_dir / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, cell_dir / name)
    try:
        return CellResult.from_json(json.loads(files[RESULT_FILE]))
    except (KeyError, ValueError):
        return None
