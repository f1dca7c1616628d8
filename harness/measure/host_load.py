"""Other processes' CPU use while a cell is measured.

The noise flag (IQR / median) misses a steady slowdown: on an oversubscribed machine a
model's intra-op threads can wait on each other for whole scheduler slices on every call,
so a 0.6 ms call reads a steady 60 ms with a tight spread. What gives that away is the
machine's CPU time that this process (threads and reaped children included) did not use:
``OtherCPU`` reads /proc/stat and ``os.times()`` around the measured window and reports
the mean number of cores busy with something else (steal time included: a VM's
neighbours count). Linux only; elsewhere the reading is None.
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
        self.cores = max(0.0, other / wall)
