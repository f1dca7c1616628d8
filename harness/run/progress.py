"""Progress of a run: a rich bar on a terminal, plain lines otherwise, nothing with -q."""
from __future__ import annotations

import sys
from typing import Any, TextIO

from harness.record.status import Status
from harness.results.labels import printable


class Progress:
    """Plain log lines, one per cell; the base for the others."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total = 0
        self.done = 0

    def start(self, total: int, run_dir: str, skipped_done: int = 0) -> None:
        self.total = total
        self.done = skipped_done
        self.line(f"run {run_dir}: {total} cells" + (f", {skipped_done} already done" if skipped_done else ""))

    def cell_started(self, label: str) -> None:
        pass

    def cell_finished(self, label: str, status: str, seconds: float, error: str | None) -> None:
        self.done += 1
        tail = f": {printable(error.splitlines()[0][:160])}" if error and status != Status.OK else ""
        label = printable(label)  # a plugin's error or a suite's id must not drive the terminal
        self.line(f"[{self.done}/{self.total}] {status:<7} {label} ({seconds:.1f}s){tail}")

    def line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        pass


class QuietProgress(Progress):
    def line(self, text: str) -> None:
        pass


def running_text(running: list[str]) -> str:
    """The cells in flight: the one cell, or with an executor running several, how many and the oldest."""
    if not running:
        return ""
    if len(running) == 1:
        return running[0]
    return f"{len(running)} running: {running[0]}, +{len(running) - 1} more"


class RichProgress(Progress):
    """A live bar with done/total, ETA and the cells in flight; finished cells print above it."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        self.console = Console(file=self.stream)
        self.bar = Bar(
            TextColumn("[bold]cells"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.description}"),
            console=self.console, transient=False,
        )
        self.task: Any = None
        self.running: list[str] = []

    def start(self, total: int, run_dir: str, skipped_done: int = 0) -> None:
        self.total, self.done = total, skipped_done
        self.bar.start()
        from rich.markup import escape

        done = f", {skipped_done} already done" if skipped_done else ""
        self.console.print(f"run [bold]{escape(run_dir)}[/]: {total} cells{done}", markup=True, highlight=False)
        self.task = self.bar.add_task("", total=total, completed=skipped_done)

    def cell_started(self, label: str) -> None:
        self.running.append(label)
        self.bar.update(self.task, description=running_text(self.running))

    def cell_finished(self, label: str, status: str, seconds: float, error: str | None) -> None:
        self.done += 1
        colour = {"ok": "green", "skipped": "yellow"}.get(status, "red")
        tail = f": {printable(error.splitlines()[0][:160])}" if error and status != Status.OK else ""
        label = printable(label)  # a plugin's error or a suite's id must not drive the terminal
        from rich.text import Text

        self.console.print(Text.assemble((f"{status:<7} ", colour), f"{label} ({seconds:.1f}s){tail}"))
        if label in self.running:
            self.running.remove(label)
        self.bar.update(self.task, advance=1, description=running_text(self.running))

    def line(self, text: str) -> None:
        from rich.text import Text

        self.console.print(Text(text))

    def close(self) -> None:
        self.bar.stop()


def make_progress(quiet: bool, stream: TextIO | None = None) -> Progress:
    stream = stream or sys.stderr
    if quiet:
        return QuietProgress(stream)
    if stream.isatty():
        return RichProgress(stream)
    return Progress(stream)
