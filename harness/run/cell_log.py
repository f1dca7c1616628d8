"""A cell's log: the lines the harness writes into it from inside the cell (``log``), and the cap every
executor puts on what a cell prints (``execution.log_limit_mb``), so a flooding cell cannot fill the run
folder or, shipped from a Ray node, the object store.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def log(msg: str) -> None:
    """A timestamped line in the cell's log (stdout is the log inside a cell's process)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _limit_bytes(limit_mb: float | None) -> int | None:
    return None if not limit_mb else int(limit_mb * 2**20)


def capped_note(limit_mb: float, dropped: int) -> str:
    """The line a capped log ends with."""
    return (f"[optbench] log capped at execution.log_limit_mb={limit_mb:g}: {dropped:,} more bytes of output were "
            "dropped\n")


class CappedLog:
    """A cell's log file, written by the executor from the cell's output pipe, keeping at most
    ``limit_mb`` (then a line saying how much was dropped)."""

    def __init__(self, path: Path, limit_mb: float | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fh = open(path, "ab")  # noqa: SIM115 - closed by close()
        self.limit_mb = limit_mb
        self.limit = _limit_bytes(limit_mb)
        self.written = 0
        self.dropped = 0

    def write(self, data: bytes) -> None:
        if self.limit is not None and self.written + len(data) > self.limit:
            keep = max(self.limit - self.written, 0)
            self.dropped += len(data) - keep
            data = data[:keep]
        if data:
            self.fh.write(data)
            self.fh.flush()
            self.written += len(data)

    def drain(self, receiver: Any, max_bytes: int = 64 * 2**20) -> None:
        """What is still in the pipe once the cell is gone (without waiting for writers that escaped)."""
        fd = receiver.fileno()
        os.set_blocking(fd, False)
        got = 0
        while got < max_bytes:
            try:
                data = os.read(fd, 1 << 16)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if not data:
                break
            got += len(data)
            self.write(data)

    def note(self, text: str) -> None:
        self.fh.write(f"[optbench] {text}\n".encode())

    def close(self) -> None:
        if self.dropped and self.limit_mb:
            self.fh.write(capped_note(self.limit_mb, self.dropped).encode())
        self.fh.close()


def read_capped(path: Path, limit_mb: float | None) -> str:
    """A log file's text as a capped log keeps it: at most ``limit_mb``, then the line ``CappedLog`` ends
    with (a Ray node's cell log, written uncapped while the cell runs, as it is shipped to the driver)."""
    limit = _limit_bytes(limit_mb)
    with open(path, "rb") as fh:
        data = fh.read() if limit is None else fh.read(limit)
        size = fh.seek(0, os.SEEK_END)
    text = data.decode("utf-8", errors="replace")
    if limit is not None and limit_mb and size > limit:
        text += capped_note(limit_mb, size - limit)
    return text
