"""Host memory: the peak resident set size of this process over a window.

On Linux the kernel's high-water mark (VmHWM) is reset by writing "5" to
/proc/self/clear_refs, so the peak read after the window belongs to the window.
Where that is not possible, a thread samples RSS every millisecond instead (which
can miss a spike shorter than that).
"""
from __future__ import annotations

import os
import threading
from types import TracebackType

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def available_bytes() -> int | None:
    """Memory the system can give without swapping (MemAvailable), or None where it is not known."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def rss_bytes() -> int:
    """Current resident set size of this process."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _hwm_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakRSS:
    """``with PeakRSS() as peak: ...`` then ``peak.bytes`` is the window's peak RSS."""

    def __init__(self) -> None:
        self.bytes: int = 0
        self.method = "vmhwm"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRSS:
        if not (_reset_hwm() and _hwm_bytes() is not None):
            self.method = "sampled"
            self.bytes = rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self.bytes = max(self.bytes, rss_bytes())

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.bytes = max(self.bytes, rss_bytes())
        else:
            self.bytes = _hwm_bytes() or rss_bytes()
