"""`tensorfields distill`: convert a trained run into another representation (Progressive Volume
Distillation), from the run folder alone."""

from __future__ import annotations

import argparse

from . import types
from .train import MAX_ITERS

__all__ = ["register", "distill_command"]

#: the most teacher views a distillation renders
MAX_VIEWS = 10_000


def register(commands: argparse._SubParsersAction) -> None:
    from ..distill.run import DEFAULT_VIEWS

    distill = commands.add_parser(
        "distill",
        help="convert a trained run into another field",
        description=(
            "Train a field of another kind on a trained run's renders (Progressive Volume Distillation): no images are "
            "needed, only the teacher's run folder. The student is a normal run folder (eval, view, render, slim, "
            "export-mesh, export-splats)."
        ),
    )
    distill.add_argument("teacher", help="the trained run folder to learn from")
    distill.add_argument("--to", required=True, type=types.field_name, help="the student's field (vm, cp, trivec, gaussians, hashgrid, ...)")
    distill.add_argument("--out", type=types.run_folder, required=True, help="the student's run folder")
    length = distill.add_mutually_exclusive_group()
    length.add_argument(
        "--iters", type=types.positive_int(MAX_ITERS, "iterations"), default=30000, help="training iterations (default: 30000)"
    )
    length.add_argument(
        "--budget",
        type=types.seconds,
        default=None,
        help=f"seconds for the whole distillation, the teacher's renders included, instead of --iters (at most {types.MAX_SECONDS:,})",
    )
    distill.add_argument(
        "--views",
        type=types.positive_int(MAX_VIEWS, "views"),
        default=DEFAULT_VIEWS,
        help=f"teacher views to render around its training cameras, 1 to {MAX_VIEWS:,} (default: {DEFAULT_VIEWS})",
    )
    existing = distill.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", help="continue the distillation in --out from its last checkpoint")
    existing.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    distill.add_argument("--device", type=types.device, default=None, help="cpu, cuda or cuda:N")
    distill.add_argument("--seed", type=types.non_negative_int(2**32 - 1), default=0, help="random seed (default: 0)")
    distill.set_defaults(func=distill_command)


def distill_command(args: argparse.Namespace) -> dict:
    from ..distill.run import distill_run

    return distill_run(
        args.teacher, args.to, args.out, iters=args.iters, budget=args.budget, views=args.views,
        resume=args.resume, overwrite=args.overwrite, seed=args.seed, device=args.device,
    )  # fmt: skip
