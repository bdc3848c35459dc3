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


# ----------------------------------------------------------------------------- exit codes, safe names

EXIT_UNEXPECTED = 1  # a bug or an unforeseen failure: one line on stderr, the traceback in a file
EXIT_USAGE = 2  # a bad command line, config, data file, store or checkpoint: one line naming it
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM (finished stages and store rows are kept; re-run to resume)

MAX_NAME_LENGTH = 200  # one path component; file systems allow 255 bytes


def check_name(value: object, what: str, allow_slash: bool = False) -> str:
    """`value` as a name that becomes a file or directory name, or a ConfigError naming `what`.

    A safe name is 1-200 characters of letters, digits and ``_ . + = , @ -``, does not start with ``.`` or ``-``
    (so never ``.``, ``..`` or a hidden file or an option), and holds no NUL, space, ``/`` or ``\\``. With
    `allow_slash`, ``/``-separated components each obey that (experiment names of grids: ``grid/panx/...``);
    an absolute path never passes.
    """
    if not isinstance(value, str):
        raise ConfigError(f"{what}: expected a name (a string), got {value!r}")
    parts = value.split("/") if allow_slash else [value]
    for part in parts:
        problem = _name_problem(part)
        if problem:
            example = "e.g. my-experiment or grid/panx/squad_v1/seed1" if allow_slash else "e.g. my-run_1"
            raise ConfigError(f"{what}: {value!r} is not a safe name ({problem}); use letters, digits and _ . + = , @ - ({example})")
    return value


def _name_problem(part: str) -> str | None:
    if not part:
        return "empty" if "/" not in part else "empty component"
    if len(part) > MAX_NAME_LENGTH:
        return f"{len(part)} characters, at most {MAX_NAME_LENGTH}"
    if part.startswith("."):
        return "starts with '.'"
    if part.startswith("-"):
        return "starts with '-'"
    bad = sorted({c for c in part if not (c.isalnum() or c in "_.+=,@-")})
    if bad:
        return "contains " + " ".join(repr(c) for c in bad[:5])
    return None
