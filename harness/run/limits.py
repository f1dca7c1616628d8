"""What a cell may use: memory (enforced inside the cell's process) and the size of its log.

The memory limit is ``RLIMIT_DATA``: the private writable memory a process may map (heap, anonymous
mmaps, thread stacks), inherited by every child it starts, so the cell's whole process tree is held
to it process by process. Past it an allocation fails at once (Python's ``MemoryError``, torch's
"can't allocate memory") instead of the machine swapping until the kernel's OOM killer picks a
process, which is not always the cell. Unlike ``RLIMIT_AS`` it does not count address space that is
only reserved (CUDA maps tens of GB it never touches). A cgroup would cap the tree's sum rather
than each process; it needs a writable cgroup v2 hierarchy, which containers seldom grant, so the
harness does not rely on one.
"""
from __future__ import annotations

import os

#: The default limit's share of the machine's memory, and what it always leaves to the system.
DEFAULT_SHARE = 0.8
RESERVE_MB = 1024


def total_memory_mb() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        return None


def default_memory_limit_mb() -> float | None:
    """80% of the machine's memory, leaving at least 1 GiB to the system (None where it is unknown)."""
    total = total_memory_mb()
    if total is None:
        return None
    return round(max(256.0, min(total * DEFAULT_SHARE, total - RESERVE_MB)))


def apply_memory_limit(limit_mb: float | None) -> None:
    """Hold this process (and what it starts) to ``limit_mb`` of private memory; no-op where unsupported."""
    if not limit_mb:
        return
    try:
        import resource
    except ImportError:  # not on Windows
        return
    limit = int(limit_mb * 2**20)
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is an allocation that failed (the limit reached, or the machine out of memory)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower()
                                              or "std::bad_alloc" in text)


def oom_kills() -> int | None:
    """How many processes the kernel's OOM killer has killed since boot (``oom_kill`` in /proc/vmstat,
    Linux 4.13+; it counts kills for a cgroup's limit too), or None where the kernel does not say."""
    try:
        with open("/proc/vmstat") as fh:
            for line in fh:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None
