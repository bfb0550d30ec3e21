"""What the subcommands share: the one-line UserError, settings named by their flags, progress bars.

Only the command line knows flags and draws bars: the library raises ``pistats.errors`` errors
naming its own settings, and reports progress through callbacks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class UserError(Exception):
    """A problem the user can fix (bad input, bad arguments, missing service).

    ``exit_code`` follows the CLI convention: 2 for usage errors, 1 for data errors
    and unavailable services.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """What a user types for each setting of a subcommand: its longest flag (``start`` ->
    ``--from``), or the placeholder of a positional argument (``recording`` -> ``DIR``)."""
    names = {}
    for action in parser._actions:
        if action.option_strings:
            names[action.dest] = max(action.option_strings, key=len)
        elif not isinstance(action, argparse._SubParsersAction):
            names[action.dest] = action.metavar or action.dest
    return names


def subcommand_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise KeyError(command)


@contextmanager
def progress_bar(enabled: bool, **options) -> Iterator[Any]:
    """A tqdm bar on stderr unless ``enabled`` is false; ``bar.update`` is the callback the
    library calls with each number of records done."""
    from tqdm import tqdm

    with tqdm(file=sys.stderr, disable=not enabled, **options) as bar:
        yield bar
