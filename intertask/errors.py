"""Error types. Every message names what was wrong, where, and what was expected."""

from __future__ import annotations

import difflib
from pathlib import Path


class IntertaskError(Exception):
    """Base class of every error the framework raises on purpose."""


class ConfigError(IntertaskError):
    """A configuration value is unknown, of the wrong type, or inconsistent."""


class DataFormatError(IntertaskError):
    """A data file does not have the expected format.

    `where` is a 1-based line number for line-oriented files, or a record path
    (e.g. ``data[3].paragraphs[0].qas[2]``) for nested JSON.
    """

    def __init__(self, path: str | Path, where: int | str | None, problem: str):
        self.path = str(path)
        self.where = where
        self.problem = problem
        if where is None:
            location = self.path
        elif isinstance(where, int):
            location = f"{self.path}, line {where}"
        else:
            location = f"{self.path}, {where}"
        super().__init__(f"{location}: {problem}")


def closest(name: str, choices) -> list[str]:
    """Names among `choices` that look like `name` (for "did you mean" hints)."""
    return difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)


def unknown_name_message(kind: str, name: str, choices) -> str:
    hint = closest(name, choices)
    msg = f"unknown {kind} {name!r}"
    if hint:
        msg += f"; did you mean {' or '.join(repr(h) for h in hint)}?"
    else:
        msg += f"; known: {', '.join(sorted(choices))}"
    return msg
