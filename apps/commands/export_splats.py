"""`tensorfields export-splats`: a Gaussian run as a standard 3DGS `.ply` (`export.splats`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from . import types

__all__ = ["register", "export_splats_command"]

#: the most training views --check may draw
MAX_CHECK_VIEWS = 100


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export-splats",
        help="export a gaussians run as a 3D Gaussian Splatting .ply",
        description=(
            "Write a gaussians run's Gaussians as the standard 3DGS .ply that splat viewers, gsplat and nerfstudio read "
            "(positions, log-scales, rotations, opacity logits, SH coefficients up to degree 3). Then draw the file at "
            "a few training cameras with the reference splat rasterizer and report its PSNR against the field's renders."
        ),
    )
    export.add_argument("run", help="run folder of a gaussians field")
    export.add_argument("--out", type=types.extension(".ply"), required=True, help="the .ply file to write")
    export.add_argument(
        "--check",
        type=types.non_negative_int(MAX_CHECK_VIEWS, "views", zero_means="no check"),
        default=3,
        help=f"training views to compare the file's splats with the field on, at most {MAX_CHECK_VIEWS} (default: 3)",
    )
    export.add_argument("--device", type=types.device, default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    export.set_defaults(func=export_splats_command)


def export_splats_command(args: argparse.Namespace) -> Any:
    """Export the splats and print what was written and how closely the rasterizer agrees."""
    import torch

    from ..evaluate import evenly_spaced
    from ..export.splats import export_splats, rasterizer_agreement
    from ..runs import load_checkpoint, load_run_config, train_cameras

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_checkpoint(args.run, device).model
    started = time.perf_counter()
    try:
        splats = export_splats(model, args.out)
    except ValueError as error:
        raise ValueError(f"{args.run}: {error}") from None
    size = Path(args.out).stat().st_size
    print(f"wrote {args.out}: {len(splats):,} Gaussians, SH degree {splats.sh_degree}, {size / 1e6:.1f} MB "
          f"({time.perf_counter() - started:.1f} s)")  # fmt: skip
    if args.check == 0:
        return splats
    cameras = train_cameras(load_run_config(args.run)["scene"])
    views = evenly_spaced(torch.arange(len(cameras)), args.check).tolist()
    started = time.perf_counter()
    scores = rasterizer_agreement(model, splats, cameras, views)
    print(f"splat rasterizer against the field on training views {views}: "
          f"{sum(scores) / len(scores):.2f} dB PSNR ({', '.join(f'{s:.2f}' for s in scores)}; {time.perf_counter() - started:.1f} s)")  # fmt: skip
    return splats
