"""The run's progress output: the rich bar's text for the cells in flight."""
from __future__ import annotations

import io

from harness.run.progress import RichProgress, running_text


def test_the_bar_names_the_cells_in_flight_even_when_several_run_at_once():
    assert running_text([]) == ""
    assert running_text(["a"]) == "a"
    assert running_text(["a", "b", "c"]) == "3 running: a, +2 more"
    progress = RichProgress(io.StringIO())
    progress.start(3, "results/x/run")
    try:
        progress.cell_started("a")
        progress.cell_started("b")
        assert progress.bar.tasks[0].description == "2 running: a, +1 more"
        progress.cell_finished("a", "ok", 0.1, None)
        assert progress.bar.tasks[0].description == "b"
        progress.cell_finished("b", "failed", 0.1, "RuntimeError: x")
        assert progress.bar.tasks[0].description == "" and progress.bar.tasks[0].completed == 2
    finally:
        progress.close()


def test_a_cells_error_cannot_drive_the_terminal():
    import io

    from harness.run.progress import Progress

    out = io.StringIO()
    progress = Progress(stream=out)
    progress.total = 1
    progress.cell_finished("mlp\x1b]0;owned\x07", "failed", 1.0, "RuntimeError: \x1b[2Jcleared")
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    assert "\\x1b[2Jcleared" in out.getvalue()
