"""GitHub-flavoured markdown tables (``optbench export --format markdown``, ``optbench compare
--markdown``): cells that cannot break the table or smuggle HTML, links or images into a comment.

Names, params and errors come from suites, plugins and records.jsonl, which we do not control.
``md_cell`` writes any of them as inert text: control characters as visible escapes (``\\x1b``),
``&``, ``<`` and ``>`` as entities (no HTML tag, no ``<http://...>`` autolink), and a backslash
before every other character markdown acts on (``\\ | [ ] ! ` *``, an ``_`` that could start or
end emphasis, the ``:`` of ``://`` and the ``.`` of ``www.``), so no link, image, code span or
emphasis can form; line breaks become spaces. Text the harness writes as markup on purpose
(``**fail**``) is passed as ``Markup`` and kept.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from harness.results.labels import printable


class Markup(str):
    """A cell the harness wrote as markdown on purpose (``**fail**``): ``md_cell`` keeps it."""


# Backslash-escaped: everything markdown (GFM) acts on in a table cell except what becomes an
# entity. "_" only where it may open or close emphasis (not between two letters or digits, as in
# test_fraction, which renders as written anyway), so common names read the same in the source.
_ACTIVE = re.compile(r"[\\|\[\]!`*]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|:(?=//)|(?<=www)\.", re.IGNORECASE)
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md_text(text: Any) -> str:
    """Text inert in markdown (see the module docstring); whitespace runs, line breaks included,
    become one space."""
    text = printable(text, keep="\t\n\r\f\v")
    text = re.sub(r"[&<>]", lambda m: _ENTITIES[m.group()], text)
    text = _ACTIVE.sub(lambda m: "\\" + m.group(), text)
    return " ".join(text.split())


def md_code(text: Any) -> str:
    """Text as a code span (```20261201-151549-58f2```) when it is a plain identifier (letters, digits,
    ``. _ : + -``); anything else as ``md_text``, since inside a code span a backslash escapes
    nothing and a backtick would end it."""
    text = printable(text)
    return f"`{text}`" if re.fullmatch(r"[\w.:+-]+", text) else md_text(text)


def md_cell(text: Any) -> str:
    """Text safe inside a markdown table cell: no pipes, no line breaks, no HTML tags, links, images or
    escape sequences (names come from suites and plugins; GitHub renders HTML in a comment). A
    ``Markup`` cell is the harness's own markdown and kept, but its pipes and line breaks still go."""
    if isinstance(text, Markup):
        return " ".join(str(text).replace("|", "\\|").split())
    return md_text(text)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] = ()) -> str:
    """A GitHub-flavoured markdown table; ``right[i]`` right-aligns column i (numbers)."""
    align = ["---:" if i < len(right) and right[i] else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(md_cell(h) for h in headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(md_cell(c) or " " for c in row) + " |" for row in rows]
    return "\n".join(lines)
