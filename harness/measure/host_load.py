"""Other processes' CPU use while a cell is measured.

The noise flag (IQR / median) misses a steady slowdown: on an oversubscribed machine a
model's intra-op threads can wait on each other for whole scheduler slices on every call,
so a 0.6 ms call reads a steady 60 ms with a tight spread. What gives that away is the
machine's CPU time that this process (threads and reaped children included) did not use:
``OtherCPU`` reads /proc/stat and ``os.times()`` around the measured window and reports
the mean number of cores busy with something else (steal time included: a VM's
neighbours count). Linux only; elsewhere the reading is None.

``BlockLoad`` reads one timed block: the other processes' cores, and the share of this
process's running threads' time spent runnable but waiting for a CPU (the scheduler's run
delay, ``/proc/self/task/*/schedstat``, in ns). The wait is the direct measure of a process
taking the cell's CPUs: about 0.2% on a quiet machine, 50% or more once another process takes
a core the cell's threads were using. It reads 0 for a thread blocked in I/O or a GPU sync (not
runnable), and it misses a neighbour that slows the cell without taking its CPU: on the 2-vCPU
development VM a busy loop on the other vCPU made a 1-thread mlp 1.5x slower with no wait at
all (the vCPUs share a physical core, or its caches and memory bandwidth), which the other
processes' cores (about 1.0 there, steal included) show.
"""
from __future__ import annotations

import os
import time
from types import TracebackType

#: Mean cores busy with other processes above which a cell's timing is called contended.
CONTENDED_CORES = 0.2
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (guest is inside user)


def _machine_busy_s() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            first = f.readline().split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    ticks = [int(v) for v in first[1:]]
    return sum(ticks[i] for i in _BUSY_FIELDS if i < len(ticks)) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def cores() -> int:
    """Logical CPUs of the machine (what /proc/stat counts): no reading of other cores goes above it."""
    return os.cpu_count() or 1


def task_times() -> dict[str, tuple[int, int]] | None:
    """{thread id: (ns on a CPU, ns runnable but waiting)} for this process's threads, or None where
    the kernel does not expose schedstat."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    out: dict[str, tuple[int, int]] = {}
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat", encoding="ascii") as f:
                run, wait = f.read().split()[:2]
            out[tid] = (int(run), int(wait))
        except (OSError, ValueError):
            continue  # a thread that ended between listing and reading
    return out or None


class BlockLoad:
    """``with BlockLoad() as load: <one timed block>``, then ``load.wait_share`` (mean share of the
    block's active threads' time spent waiting for a CPU; None without schedstat), ``load.other_cores``
    (mean cores busy with other processes, between 0 and the machine's cores; None off Linux) and
    ``load.wall_s``."""

    def __init__(self) -> None:
        self.wait_share: float | None = None
        self.other_cores: float | None = None
        #: How far ``other_cores`` can be off from /proc/stat's 10 ms ticks: one tick per CPU the
        #: cell's threads ran on, over the block (its own time is exact, from schedstat).
        self.other_cores_error = 0.0
        self.wall_s = 0.0

    def __enter__(self) -> BlockLoad:
        self._tasks = task_times()
        self._busy, self._own = _machine_busy_s(), _own_cpu_s()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.wall_s = wall = time.perf_counter() - self._wall
        tasks, busy = task_times(), _machine_busy_s()
        if wall <= 0:
            return
        own_s = _own_cpu_s() - self._own
        if tasks is not None and self._tasks is not None:
            ran = waited = 0
            active = 0
            for tid, (run, wait) in tasks.items():
                run0, wait0 = self._tasks.get(tid, (0, 0))  # a thread born in the block counts from 0
                if run > run0 or wait > wait0:
                    active += 1
                    ran += run - run0
                    waited += wait - wait0
            self.wait_share = waited / 1e9 / wall / max(active, 1)
            own_s = max(own_s, ran / 1e9)  # ns-exact where os.times() counts 10 ms ticks
            tick = 1 / os.sysconf("SC_CLK_TCK")
            self.other_cores_error = min(max(active, 1), cores()) * tick / wall
        if busy is not None and self._busy is not None:
            self.other_cores = min(max(0.0, (busy - self._busy - own_s) / wall), float(cores()))


class OtherCPU:
    """``with OtherCPU() as other: ...`` then ``other.cores``: mean cores busy with other processes."""

    def __init__(self) -> None:
        self.cores: float | None = None

    def __enter__(self) -> OtherCPU:
        self._busy, self._own, self._wall = _machine_busy_s(), _own_cpu_s(), time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        busy, wall = _machine_busy_s(), time.perf_counter() - self._wall
        if busy is None or self._busy is None or wall <= 0:
            return
        other = (busy - self._busy) - (_own_cpu_s() - self._own)
        self.cores = min(max(0.0, other / wall), float(cores()))  # tick rounding can read above the machine
