"""`tensorfields train`: train a field on a scene folder (photos or a video get poses first)."""

from __future__ import annotations

import argparse

from ..training.config import add_flags, config_from_args

__all__ = ["register", "train_command"]


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a field on a scene", description="Train a field on a scene folder.")
    add_flags(train)
    train.add_argument("--out", required=True, help="run folder for checkpoint, config, metrics and renders")
    train.add_argument("--iters", type=int, default=30000, help="training iterations (default: 30000, as TensoRF)")
    train.add_argument("--budget", type=float, default=None, help="train for this many seconds instead of --iters")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    train.add_argument("--fps", type=float, default=2.0, help="when --data is a video: frames per second to extract (default: 2)")
    train.set_defaults(func=train_command)


def train_command(args: argparse.Namespace) -> None:
    """Train on `--data`; photos or a video get their camera poses from SfM first (`prepare_scene`)."""
    from data import prepare_scene

    from ..training import train_run

    data = str(prepare_scene(args.data, fps=args.fps))
    train_run(config_from_args(args, data=data, out=args.out, iters=args.iters, budget=args.budget), resume=args.resume)
