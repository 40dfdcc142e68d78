"""`tensorfields export-splats`: a Gaussian run as a standard 3DGS `.ply` (`export.splats`), or
any other run through Gaussians fitted to it first (`--from-field`, `distill.gaussians`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from . import types

__all__ = ["register", "export_splats_command"]

#: the most training views --check may draw
MAX_CHECK_VIEWS = 100
#: the most Gaussians --from-field may fit
MAX_FITTED = 2_000_000


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export-splats",
        help="export a gaussians run as a 3D Gaussian Splatting .ply",
        description=(
            "Write a gaussians run's Gaussians as the standard 3DGS .ply that splat viewers, gsplat and nerfstudio read "
            "(positions, log-scales, rotations, opacity logits, SH coefficients up to degree 3). Then draw the file at "
            "a few training cameras with the reference splat rasterizer and report its PSNR against the field's renders. "
            "Any other run (vm, cp, trivec, ...) with --from-field: Gaussians are fitted to its field first."
        ),
    )
    export.add_argument("run", help="run folder of a gaussians field (of any field with --from-field)")
    export.add_argument("--out", type=types.extension(".ply"), required=True, help="the .ply file to write")
    export.add_argument(
        "--check",
        type=types.non_negative_int(MAX_CHECK_VIEWS, "views", zero_means="no check"),
        default=3,
        help=f"training views to compare the file's splats with the field on, at most {MAX_CHECK_VIEWS} (default: 3)",
    )
    export.add_argument(
        "--from-field",
        action="store_true",
        help="fit Gaussians to the run's field (of a bounded scene) where its training rays meet surfaces, then export them",
    )
    export.add_argument(
        "--gaussians",
        type=types.positive_int(MAX_FITTED, "Gaussians"),
        default=None,
        help="with --from-field: how many to fit (default: the gaussians preset's, 20,000)",
    )
    export.add_argument(
        "--fit-steps",
        type=types.non_negative_int(100_000, "steps"),
        default=None,
        help="with --from-field: steps of fitting them to the field's density and colour (default: 300)",
    )
    export.add_argument("--device", type=types.device, default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    export.set_defaults(func=export_splats_command)


def export_splats_command(args: argparse.Namespace) -> Any:
    """Export the splats and print what was written and how closely the rasterizer agrees."""
    import torch

    from fields.gaussians import GaussianField

    from ..evaluate import evenly_spaced
    from ..export.splats import export_splats, rasterizer_agreement
    from ..runs import load_checkpoint, load_run_config, train_cameras

    if not args.from_field and (args.gaussians is not None or args.fit_steps is not None):
        raise ValueError("--gaussians and --fit-steps say how to fit Gaussians to a field: they need --from-field")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    source = model = load_checkpoint(args.run, device).model  # the field the file stands for
    if not args.from_field and not isinstance(model.field, GaussianField):
        raise ValueError(f"{args.run}: holds a '{model.field.name}' field; export-splats writes the Gaussians of a 'gaussians' "
                         "run (--from-field fits Gaussians to any other field first)")  # fmt: skip
    cameras = train_cameras(load_run_config(args.run)["scene"])
    started = time.perf_counter()
    if not isinstance(model.field, GaussianField):
        model = _fitted(model, cameras, args)
    try:
        splats = export_splats(model, args.out)
    except ValueError as error:
        raise ValueError(f"{args.run}: {error}") from None
    size = Path(args.out).stat().st_size
    print(f"wrote {args.out}: {len(splats):,} Gaussians, SH degree {splats.sh_degree}, {size / 1e6:.1f} MB "
          f"({time.perf_counter() - started:.1f} s)")  # fmt: skip
    if args.check == 0:
        return splats
    views = evenly_spaced(torch.arange(len(cameras)), args.check).tolist()
    started = time.perf_counter()
    scores = rasterizer_agreement(source, splats, cameras, views)
    print(f"splat rasterizer against the field on training views {views}: "
          f"{sum(scores) / len(scores):.2f} dB PSNR ({', '.join(f'{s:.2f}' for s in scores)}; {time.perf_counter() - started:.1f} s)")  # fmt: skip
    return splats


def _fitted(model: Any, cameras: Any, args: argparse.Namespace) -> Any:
    """A model of Gaussians fitted to `model`'s field at the training `cameras`, as it renders."""
    import torch

    from fields.gaussians import GaussianField

    from ..distill.gaussians import FIT_STEPS, fit_gaussians, gaussian_model

    count = args.gaussians or GaussianField.presets["bounded"]["num_gaussians"]
    steps = FIT_STEPS if args.fit_steps is None else args.fit_steps
    started = time.perf_counter()
    try:
        field = fit_gaussians(model, cameras, count, steps, generator=torch.Generator().manual_seed(0))
    except ValueError as error:
        raise ValueError(f"{args.run}: {error}") from None
    print(f"fitted {field.num_gaussians:,} Gaussians to the '{model.field.name}' field of {args.run} in {steps} steps "
          f"({time.perf_counter() - started:.1f} s)")  # fmt: skip
    return gaussian_model(field, model)
