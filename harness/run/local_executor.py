"""Where cells run: the local executor, one OS process per cell.

Processes come from a forkserver that has imported torch, the harness and the
installed plugins once, so a cell starts in milliseconds instead of re-importing
torch (about a second) while still getting a clean address space: a segfault,
``os._exit``, an out-of-memory kill or a hang costs only that cell.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from harness.run import limits
from harness.run.cell_log import CappedLog
from harness.run.cell_payload import CellPayload, CellResult
from harness.run.executor import Executor, Job, Outcome, describe_exit

#: Imported once by the forkserver: FLOP counting and torch.optim pull in torch._dynamo (~2 s),
#: which every cell would otherwise pay again. scikit-learn (~2 s) is not: the digits split is
#: cached, so only a cell that makes it imports scikit-learn.
PRELOAD = ["harness.run.worker", "torch._dynamo"]


def _run_cell(payload: CellPayload, sender: Any) -> None:
    """The cell process's entry point. The worker (torch and all) is imported here, in the cell, where
    the forkserver has it already: the run's own process does not wait for torch to start it."""
    from harness.run import worker

    worker.run_cell(payload, sender)


def _backend_info(plugins: Any, backends: Any, sender: Any) -> None:
    from harness.run import worker

    worker.backend_info(plugins, backends, sender)


class LocalExecutor(Executor):
    """Runs one cell at a time in a fresh process from a shared forkserver."""

    name = "local"

    def __init__(self, preload: list[str] | None = None) -> None:
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD + list(preload or []))
        self._current: Any = None
        self.startup_s: float | None = None
        self._began: float | None = None

    def begin(self) -> None:
        """Start the forkserver without waiting for its preloads (torch, torch._dynamo: seconds of
        imports), so that they load while the run does its own set-up; ``start`` waits for them."""
        if self._began is None:
            self._began = time.perf_counter()
            start_forkserver()

    def start(self) -> float:
        """Start the forkserver (unless ``begin`` did) and wait until its preloads are imported (once
        per process).

        Returns the seconds spent since it began, reported apart from the per-cell overhead.
        """
        if self.startup_s is None:
            self.begin()
            t0 = self._began
            proc = self.ctx.Process(target=_noop, name="forkserver-warmup")
            proc.start()
            proc.join()
            self.startup_s = time.perf_counter() - t0
        return self.startup_s

    def run_many(self, jobs: list[Job], timeout_s: float, on_start: Callable[[Job], None],
                 on_done: Callable[[Job, Outcome], None]) -> None:
        """One cell after another, in the order given."""
        for job in jobs:
            on_start(job)
            on_done(job, self.run(job.payload, timeout_s))

    def run(self, payload: CellPayload, timeout_s: float) -> Outcome:
        """Run one cell to its end, however it ends: its output copied into its log (capped), its whole
        process group killed afterwards (children it left running included), its result read back."""
        self.start()
        files = payload.files
        files.result.unlink(missing_ok=True)
        log = CappedLog(files.log, payload.log_limit_mb)
        receiver, sender = self.ctx.Pipe(duplex=False)
        t0 = time.perf_counter()
        oom_before = limits.oom_kills()
        proc = self.ctx.Process(target=_run_cell, args=(payload, sender), name=f"cell-{payload.cell.cell_id}")
        self._current = proc
        timed_out = False
        try:
            _start_unbroken(proc)
            sender.close()
            timed_out = not _copy_output(proc, receiver, log, t0 + timeout_s)
        except BaseException:  # Ctrl-C while waiting: the cell must not outlive the run
            self.kill(proc)
            raise
        finally:
            leftover = self.kill(proc)
            log.drain(receiver)
            if leftover:
                log.note("the cell left processes running; they were killed with its process group")
            log.close()
            receiver.close()
            self._current = None
        wall = time.perf_counter() - t0
        result = CellResult.read(files.result)
        where = f"; see {files.log}"
        if timed_out:
            return Outcome("timeout", result, f"cell exceeded execution.timeout_s={timeout_s:g}s and was killed"
                           + where, wall, None)
        if result is None:
            status, error = describe_exit(proc.exitcode, (oom_before, limits.oom_kills()))
            return Outcome(status, None, error + where, wall, None)
        return Outcome.of(result, wall)

    def backend_info(self, plugins: dict[str, Any], backends: list[dict[str, Any]],
                     timeout_s: float = 120.0) -> dict[str, Any]:
        """Every backend's hardware details, from a throwaway process ({} if it fails)."""
        self.start()
        receiver, sender = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=_backend_info, args=(plugins, backends, sender), name="backend-info")
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

    def kill(self, proc: Any = None) -> bool:
        """Kill a cell process and its process group (anything it started). True when members of the
        group were still alive besides the cell itself (processes it left running)."""
        proc = proc or self._current
        if proc is None or proc.pid is None:
            return False
        leftover = False
        try:
            os.killpg(proc.pid, 0)  # anyone left in the group?
            leftover = proc.exitcode is not None  # the cell had exited: these are its children
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.kill()
        except Exception:  # noqa: BLE001 - already gone
            pass
        proc.join(10)
        return leftover


def _start_unbroken(proc: Any) -> None:
    """``proc.start()`` with Ctrl-C held back until the forkserver has the cell's whole payload: an
    interrupt in the middle of the hand-over made the half-started child print an EOFError traceback
    into the run's output. A Ctrl-C pressed meanwhile arrives right after, and the cell is then killed."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        proc.start()
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        proc.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _copy_output(proc: Any, receiver: Any, log: CappedLog, deadline: float) -> bool:
    """Copy the cell's output into its log until the cell exits (True) or the deadline passes (False)."""
    import select

    fd = receiver.fileno()
    open_pipe = True
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return not proc.is_alive()
        waiting = [proc.sentinel] + ([fd] if open_pipe else [])
        ready, _, _ = select.select(waiting, [], [], min(remaining, 5.0))
        if fd in ready:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                data = b""
            if data:
                log.write(data)
            else:
                open_pipe = False  # every writer closed it
        if proc.sentinel in ready:
            proc.join()
            return True


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
    # The forkserver shares the terminal's process group, so a Ctrl-C reaches it too; it ignores SIGINT
    # only once its preloads are imported, and a Ctrl-C before that printed a KeyboardInterrupt
    # traceback into the run's output. Started with SIGINT ignored (inherited through exec), it never
    # sees one; the runner stops cells itself.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    try:
        forkserver.ensure_running()
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
