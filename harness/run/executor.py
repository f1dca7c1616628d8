"""The executor interface: where cells run. The runner hands an executor every cell of a run as a ``Job``
and is told, cell by cell, how each ended (an ``Outcome``); ``LocalExecutor`` runs them one at a time
on this machine, ``RayExecutor`` as tasks on a Ray cluster.
"""
from __future__ import annotations

import abc
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.record.status import Status
from harness.run.cell_payload import CellPayload, CellResult


@dataclass
class Job:
    """One cell to run: its payload, the device slot its timing needs to itself (``BackendSession.device_key``),
    the label progress shows, and whether it is a baseline (a concurrent executor starts those first, so
    every other cell's relative figures can be filled as it ends)."""

    cell_id: str
    payload: CellPayload
    device_key: str
    label: str = ""
    baseline: bool = False


@dataclass
class Outcome:
    """How one cell's process ended."""

    status: str  # ok | failed | oom | timeout | skipped
    result: CellResult | None
    error: str | None
    wall_s: float  # from asking for a process to having its result
    overhead_s: float | None  # wall_s minus the time the cell itself reported working

    @classmethod
    def of(cls, result: CellResult, wall_s: float) -> Outcome:
        overhead = wall_s - result.work_s if result.work_s is not None else None
        return cls(result.status, result, result.error, wall_s, overhead)


class Executor(abc.ABC):
    """Runs a run's cells, each in a process of its own."""

    name: str = "executor"

    def begin(self) -> None:
        """Start what takes long to start (a forkserver's imports) without waiting for it; ``start`` waits."""

    @abc.abstractmethod
    def start(self) -> float:
        """Be ready to run cells; returns the seconds that took (reported apart from per-cell overhead)."""

    def backend_info(self, plugins: dict[str, Any], backends: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Every backend's hardware details for env.json, read in a throwaway process; None when this executor
        does not read them (they would describe another machine than the cells run on)."""
        return None

    def describe(self) -> dict[str, Any] | None:
        """For run.json: where cells ran and what was enforced; None when there is nothing to say."""
        return None

    @abc.abstractmethod
    def run_many(self, jobs: list[Job], timeout_s: float, on_start: Callable[[Job], None],
                 on_done: Callable[[Job, Outcome], None]) -> None:
        """Run ``jobs``, calling ``on_start`` as each starts and ``on_done`` (in the caller's thread) as each
        ends, however it ends."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Stop every running cell now (Ctrl-C), with whatever it started."""

    def shutdown(self) -> None:
        """Release what ``start`` took (a Ray instance it started)."""


def describe_exit(code: int | None, oom_kills: tuple[int | None, int | None] = (None, None)) -> tuple[str, str]:
    """(status, error) of a cell process that ended without writing its result. ``oom_kills`` is the
    kernel's OOM-kill count before and after the cell ran (``limits.oom_kills``): a SIGKILL while it
    rose is the OOM killer's (status ``oom``); one while it did not is someone else's."""
    if code is None:
        return Status.FAILED, "did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code != signal.SIGKILL:  # a crash's Python stack is in its log (faulthandler)
            return Status.FAILED, f"cell process killed by {name}"
        before, after = oom_kills
        if before is None or after is None:
            return Status.FAILED, (f"cell process killed by {name} (likely out of memory: the kernel's OOM killer "
                                   "sends SIGKILL)")
        if after > before:
            return Status.OOM, (f"out of memory: the kernel's OOM killer killed the cell process (its oom_kill count "
                                f"went {before} -> {after} while the cell ran); set execution.memory_limit_mb below "
                                "what the machine has free so the cell fails its own allocation instead")
        return Status.FAILED, (f"cell process killed by {name}, not by the OOM killer (the kernel's oom_kill count "
                               "did not change)")
    return Status.FAILED, f"cell process exited with code {code} before writing its result"
