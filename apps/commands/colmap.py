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
#: data.sfm's choices and defaults (that module loads pycolmap, so it is imported only to run)
MATCHERS, MAPPERS = ("exhaustive", "sequential"), ("incremental", "global")
DEFAULT_MAX_SIZE, EXHAUSTIVE_MAX_IMAGES, MAX_DEFAULT_THREADS = 1600, 60, 8


def register(commands: argparse._SubParsersAction) -> None:
    colmap = commands.add_parser(
        "colmap",
        help="estimate camera poses of a folder of photos (pycolmap SfM)",
        description="Structure-from-motion with pycolmap on the CPU: writes PATH/transforms.json and PATH/colmap/ "
        "(or, when PATH cannot be written, into --out).",
    )
    colmap.add_argument("path", help="folder of JPG/PNG photos (or with them in images/)")
    colmap.add_argument(
        "--matcher",
        choices=MATCHERS,
        default=None,
        help=f"feature matching (default: exhaustive up to {EXHAUSTIVE_MAX_IMAGES} images, else sequential with loop closure)",
    )
    colmap.add_argument(
        "--mapper",
        choices=MAPPERS,
        default="incremental",
        help="incremental (one thread, reproducible) or global (pycolmap's GLOMAP) mapping (default: incremental)",
    )
    colmap.add_argument(
        "--max-size",
        type=types.whole(MIN_SIZE, MAX_SIZE, "pixels"),
        default=DEFAULT_MAX_SIZE,
        help=f"long side in pixels of the images SfM and training use, {MIN_SIZE} to {MAX_SIZE} (default: {DEFAULT_MAX_SIZE})",
    )
    colmap.add_argument(
        "--threads",
        type=types.positive_int(MAX_THREADS, "threads"),
        default=None,
        help=f"CPU threads of reading, feature extraction and matching, 1 to {MAX_THREADS} (default: every core, at most "
        f"{MAX_DEFAULT_THREADS}); the incremental mapper always uses one",
    )
    colmap.add_argument("--out", default=None, help="where the results go when PATH cannot be written (default: none, an error)")
    colmap.set_defaults(func=colmap_command)


def colmap_command(args: argparse.Namespace) -> Path:
    from data.sfm import run_sfm

    out = Path(args.out).expanduser() if args.out else None
    return run_sfm(Path(args.path).expanduser(), args.matcher, args.max_size, args.threads, args.mapper, out)
