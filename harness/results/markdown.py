"""GitHub-flavoured markdown tables (``optbench export --format markdown``, ``optbench compare
--markdown``): cells that cannot break the table or smuggle HTML into a comment."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def md_cell(text: Any) -> str:
    """Text safe inside a markdown table cell: no pipes, no line breaks, no HTML tags (names come from
    suites and plugins; GitHub renders HTML in a comment)."""
    text = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.split())


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] = ()) -> str:
    """A GitHub-flavoured markdown table; ``right[i]`` right-aligns column i (numbers)."""
    align = ["---:" if i < len(right) and right[i] else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(md_cell(h) for h in headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(md_cell(c) or " " for c in row) + " |" for row in rows]
    return "\n".join(lines)
