"""Files a suite names, made absolute against the suite file's folder before anything runs.

A model's ``checkpoint``, every plugin parameter marked ``SuiteRelative`` (a ``python`` model's
factory file, a dataset's root folder) and a metric named by a file (``metrics.py:evaluate``) may be
written relative to the suite file. They are resolved
once, when the suite is planned, and written back into the suite, so the cells, the copy of the
suite kept in the run folder, and a later ``--resume`` all name the same files wherever they run.
"""
from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from harness.builtin.factories import resolve_factory
from harness.errors import Problem, SuiteError
from harness.plugin.types import SuiteRelative
from harness.registry.manager import Registry
from harness.suite.loader import LineMap
from harness.suite.schema import Suite


def _marker(annotation: Any) -> SuiteRelative | None:
    """The SuiteRelative inside an annotation: ``Annotated[str, SuiteRelative()]``, also within
    ``... | None`` or a ``list[...]`` of them."""
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, SuiteRelative):
            return meta
    for arg in typing.get_args(annotation):
        found = _marker(arg)
        if found is not None:
            return found
    return None


def relative_fields(params: type) -> dict[str, SuiteRelative]:
    """The parameters of a plugin's params model that name files, with their markers."""
    out = {}
    for name, field in getattr(params, "model_fields", {}).items():
        marker = next((m for m in field.metadata if isinstance(m, SuiteRelative)), None) or _marker(field.annotation)
        if marker is not None:
            out[name] = marker
    return out


def _resolve_value(value: Any, marker: SuiteRelative, base: Path) -> Any:
    if isinstance(value, str):
        return marker.apply(value, base)
    if isinstance(value, list):  # a grid over several files
        return [_resolve_value(v, marker, base) for v in value]
    if isinstance(value, dict):  # files by split: {train: a.csv, test: b.csv}
        return {k: _resolve_value(v, marker, base) for k, v in value.items()}
    return value


def resolve_paths(suite: Suite, registry: Registry, base: Path, file: str | None, lines: LineMap) -> Suite:
    """Checkpoints and ``SuiteRelative`` params of models and datasets, absolute (in place)."""
    problems = []
    for i, m in enumerate(suite.models):
        if m.checkpoint:
            path = Path(m.checkpoint).expanduser()
            path = path if path.is_absolute() else (base / path)
            if not path.is_file():
                loc = ("models", i, "checkpoint")
                problems.append(Problem(f"models[{i}].checkpoint", "checkpoint file not found",
                                        line=lines.line(loc), expected="an existing state_dict file", given=str(path)))
            m.checkpoint = str(path.resolve())
    for table, entries in (("models", suite.models), ("datasets", suite.datasets)):
        for entry in entries:
            spec = getattr(registry, table).get(entry.name)
            if spec is None or not isinstance(entry.params, dict):
                continue  # an unknown name is the matrix's to report
            for name, marker in relative_fields(spec.params).items():
                if name in entry.params:
                    entry.params[name] = _resolve_value(entry.params[name], marker, base)
    for metrics in [suite.measure.metrics, *(d.metrics for d in suite.datasets)]:
        for entry in metrics or ():
            if ":" in entry.name:
                try:
                    entry.name = resolve_factory(entry.name, base)
                except ValueError:
                    pass  # not a reference the way it is written: the matrix says so, with its line
    if problems:
        raise SuiteError(file, problems)
    return suite
