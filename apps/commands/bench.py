"""`tensorfields bench NAME`: the benchmarks of `apps.bench` (each module adds its own flags)."""

from __future__ import annotations

import argparse
import importlib

from ..bench import BENCHMARKS

__all__ = ["register"]


def register(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="benchmarks", description="Benchmarks.")
    benchmarks = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    for name, (module_name, entry, help_text) in BENCHMARKS.items():
        module = importlib.import_module(f"apps.bench.{module_name}")
        parser = benchmarks.add_parser(name, help=help_text)
        module.add_arguments(parser)
        parser.set_defaults(func=getattr(module, entry))
