"""`tensorfields import-splats`: a 3DGS `.ply` of another tool as a `gaussians` run folder
(`runs.imported`), to view, slim, distill, mesh or fine-tune here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import types

__all__ = ["register", "import_splats_command"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "import-splats",
        help="make a gaussians run folder of a 3D Gaussian Splatting .ply",
        description=(
            "Read a standard 3DGS .ply (from the 3DGS reference code, gsplat, nerfstudio or export-splats) as a gaussians "
            "field and write it as a run folder that view, render, slim, export-mesh and export-splats take. With --data, "
            "the run records that scene (its cameras, box and background: eval scores it on the held-out views); without, "
            "its cameras are an orbit around the Gaussians. To fine-tune the Gaussians on a scene, train with --field "
            "gaussians --init-splats FILE."
        ),
    )
    parser.add_argument("splats", type=types.extension(".ply"), help="the 3DGS .ply file")
    parser.add_argument("--out", type=types.run_folder, required=True, help="new run folder")
    parser.add_argument("--data", default=None, help="the scene the file was made from, in its frame (default: none)")
    parser.add_argument("--downsample", type=types.downsample, default=1.0, help=f"image downsampling of --data, 1 to {types.MAX_DOWNSAMPLE} (default: 1)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the run already in --out (default: refuse a folder that holds one)"
    )
    parser.set_defaults(func=import_splats_command)


def import_splats_command(args: argparse.Namespace) -> Any:
    """Write the run folder and say what it holds."""
    from data import load_scene

    from ..runs import CHECKPOINT_NAME, Checkpoint, claim_run_folder, save_checkpoint, write_json
    from ..runs.imported import splat_run
    from ..training import TrainConfig

    scene = load_scene(args.data, args.downsample) if args.data is not None else None
    model, info, left_out = splat_run(args.splats, scene)
    data = args.data if args.data is not None else args.splats
    train = TrainConfig(data=data, out=args.out, field="gaussians", downsample=args.downsample, init_splats=args.splats)
    out = Path(args.out)
    with claim_run_folder(out, overwrite=args.overwrite) as events:
        for event in events:
            print(event)
        save_checkpoint(out / CHECKPOINT_NAME, Checkpoint(model))
        write_json(out / "config.json", {"train": train.to_dict(), "scene": info, "imported": str(Path(args.splats).resolve())})
    field = model.field
    outside = f", {left_out:,} outside the box left out" if left_out else ""
    frame = f"in the frame of {args.data}" if args.data is not None else f"with {info['num_train']} orbit cameras around them"
    print(f"wrote {out}: {field.num_gaussians:,} Gaussians of {args.splats} (SH degree {field.sh_degree}{outside}), {frame}; "
          f"look at it with: tensorfields view {out}")  # fmt: skip
    return model
