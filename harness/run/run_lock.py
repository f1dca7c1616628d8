"""One writer per run folder, and a run folder's files its own.

A run or a ``--resume`` holds an exclusive ``flock`` on ``RUN_DIR/.lock`` for as long as it writes the
folder; a second writer is refused with the holder's pid instead of rerunning the same pending cells at
the same time (duplicate records, timings taken under each other's load). The kernel drops the lock
when its process dies, so a killed run never leaves a stale lock behind.

Before writing, the folder's own files (records, metadata, report, cell folders and their logs) are
checked not to be symbolic links: a link planted in a run folder would make the harness truncate or
append to whatever it points at.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from types import TracebackType

from harness.errors import OptbenchError

LOCK_FILE = ".lock"
#: The files a run writes at the top of its folder, and in each cell folder.
RUN_FILES = ("records.jsonl", "run.json", "env.json", "suite.yaml", "report.html", "cells", LOCK_FILE)
CELL_FILES = ("log.txt", "result.json", "samples.json", "curve.json")


def check_own_files(run_dir: Path) -> None:
    """Refuse a run folder whose files (or cell folders) are symbolic links."""
    paths = [run_dir / name for name in RUN_FILES]
    cells = run_dir / "cells"
    if cells.is_dir() and not cells.is_symlink():
        for cell in cells.iterdir():
            paths.append(cell)
            if cell.is_dir() and not cell.is_symlink():
                paths += [cell / name for name in CELL_FILES]
    for path in paths:
        if path.is_symlink():
            raise OptbenchError(f"{path}: is a symbolic link (to {os.readlink(path)}); a run folder's files must be "
                                "its own, so optbench will not write through it; remove the link")


class RunLock:
    """``with RunLock(run_dir):`` holds the folder's lock, or raises OptbenchError naming its holder."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; one writer is then the user's to ensure
            return self
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise OptbenchError(f"{self.path}: cannot open the run's lock file ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise OptbenchError(f"{self.path.parent}: is being written by another optbench ({holder}); wait for it to "
                                "finish (or stop it) before running or resuming this run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, since {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC\n"
                  .encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the flock; the file stays, empty of meaning
            self.fd = None
