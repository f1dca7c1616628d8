"""The quality metrics a suite names, checked before anything runs.

A metric entry names a registered metric (``rmse``), a torchmetrics class by its import path
(``torchmetrics.regression.R2Score``), or a class or function of the user's by reference
(``metrics.py:evaluate``, made absolute against the suite's folder by ``harness.suite.paths``). Each
becomes a ``MetricRef`` a cell carries: its record id (unique among the dataset's metrics), its params
(validated against a registered metric's own), and whether a higher score is better where the suite says.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from harness.builtin.factories import load_factory
from harness.errors import Problem, suggest
from harness.registry.manager import Registry
from harness.suite.loader import LineMap, format_loc, problems_from_validation

REGISTERED, TORCHMETRICS, REFERENCE = "registered", "torchmetrics", "reference"
TORCHMETRICS_PATH = re.compile(r"^torchmetrics(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@dataclass(frozen=True)
class MetricRef:
    """A metric as a cell is given it."""

    name: str
    id: str
    source: str
    params: dict[str, Any] = field(default_factory=dict)
    higher_is_better: bool | None = None


def source_of(name: str) -> str:
    if ":" in name:
        return REFERENCE
    if name.startswith("torchmetrics."):
        return TORCHMETRICS
    return REGISTERED


def default_id(name: str) -> str:
    """A metric's record id when the suite gives none: a registered metric's name, a class's name in snake case
    (R2Score: r2_score), a function's name."""
    if source_of(name) == REGISTERED:
        return name
    last = name.rpartition(":")[2].rpartition(".")[2]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", last).lower()


def _torchmetrics_problem(name: str) -> str | None:
    """Why ``name`` is no torchmetrics class here (None: it is one): a malformed path, torchmetrics not installed,
    no such module or class. Imports torchmetrics (seconds), only for a suite that names one of its classes."""
    if not TORCHMETRICS_PATH.match(name):
        return "not a torchmetrics class path"
    if importlib.util.find_spec("torchmetrics") is None:
        return "torchmetrics is not installed here (pip install torchmetrics, or optbench[torchmetrics])"
    module, _, cls = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), cls, None)
    except ImportError as exc:
        return f"no module {module}: {exc}"
    if not isinstance(found, type):
        return f"{module} has no class {cls}"
    return None


def resolve_metrics(entries: list[Any], registry: Registry, loc: tuple, lines: LineMap) -> tuple[list[MetricRef],
                                                                                                list[Problem]]:
    """The ``MetricRef`` of each entry (validated), and the problems of those that are not."""
    refs, problems, ids = [], [], {}
    for i, entry in enumerate(entries):
        where = (*loc, i)
        source = source_of(entry.name)
        params = dict(entry.params)
        if source == REGISTERED:
            spec = registry.metrics.get(entry.name)
            if spec is None:
                problems.append(Problem(format_loc((*where, "name")), f"unknown metric {entry.name!r}",
                                        line=lines.line((*where, "name")), given=repr(entry.name),
                                        hint=suggest(entry.name, registry.metrics) + "; or a torchmetrics class "
                                        "(torchmetrics.regression.R2Score) or 'file.py:callable'"))
                continue
            try:
                params = spec.params.model_validate(params).model_dump(mode="json")
            except ValidationError as exc:
                problems += problems_from_validation(exc, lines, prefix=(*where, "params"), model=spec.params)
                continue
        elif source == TORCHMETRICS:
            problem = _torchmetrics_problem(entry.name)
            if problem:
                problems.append(Problem(format_loc((*where, "name")), problem, line=lines.line((*where, "name")),
                                        given=repr(entry.name), expected="torchmetrics.<module>.<Class>, e.g. "
                                                                         "torchmetrics.regression.R2Score"))
                continue
        elif source == REFERENCE:
            try:
                load_factory(entry.name)
            except Exception as exc:  # noqa: BLE001 - what fails to import is the user's to read, with its line
                problems.append(Problem(format_loc((*where, "name")), f"cannot load metric {entry.name!r}: {exc}",
                                        line=lines.line((*where, "name")),
                                        expected="'file.py:callable' (relative to the suite) or 'module:callable': "
                                                 "a metric class or a function (predictions, targets) -> float"))
                continue
        metric_id = entry.id or default_id(entry.name)
        if metric_id in ids:
            problems.append(Problem(format_loc(where), f"two metrics of this dataset are named {metric_id!r} in "
                                    f"records (also {format_loc((*loc, ids[metric_id]))})", line=lines.line(where),
                                    hint="give one of them an `id`"))
            continue
        ids[metric_id] = i
        refs.append(MetricRef(entry.name, metric_id, source, params, entry.higher_is_better))
    return refs, problems
