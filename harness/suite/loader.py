"""Reading a suite file: YAML (safe loader only) to validated models, with located errors.

Every problem is reported with the file, its YAML path (``methods[1].params.sparsity[0]``)
and line, what was expected and what was given. Line numbers come from composing the
same text into YAML nodes, which keeps marks that ``safe_load`` discards.

YAML from a user's file is read only by :class:`SuiteYAMLLoader` (``yaml.SafeLoader``
semantics) through :func:`load_yaml` / :func:`read_suite_text`, which refuse, before any
Python object is built: a file over ``MAX_FILE_BYTES``, nesting deeper than
``MAX_DEPTH``, more than ``MAX_NODES`` nodes counting every alias as the nodes it stands
for (so an alias bomb is refused after a few dozen events, not expanded), recursive
aliases, and duplicate keys in a mapping.
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

MAX_FILE_BYTES = 1024 * 1024
"""A suite file larger than this (1 MiB) is refused unread; the shipped suites are < 3 KB."""
MAX_DEPTH = 64
"""Deepest nesting of collections (and the scalar at the bottom) allowed, aliases expanded."""
MAX_NODES = 20_000
"""Most YAML nodes a suite may stand for, every alias counted as the whole node it names."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YAMLLimitError(yaml.MarkedYAMLError):
    """A suite file over one of the loader's limits, or a mapping with a duplicate key."""

    def __init__(self, problem: str, mark: Any, expected: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.expected = expected


class SuiteYAMLLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that checks the composed node graph before anything is constructed.

    Composition keeps aliases as references to one node, so it stays cheap however far
    aliases would expand; each node records the size and height it stands for, and an
    alias adds its target's, so the limits hold for the data ``safe_load`` would build.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0  # nesting of the node being composed (root: 1)
        self._deepest = 0  # deepest level reached, aliases expanded, in the current subtree
        self._nodes = 0  # nodes so far, aliases expanded
        self._sizes: dict[yaml.Node, tuple[int, int]] = {}  # node -> (expanded size, height)

    def _count(self, size: int, mark: Any) -> None:
        self._nodes += size
        if self._nodes > MAX_NODES:
            raise YAMLLimitError(
                f"more YAML nodes than the limit of {MAX_NODES} (aliases expanded)",
                mark, f"at most {MAX_NODES} nodes; a suite needs a few hundred (is this an alias bomb?)",
            )

    def _reach(self, level: int, mark: Any) -> None:
        if level > MAX_DEPTH:
            raise YAMLLimitError(
                f"YAML nested deeper than the limit of {MAX_DEPTH} levels (aliases expanded)",
                mark, f"at most {MAX_DEPTH} levels of nesting",
            )
        self._deepest = max(self._deepest, level)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:  # an unknown one: the base composer reports it
                if target not in self._sizes:
                    raise YAMLLimitError(
                        f"recursive alias *{event.anchor}: it refers to a node that contains it",
                        event.start_mark, "aliases to nodes defined before (not around) them",
                    )
                size, height = self._sizes[target]
                self._reach(self._depth + height, event.start_mark)
                self._count(size, event.start_mark)
            return super().compose_node(parent, index)
        mark = self.peek_event().start_mark
        self._depth += 1
        self._reach(self._depth, mark)
        self._count(1, mark)
        before, outer_deepest = self._nodes, self._deepest
        self._deepest = self._depth
        node = super().compose_node(parent, index)
        self._sizes[node] = (self._nodes - before + 1, self._deepest - self._depth + 1)
        self._deepest = max(outer_deepest, self._deepest)
        self._depth -= 1
        if isinstance(node, yaml.MappingNode):
            self._check_duplicate_keys(node)
        return node

    def _check_duplicate_keys(self, node: yaml.MappingNode) -> None:
        """Refuse a key given twice in one mapping (``safe_load`` keeps the last silently).

        Keys are compared as the values they construct to (``1`` and ``0x1`` are one key);
        merge keys (``<<``) are not keys, and a key may still override a merged one.
        """
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            try:
                key = self.construct_object(key_node, deep=True)
                first = seen.setdefault(key, key_node)
            except (yaml.YAMLError, TypeError):
                continue  # the constructor reports a bad key when it builds the mapping
            if first is not key_node:
                line, first_line = key_node.start_mark.line + 1, first.start_mark.line + 1
                raise YAMLLimitError(
                    f"duplicate key {key!r} at line {line}; first at line {first_line}",
                    key_node.start_mark, "each key once in a mapping",
                )


def load_yaml(text: str, file: str | None) -> Any:
    """YAML text -> Python data with ``SuiteYAMLLoader``; any problem is a located SuiteError."""
    if len(text) * 4 > MAX_FILE_BYTES:  # UTF-8 takes at most 4 bytes a character: count only then
        _check_size(len(text.encode("utf-8", "surrogatepass")), file)
    loader = SuiteYAMLLoader(text)
    try:
        return loader.get_single_data()
    except YAMLLimitError as exc:
        raise SuiteError(file, [Problem("", exc.problem, line=_line(exc), expected=exc.expected)]) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError(
            file, [Problem("", f"malformed YAML: {problem}", line=_line(exc), expected="valid YAML")]
        ) from None
    finally:
        loader.dispose()


def _line(exc: yaml.YAMLError) -> int | None:
    mark = getattr(exc, "problem_mark", None)
    return mark.line + 1 if mark is not None else None


def _check_size(size: int, file: str | None, *, more: bool = False) -> None:
    if size > MAX_FILE_BYTES:
        given = f"more than {MAX_FILE_BYTES} bytes" if more else f"{size} bytes"
        raise SuiteError(file, [Problem(
            "", f"the file is larger than the limit of {MAX_FILE_BYTES} bytes ({MAX_FILE_BYTES // 1024} KiB)",
            expected=f"a suite file of at most {MAX_FILE_BYTES} bytes", given=given,
        )])


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
            self.root = yaml.compose(text, Loader=SuiteYAMLLoader)
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
    """A suite file's text (UTF-8), refused past ``MAX_FILE_BYTES`` without reading it all."""
    path = Path(path)
    if not path.exists():
        raise SuiteError(str(path), [Problem("", "file not found", expected="a path to a suite YAML file")])
    if path.is_dir():
        raise SuiteError(str(path), [Problem("", "is a directory", expected="a suite YAML file")])
    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                _check_size(size, str(path))
            data = f.read(MAX_FILE_BYTES + 1)  # bounded even where st_size says nothing (/dev/zero)
        _check_size(len(data), str(path), more=True)
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(str(path), [Problem("", f"cannot read: {exc}")]) from None


def parse_suite(text: str, file: str | None) -> tuple[Suite, LineMap]:
    """YAML text -> validated Suite (structure only; plugins are checked by the matrix)."""
    data = load_yaml(text, file)
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
