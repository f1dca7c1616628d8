"""The record schema: every declared field, a check of one value or a whole record against it, and a
record assembled from typed parts.

Writing: a cell's figures come from several sources (the run's identity of the cell, the timing
summary, the backend's facts and memory reading, the method's facts, the quality steps), each a
``RecordPart``. ``assemble`` joins them; a field two parts write is an error naming both (a
backend's memory reading can no longer silently override the model's size), as are a field no one
declared and a value of the wrong type. Reading: ``validate`` keeps what it can of a line of
records.jsonl written by anyone (a field of the wrong type is read as null, with the reason).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.record.core_fields import CORE_FIELDS
from harness.record.field import BOOL, EXPECTED, LIST, NUMBER, OBJECT, TEXT, TIMESTAMP, RecordField

#: Text every reader keys on or labels a row with: a record without it is skipped.
REQUIRED_TEXT = ("cell_id", "model", "dataset", "method", "backend", "status")
_INT_LIMIT = 2**63  # what an int64 column (pandas, parquet) holds; past it a float overflows soon


class RecordSchemaError(ValueError):
    """A record being written breaks the schema: two parts write one field, a field no one declared, a
    value of the wrong type. The cell that wrote it fails with this message."""


@dataclass(frozen=True)
class RecordPart:
    """Some of a record's fields and who wrote them ("the cpu backend's facts", "timing")."""

    source: str
    values: Mapping[str, Any] = field(default_factory=dict)


def bad_number(value: Any) -> bool:
    """A bool, a non-number, NaN or infinity, or an int no float or int64 column holds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    if isinstance(value, int):
        return abs(value) >= _INT_LIMIT
    return not math.isfinite(value)


def shown(value: Any, limit: int = 60) -> str:
    """A value as a message quotes it: ascii() (no control character reaches a terminal), cut short."""
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def wrong_type(declared: RecordField | None, value: Any) -> bool:
    """Whether ``value`` (not null) breaks the field's type; for an undeclared field, only a number that is
    not finite does."""
    if declared is None:
        return isinstance(value, float) and not math.isfinite(value)
    kind = declared.type
    if kind in (TEXT, TIMESTAMP):
        return not isinstance(value, str)
    if kind == BOOL:
        return not isinstance(value, bool)
    if kind == OBJECT:
        return not isinstance(value, dict)
    if kind == LIST:
        return not isinstance(value, list)
    return bad_number(value)  # NUMBER, INTEGER


class RecordSchema:
    """The fields a record may hold: the core's, then each plugin's, in declaration order."""

    def __init__(self, fields: Iterable[RecordField] = CORE_FIELDS) -> None:
        self.fields: dict[str, RecordField] = {}
        for f in fields:
            self.add(f)

    def add(self, declared: RecordField) -> None:
        """Declare one more field; a name already declared is an error naming both owners."""
        first = self.fields.get(declared.name)
        if first is not None:
            raise RecordSchemaError(f"record field {declared.name!r} is declared by {declared.owner} and already by "
                                    f"{first.owner}")
        self.fields[declared.name] = declared

    def extended(self, fields: Iterable[RecordField]) -> RecordSchema:
        out = RecordSchema(())
        out.fields = dict(self.fields)
        for f in fields:
            out.add(f)
        return out

    def __contains__(self, name: object) -> bool:
        return name in self.fields

    def get(self, name: str) -> RecordField | None:
        return self.fields.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.fields)

    def owned_by(self, owners: Iterable[str]) -> list[str]:
        """The names of the fields the core and ``owners`` declare, in order: what a record of a cell whose
        plugins are ``owners`` holds (null where not measured)."""
        wanted = {"core", *owners}
        return [name for name, f in self.fields.items() if f.owner in wanted]

    def of_type(self, *types: str) -> tuple[str, ...]:
        return tuple(name for name, f in self.fields.items() if f.type in types)

    # -- writing -----------------------------------------------------------------------------------
    def checked(self, parts: Iterable[RecordPart], reserved: Mapping[str, str] | None = None) -> list[RecordPart]:
        """``parts`` checked against the schema, as they will be written: a number that is not finite
        becomes null (not measured) and a numpy or 0-d tensor scalar a plain number; anything else that
        breaks the schema raises RecordSchemaError: a field two parts write (or one in ``reserved``, field
        -> the part that writes it later), a field no one declared, a value of the wrong type."""
        out: list[RecordPart] = []
        writer: dict[str, str] = dict(reserved or {})
        for part in parts:
            values: dict[str, Any] = {}
            for name, value in part.values.items():
                if name in writer:
                    raise RecordSchemaError(f"record field {name!r} is written by {part.source} and by "
                                            f"{writer[name]}; a field has one writer")
                declared = self.fields.get(name)
                if declared is None:
                    raise RecordSchemaError(f"{part.source} wrote record field {name!r}, which neither the harness nor "
                                            "a plugin declares (a plugin declares its fields with register_fields)")
                value = _plain(value)
                if value is not None and wrong_type(declared, value):
                    raise RecordSchemaError(f"{part.source} wrote {name} = {shown(value)}; expected "
                                            f"{EXPECTED[declared.type]} or null")
                writer[name] = part.source
                values[name] = value
            out.append(RecordPart(part.source, values))
        return out

    def assemble(self, parts: Iterable[RecordPart], reserved: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The fields of ``parts`` (``checked``) joined into one dict."""
        out: dict[str, Any] = {}
        for part in self.checked(parts, reserved):
            out.update(part.values)
        return out

    def normalise(self, record: Mapping[str, Any], names: Iterable[str] | None = None) -> dict[str, Any]:
        """``names`` (default: every declared field) first, each with a value (null if absent), then any other
        key of the record as it is."""
        out = {k: record.get(k) for k in (self.names if names is None else names)}
        out.update({k: v for k, v in record.items() if k not in out})
        return out

    # -- reading -----------------------------------------------------------------------------------
    def validate(self, obj: Any) -> tuple[dict[str, Any] | None, str | None]:
        """Check one parsed line of records.jsonl: ``(record, problem)``.

        ``(None, problem)``: not a record a reader can use (not an object; cell_id, model, dataset, method,
        backend or status missing or not text; cell_id empty; batch_size not a positive integer; run_id
        neither text nor null). ``(record, problem)``: usable, with the fields of the wrong type read as
        null (a copy; ``problem`` says which). ``(record, None)``: the record as it was. Numbers must be
        finite (NaN and infinity are read as null, in any field); a bool is not a number. Fields no one
        declared are kept as they are."""
        if not isinstance(obj, dict):
            return None, f"not a JSON object (a {type(obj).__name__})"
        fatal = _fatal_problems(obj)
        if fatal:
            return None, "; ".join(fatal)
        nulled = []
        for key, value in obj.items():
            declared = self.fields.get(key)
            if value is not None and wrong_type(declared, value):
                want = EXPECTED[declared.type if declared is not None else NUMBER]
                nulled.append((key, f"{key} is {shown(value)}, not {want}"))
        if not nulled:
            return obj, None
        record = {**obj, **{key: None for key, _ in nulled}}
        return record, "; ".join(text for _, text in nulled) + " (read as null)"


def _plain(value: Any) -> Any:
    """A numpy or 0-d tensor scalar as a Python number; a float that is not finite as None."""
    if type(value) not in (str, bool, int, float, dict, list) and value is not None and hasattr(value, "item"):
        try:
            value = value.item()
        except (TypeError, ValueError, RuntimeError):
            return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fatal_problems(obj: dict[str, Any]) -> list[str]:
    fatal = []
    for key in REQUIRED_TEXT:
        if key not in obj or obj[key] is None:
            fatal.append(f"{key} missing")
        elif not isinstance(obj[key], str):
            fatal.append(f"{key} is {shown(obj[key])}, not text")
    if obj.get("cell_id") == "":
        fatal.append("cell_id is empty")
    bs = obj.get("batch_size")
    if "batch_size" not in obj or bs is None:
        fatal.append("batch_size missing")
    elif isinstance(bs, bool) or not isinstance(bs, int) or not 0 < bs < _INT_LIMIT:
        fatal.append(f"batch_size is {shown(bs)}, not a positive integer")
    if obj.get("run_id") is not None and not isinstance(obj["run_id"], str):
        fatal.append(f"run_id is {shown(obj['run_id'])}, not text")
    return fatal


#: The harness's own fields alone (a reader that has not loaded the plugins).
CORE_SCHEMA = RecordSchema()
