"""Errors a user sees: each names where the problem is and what was expected."""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field


class OptbenchError(Exception):
    """Base for errors shown to the user without a traceback (exit code 2)."""

    exit_code = 2


class Interrupted(OptbenchError):
    """The user stopped a run (Ctrl-C); finished cells are kept."""

    exit_code = 130


class RegistrationError(OptbenchError):
    """A plugin registered something malformed or a duplicate name."""


@dataclass
class Problem:
    """One thing wrong with a suite: where (file, YAML path, line), what was expected, what was given."""

    path: str
    message: str
    line: int | None = None
    expected: str | None = None
    given: str | None = None
    hint: str | None = None

    def render(self, file: str | None) -> str:
        where = file or "<suite>"
        if self.line is not None:
            where += f":{self.line}"
        loc = f" at {self.path}" if self.path else ""
        lines = [f"{where}{loc}: {self.message}"]
        if self.expected is not None:
            lines.append(f"    expected: {self.expected}")
        if self.given is not None:
            lines.append(f"    given:    {self.given}")
        if self.hint:
            lines.append(f"    {self.hint}")
        return "\n".join(lines)


@dataclass
class SuiteError(OptbenchError):
    """One or more problems in a suite file."""

    file: str | None
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"invalid suite {self.file}" if self.file else "invalid suite"
        count = len(self.problems)
        body = "\n".join(p.render(self.file) for p in self.problems)
        return f"{head}: {count} problem{'s' if count != 1 else ''}\n{body}"


def suggest(given: str, choices: Iterable[str]) -> str:
    """'did you mean' text listing near misses, then every valid choice."""
    choices = sorted(choices)
    close = difflib.get_close_matches(given, choices, n=3, cutoff=0.75)
    text = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return text + f"valid names: {', '.join(choices) if choices else '(none installed)'}"
