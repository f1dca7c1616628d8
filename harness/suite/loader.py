"""Reading a suite file: YAML (safe loader only) to validated models, with located errors.

Every problem is reported with the file, its YAML path (``methods[1].params.sparsity[0]``)
and line, what was expected and what was given. Line numbers come from composing the
same text into YAML nodes, which keeps marks that ``safe_load`` discards.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from harness.errors import Problem, SuiteError, suggest
from harness.suite.schema import Suite

Loc = Sequence[str | int]


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class LineMap:
    """YAML path -> 1-based line, from the composed node tree."""

    def __init__(self, text: str) -> None:
        try:
            self.root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            self.root = None

    def line(self, loc: Loc) -> int | None:
        node, best = self.root, None
        if node is None:
            return None
        best = node.start_mark.line + 1
        for part in loc:
            child = None
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for k, v in node.value:
                    if getattr(k, "value", None) == part:
                        child = v
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if 0 <= part < len(node.value):
                    child = node.value[part]
            if child is None:
                break
            node, best = child, child.start_mark.line + 1
        return best


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _expected(err: dict[str, Any]) -> str | None:
    ctx = err.get("ctx") or {}
    t = err["type"]
    if t == "literal_error":
        return f"one of {ctx.get('expected')}"
    if t in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[t]
        bound = next(iter(ctx.values()), "?")
        return f"a number {op} {bound}"
    if t in ("too_short",):
        return f"at least {ctx.get('min_length')} item(s)"
    if t == "missing":
        return "this key to be present"
    if t == "string_pattern_mismatch":
        return f"text matching {ctx.get('pattern')}"
    return None


def problems_from_validation(
    exc: ValidationError,
    lines: LineMap,
    *,
    prefix: Loc = (),
    model: type[BaseModel] | None = None,
    loc_map: Any = None,
) -> list[Problem]:
    """Turn pydantic errors into located problems; ``loc_map`` may rewrite each loc."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(prefix) + tuple(loc_map(err["loc"]) if loc_map else err["loc"])
        # drop pydantic's union/function tags (e.g. "function-before[...]") from paths
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        path = format_loc(loc)
        given = None if err["type"] == "missing" else _short(err.get("input"))
        hint = None
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            message = f"unknown key {key!r}"
            allowed = _allowed_keys(model, loc[len(prefix):-1]) if model else []
            hint = suggest(key, allowed) .replace("valid names", "valid keys") if allowed else None
            given = None
        problems.append(
            Problem(path=path, message=message, line=lines.line(loc), expected=_expected(err), given=given, hint=hint)
        )
    return problems


def _allowed_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names of the (nested) model at ``loc``, for "did you mean"."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = _inner_model(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def read_suite_text(path: Path) -> str:
    path = Path(path)
    if not path.exists():
        raise SuiteError(str(path), [Problem("", "file not found", expected="a path to a suite YAML file")])
    if path.is_dir():
        raise SuiteError(str(path), [Problem("", "is a directory", expected="a suite YAML file")])
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(str(path), [Problem("", f"cannot read: {exc}")]) from None


def parse_suite(text: str, file: str | None) -> tuple[Suite, LineMap]:
    """YAML text -> validated Suite (structure only; plugins are checked by the matrix)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError(file, [Problem("", f"malformed YAML: {problem}", line=line, expected="valid YAML")]) from None
    lines = LineMap(text)
    if not isinstance(data, dict):
        raise SuiteError(
            file,
            [Problem("", "the suite must be a mapping of keys", line=1,
                     expected="keys such as name, datasets, models, methods", given=_short(data))],
        )
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise SuiteError(file, problems_from_validation(exc, lines, model=Suite)) from None
    return suite, lines


def load_suite(path: str | Path) -> tuple[Suite, LineMap]:
    path = Path(path)
    return parse_suite(read_suite_text(path), str(path))
