"""One declaration per record field.

A record is one flat JSON object per cell x measured point. Every key it may hold is declared
once, here or by the plugin that writes it (``register_fields``): its type, unit, a short label for
tables, a group, a one-line doc, and its owner. Validation, the DataFrame dtypes, the records page
of the docs and every view's labels come from these declarations, so a new figure is one line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: The types a field's value may have (null is always allowed: a figure not measured).
TEXT, NUMBER, INTEGER, BOOL, OBJECT, LIST, TIMESTAMP = ("text", "number", "integer", "bool", "object", "list",
                                                         "timestamp")
FIELD_TYPES = (TEXT, NUMBER, INTEGER, BOOL, OBJECT, LIST, TIMESTAMP)
#: What a value of each type is, as an error message says it.
EXPECTED = {TEXT: "text", NUMBER: "a finite number", INTEGER: "a finite number", BOOL: "true or false",
            OBJECT: "an object", LIST: "a list", TIMESTAMP: "text"}
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: The owner of the harness's own fields.
CORE = "core"


@dataclass(frozen=True)
class RecordField:
    """A record field: what it holds and who writes it.

    ``type`` is one of FIELD_TYPES (``integer``: a count; ``number``: a measurement); ``unit`` is
    what a number is in ("ms", "MB", "bytes", "s", "x" for a ratio, ...), None for text and
    flags; ``label`` is how a table heads it; ``group`` gathers related fields on the records page
    ("latency", "quality", ...); ``doc`` says in one line what it is. ``caveat``: for a flag or
    count, the warning a run prints when a record has it set (true or above 0), e.g. "another
    process used the GPU while it was measured". ``qualifies``: for a text field that says how a
    backend ran (a precision), shown beside the backend's name wherever it is not ``usual``.
    ``owner`` is set by the harness when it registers the declaration (core, or the plugin).
    """

    name: str
    type: str
    doc: str
    group: str
    label: str = ""
    unit: str | None = None
    caveat: str | None = None
    qualifies: str | None = None
    usual: Any = None
    owner: str = CORE

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not FIELD_NAME.match(self.name):
            raise ValueError(f"record field name {self.name!r}: expected lower-case letters, digits and _")
        if self.type not in FIELD_TYPES:
            raise ValueError(f"record field {self.name!r}: type {self.type!r} is not one of {', '.join(FIELD_TYPES)}")
        if not isinstance(self.doc, str) or not self.doc.strip() or "\n" in self.doc:
            raise ValueError(f"record field {self.name!r}: needs a one-line doc")
        if not isinstance(self.group, str) or not self.group.strip():
            raise ValueError(f"record field {self.name!r}: needs a group")
        if self.qualifies not in (None, "backend"):
            raise ValueError(f"record field {self.name!r}: qualifies {self.qualifies!r}; only 'backend' is known")
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " "))

    @property
    def numeric(self) -> bool:
        return self.type in (NUMBER, INTEGER)

    def with_owner(self, owner: str) -> RecordField:
        from dataclasses import replace

        return replace(self, owner=owner)
