"""Entry point of the ``pistats`` command.

Subcommands are discovered: every module in this package that defines
``register(subparsers)`` (which adds its parser and sets ``func``) takes part,
so adding a subcommand means adding one module.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

import pistats.cli as cli_package
from pistats.cli._support import UserError, flag_names, subcommand_parser
from pistats.errors import ConfigError, PistatsError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pistats",
        description="piStats: ingest, enrich and analyse user registrations on Apache Storm.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_") or module_info.name == "main":
            continue
        module = importlib.import_module(f"{cli_package.__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # clickhouse-driver logs a warning with a traceback for each refused connection before it
    # raises; the error itself is reported below in one line.
    logging.getLogger("clickhouse_driver").setLevel(logging.CRITICAL)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except UserError as error:
        print(f"pistats {args.command}: {error}", file=sys.stderr)
        return error.exit_code
    except ConfigError as error:
        # The library names its settings; the user knows them by their flags.
        flags = flag_names(subcommand_parser(parser, args.command))
        print(f"pistats {args.command}: {error.describe(flags.get)}", file=sys.stderr)
        return 2
    except PistatsError as error:
        print(f"pistats {args.command}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        # Unreachable services (Redis, ClickHouse, Kinesis) surface as OSError subclasses or
        # wrap them; name the problem in one line rather than a traceback.
        print(f"pistats {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pistats {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
