"""The `tensorfields` command line: one console script, a subcommand per module of
`apps.commands` (log messages go to stderr)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from data import SceneError

from .commands import COMMANDS
from .runs import CheckpointError
from .training import RunInterrupted

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tensorfields", description="Factorized tensor radiance fields: train, evaluate, render.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"apps.commands.{name}").register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args.func(args)
    except (SceneError, CheckpointError, RunInterrupted, ValueError) as error:
        print(f"tensorfields {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
