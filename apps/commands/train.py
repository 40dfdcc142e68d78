"""`tensorfields train`: train a field on a scene folder (photos or a video get poses first);
`--view` serves the browser viewer of the run while it trains."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..training.config import add_flags, config_from_args
from . import types
from .view import DEFAULT_HOST, add_address_flags

__all__ = ["VIEW_CHECKPOINT_EVERY", "register", "train_command"]

#: the most --iters (TensoRF trains 30000)
MAX_ITERS = 10_000_000
#: the highest --fps to extract from a video
MAX_FPS = 240
#: the run folder's subfolder for the SfM results of a read-only photo folder
SFM_FOLDER = "sfm"
#: seconds between checkpoints of a --view run (unless --checkpoint-every), so the viewer keeps up
VIEW_CHECKPOINT_EVERY = 5.0


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a field on a scene", description="Train a field on a scene folder.")
    add_flags(train)
    train.add_argument("--out", type=types.run_folder, required=True, help="run folder for checkpoint, config, metrics and renders")
    train.add_argument(
        "--iters",
        type=types.positive_int(MAX_ITERS, "iterations"),
        default=30000,
        help=f"training iterations, 1 to {MAX_ITERS:,} (default: 30000, as TensoRF)",
    )
    train.add_argument(
        "--budget", type=types.seconds, default=None, help=f"train for this many seconds instead of --iters (at most {types.MAX_SECONDS:,})"
    )
    existing = train.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    existing.add_argument(
        "--overwrite", action="store_true", help="replace the run already in --out (default: refuse a folder that holds another run)"
    )
    train.add_argument(
        "--fps",
        type=types.positive_float(MAX_FPS, "frames per second"),
        default=2.0,
        help=f"when --data is a video: frames per second to extract, at most {MAX_FPS} (default: 2)",
    )
    train.add_argument(
        "--view",
        action="store_true",
        help=f"serve the browser viewer of the run while it trains (the newest checkpoint: one every "
        f"{VIEW_CHECKPOINT_EVERY:g} s unless --checkpoint-every; the loss and held-out PSNR curves), and after it until Ctrl-C",
    )
    add_address_flags(train, default_host=None)
    train.set_defaults(func=train_command)


def train_command(args: argparse.Namespace) -> None:
    """Train on `--data`; photos or a video get their camera poses from SfM first (`prepare_scene`).
    The flags (and with --view, that the viewer can listen at --host/--port) are checked
    together before that work starts."""
    from data import prepare_scene

    from ..training import train_run

    config = config_from_args(args, data=args.data, out=args.out, iters=args.iters, budget=args.budget)
    host = DEFAULT_HOST if args.host is None else args.host
    if args.view:
        from ..viewer.app import check_address

        check_address(host, args.port)
        every = VIEW_CHECKPOINT_EVERY if config.checkpoint_every is None else config.checkpoint_every
        config = dataclasses.replace(config, checkpoint_every=every)
    elif args.host is not None or args.port is not None:
        raise ValueError("--host and --port say where --view serves the viewer; add --view")
    data = str(prepare_scene(args.data, fps=args.fps, out=Path(args.out) / SFM_FOLDER))
    config = dataclasses.replace(config, data=data)
    if not args.view:
        train_run(config, resume=args.resume, overwrite=args.overwrite)
        return
    from tqdm import tqdm

    from ..viewer.follow import LiveViewer

    live = LiveViewer(args.out, host, args.port, config.device, log=tqdm.write)
    try:
        train_run(config, resume=args.resume, overwrite=args.overwrite, on_step=live.on_step)
        live.serve_until_interrupted()
    finally:
        live.close()
