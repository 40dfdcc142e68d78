"""The `tensorfields` command line: one console script, a subcommand per module of
`apps.commands` (log messages go to stderr).

Errors: a bad flag value is refused by argparse (the types of `apps.commands.types`), a bad input
found later by `main`, which prints every exception of `USER_ERRORS` as one line
`tensorfields COMMAND: error: ...` and returns 2; Ctrl-C outside training prints one line and
returns 130. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from data import SceneError

from .commands import COMMANDS
from .runs import CheckpointError
from .training import RunInterrupted

__all__ = ["main", "build_parser", "USER_ERRORS", "error_line"]

#: exceptions that mean bad input, not a bug, each raised with a message that names the file or
#: flag: scenes (SceneError), run folders and checkpoints (CheckpointError), a run stopped by
#: Ctrl-C or divergence after saving (RunInterrupted), values (ValueError), files and ports the
#: system refused (OSError: missing, unreadable, a full disk, a port in use).
USER_ERRORS: tuple[type[BaseException], ...] = (SceneError, CheckpointError, RunInterrupted, ValueError, OSError)
#: exit codes: bad input (as argparse uses for bad flags), Ctrl-C (128 + SIGINT)
EXIT_ERROR, EXIT_INTERRUPTED = 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tensorfields", description="Factorized tensor radiance fields: train, evaluate, render.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"apps.commands.{name}").register(commands)
    return parser


def error_line(error: BaseException) -> str:
    """The message of a `USER_ERRORS` exception on one line; an OSError names its file
    ("PATH: Permission denied") when it has one."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        where = str(error.filename) if error.filename2 is None else f"{error.filename} -> {error.filename2}"
        text = f"{where}: {error.strerror}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    name = f"tensorfields {args.command}" + (f" {args.bench}" if getattr(args, "bench", None) else "")
    try:
        args.func(args)
    except USER_ERRORS as error:
        print(f"{name}: error: {error_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
