"""The values a record's ``status`` takes, and the name of the implicit baseline method.

``Status`` is a ``StrEnum``: a member equals its text (``Status.OK == "ok"``) and is written to JSON
as that text, so records read back from disk compare with the constants directly.
"""
from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """How a cell ended (``docs/records.md``, "How a cell can end")."""

    OK = "ok"
    FAILED = "failed"
    OOM = "oom"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"


#: Every status, in the order counts are shown.
STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
#: Statuses that make a run's exit code 1 (a cell that could not be measured for a fault, not a Skip).
FAULTS: tuple[str, ...] = (Status.FAILED, Status.OOM, Status.TIMEOUT)
#: A cell's status from its records, worst first: a cell is as bad as its worst point.
WORST_FIRST: tuple[str, ...] = (Status.FAILED, Status.OOM, Status.TIMEOUT, Status.SKIPPED)

#: The method every cell is compared with: the trained model, unchanged. Added to every suite.
BASELINE = "baseline"
