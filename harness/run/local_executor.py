"""Where cells run: the local executor, one OS process per cell.

Processes come from a forkserver that has imported torch, the harness and the
installed plugins once, so a cell starts in milliseconds instead of re-importing
torch (about a second) while still getting a clean address space: a segfault,
``os._exit``, an out-of-memory kill or a hang costs only that cell.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.run import worker

#: Imported once by the forkserver: the built-in digits dataset needs scikit-learn (~1.5 s to
#: import), and FLOP counting and torch.optim pull in torch._dynamo (~3 s), which every cell
#: would otherwise pay again.
PRELOAD = ["harness.run.worker", "torch._dynamo", "sklearn.datasets", "sklearn.model_selection"]


@dataclass
class Outcome:
    """What came back from one cell process."""

    status: str  # ok | failed | timeout | skipped
    result: dict[str, Any]
    error: str | None
    wall_s: float  # from asking for a process to having its result
    overhead_s: float | None  # wall_s minus the time the cell itself reported working


def describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (likely out of memory: the kernel's OOM killer sends SIGKILL)" if -code == signal.SIGKILL else ""
        return f"cell process killed by {name}{hint}"
    return f"cell process exited with code {code} before writing its result"


class LocalExecutor:
    """Runs one cell at a time in a fresh process from a shared forkserver."""

    name = "local"

    def __init__(self, preload: list[str] | None = None) -> None:
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD + list(preload or []))
        self._current: Any = None
        self.startup_s: float | None = None

    def start(self) -> float:
        """Start the forkserver and wait until its preloads are imported (once per process).

        Returns the seconds spent, reported apart from the per-cell overhead.
        """
        if self.startup_s is None:
            t0 = time.perf_counter()
            start_forkserver()
            proc = self.ctx.Process(target=_noop, name="forkserver-warmup")
            proc.start()
            proc.join()
            self.startup_s = time.perf_counter() - t0
        return self.startup_s

    def run(self, payload: dict[str, Any], timeout_s: float) -> Outcome:
        self.start()
        result_path = Path(payload["result_path"])
        result_path.unlink(missing_ok=True)
        t0 = time.perf_counter()
        proc = self.ctx.Process(target=worker.run_cell, args=(payload,), name=f"cell-{payload['cell']['cell_id']}")
        self._current = proc
        try:
            proc.start()
            proc.join(timeout_s)
            timed_out = proc.is_alive()
            if timed_out:
                self.kill(proc)
        finally:
            self._current = None
        wall = time.perf_counter() - t0
        result = _read_result(result_path)
        if timed_out:
            return Outcome("timeout", result or {}, f"cell exceeded execution.timeout_s={timeout_s:g}s and was killed",
                           wall, None)
        if result is None:
            return Outcome("failed", {}, describe_exit(proc.exitcode), wall, None)
        overhead = wall - result["work_s"] if "work_s" in result else None
        return Outcome(result.get("status", "failed"), result, result.get("error"), wall, overhead)

    def backend_info(self, plugins: dict[str, Any], backends: list[dict[str, Any]],
                     timeout_s: float = 120.0) -> dict[str, Any]:
        """Every backend's hardware details, from a throwaway process ({} if it fails)."""
        self.start()
        receiver, sender = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=worker.backend_info, args=(plugins, backends, sender), name="backend-info")
        proc.start()
        sender.close()
        try:
            return receiver.recv() if receiver.poll(timeout_s) else {}
        except EOFError:
            return {}
        finally:
            proc.join(10)
            if proc.is_alive():
                self.kill(proc)
            receiver.close()

    def kill(self, proc: Any = None) -> None:
        """Kill a cell process and its process group (anything it started)."""
        proc = proc or self._current
        if proc is None or proc.pid is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.kill()
        except Exception:
            pass
        proc.join(10)


def _noop() -> None:
    pass


def start_forkserver() -> None:
    """Start the forkserver with this process's sys.path, so its preload imports work.

    Python 3.11's forkserver receives sys.path but does not apply it before importing
    the preload modules, which then fail silently whenever the harness is not on a
    fresh interpreter's default path; every cell would re-import torch.
    """
    from multiprocessing import forkserver

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    try:
        forkserver.ensure_running()
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
