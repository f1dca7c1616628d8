"""The reference of every record field: the declarations (``harness.record``) as a table a person reads,
the harness's fields by group, then each plugin's. ``optbench fields`` prints it; the records page of the
docs holds it (``docs/records.md``, checked against the declarations by the tests)."""
from __future__ import annotations

from harness.record.field import CORE, RecordField
from harness.record.schema import RecordSchema
from harness.results.markdown import Markup, markdown_table

#: The lines of docs/records.md the reference goes between.
BEGIN, END = "<!-- record fields: begin (optbench fields --markdown) -->", "<!-- record fields: end -->"


def _rows(fields: list[RecordField]) -> list[list[str]]:
    return [[Markup(f"`{f.name}`"), f.type, f.unit or "", f.doc] for f in fields]


def reference_markdown(schema: RecordSchema) -> str:
    """Markdown: one table per group of the harness's fields, in declaration order, then one per plugin."""
    parts: list[str] = []
    by_owner: dict[str, dict[str, list[RecordField]]] = {}
    for f in schema.fields.values():
        by_owner.setdefault(f.owner, {}).setdefault(f.group, []).append(f)
    for owner, groups in by_owner.items():
        level = "###" if owner == CORE else "####"
        if owner != CORE:
            parts.append(f"### Fields of the `{owner}` plugin")
        for group, fields in groups.items():
            parts.append(f"{level} {group[0].upper()}{group[1:]}")
            parts.append(markdown_table(["field", "type", "unit", "what"], _rows(fields)))
    return "\n\n".join(parts) + "\n"


def reference_text(schema: RecordSchema) -> str:
    """Plain lines for a terminal: owner and group headings, then ``name  type  unit  doc``."""
    lines: list[str] = []
    owner = group = None
    width = max(len(n) for n in schema.names)
    for f in schema.fields.values():
        if f.owner != owner:
            owner, group = f.owner, None
            lines.append(f"\n{'the harness' if owner == CORE else 'plugin ' + owner}:")
        if f.group != group:
            group = f.group
            lines.append(f"  {group}")
        unit = f" [{f.unit}]" if f.unit else ""
        lines.append(f"    {f.name:<{width}}  {f.type}{unit}: {f.doc}")
    return "\n".join(lines).lstrip("\n") + "\n"
