"""`tensorfields colmap`: camera poses of a folder of photos (pycolmap SfM), and nothing else."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import types

__all__ = ["register", "colmap_command"]

#: the range of --max-size (SIFT finds too few features below the minimum)
MIN_SIZE, MAX_SIZE = 100, 16384
#: the most --threads
MAX_THREADS = 1024


def register(commands: argparse._SubParsersAction) -> None:
    colmap = commands.add_parser(
        "colmap",
        help="estimate camera poses of a folder of photos (pycolmap SfM)",
        description="Structure-from-motion with pycolmap on the CPU: writes PATH/transforms.json and PATH/colmap/.",
    )
    colmap.add_argument("path", help="folder of JPG/PNG photos (or with them in images/)")
    colmap.add_argument(
        "--matcher", choices=["exhaustive", "sequential"], default=None, help="feature matching (default: exhaustive up to 60 images)"
    )
    colmap.add_argument(
        "--max-size",
        type=types.whole(MIN_SIZE, MAX_SIZE, "pixels"),
        default=1600,
        help=f"long side in pixels of the images SfM and training use, {MIN_SIZE} to {MAX_SIZE} (default: 1600)",
    )
    colmap.add_argument(
        "--threads",
        type=types.positive_int(MAX_THREADS, "threads"),
        default=1,
        help=f"CPU threads, 1 to {MAX_THREADS} (default: 1, reproducible; more is faster but runs may differ)",
    )
    colmap.set_defaults(func=colmap_command)


def colmap_command(args: argparse.Namespace) -> Path:
    from data.sfm import run_sfm

    return run_sfm(Path(args.path).expanduser(), args.matcher, args.max_size, args.threads)
