"""Errors that are expected and reported to users as one line, never as a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (bad input, bad arguments, missing service).

    ``exit_code`` follows the CLI convention: 2 for usage errors, 1 for data errors
    and unavailable services.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class DataError(UserError):
    """Input data that cannot be read: names the file and line where it can."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}", exit_code=1)
        self.path = path
        self.line = line
