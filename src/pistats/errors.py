"""The errors the library raises for expected trouble, each naming the problem in one line.

Nothing here knows the command line: a :class:`ConfigError` names a setting as the library
knows it (``events``, ``pistats.sink``), and ``pistats.cli`` says which flag that is. The
command line prints these errors as one line, never as a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_MENTION = re.compile(r"`([A-Za-z_][A-Za-z0-9_.]*)`")


class PistatsError(Exception):
    """Expected trouble a user can act on, described in one line."""


class ConfigError(PistatsError, ValueError):
    """A setting that cannot be used: ``field`` names it, ``problem`` completes the sentence.

    Other settings the problem mentions are written in backticks, so that a caller who knows
    the settings by other names can use those (see :meth:`describe`):

    >>> error = ConfigError("bad_fraction", "plus `duplicate_fraction` must stay below 0.9")
    >>> str(error)
    'bad_fraction plus duplicate_fraction must stay below 0.9'
    >>> error.describe({"bad_fraction": "--bad-fraction", "duplicate_fraction": "--duplicate-fraction"}.get)
    '--bad-fraction plus --duplicate-fraction must stay below 0.9'
    """

    def __init__(self, field: str, problem: str):
        super().__init__(field, problem)
        self.field = field
        self.problem = problem

    def describe(self, name: Callable[[str], str | None] = lambda field: None) -> str:
        """The message with each setting called ``name(setting)``, or its own name where that is None."""

        def called(setting: str) -> str:
            return name(setting) or setting

        problem = _MENTION.sub(lambda match: called(match.group(1)), self.problem)
        return f"{called(self.field)} {problem}"

    def __str__(self) -> str:
        return self.describe()


class DataError(PistatsError):
    """Input data that cannot be read: names the file and line where it can."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class ServiceError(PistatsError):
    """A service pistats works with (Kinesis, a local server, a topology) failed, cannot be
    reached, or is not in the state an operation needs."""
