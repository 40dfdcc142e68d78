"""`tensorfields bench splats`: how a Gaussian run survives the trip to the 3DGS ecosystem.

On held-out views of the scene a `gaussians` run trained on, side by side: the field's own
render; its exported `.ply` drawn by the reference splat rasterizer (as splat viewers draw it);
the `.ply` read back into a field (export, import, render: the round trip); and the field
slimmed to `--rank`. Each is scored against the photos (PSNR), and the rasterized and
round-tripped renders also against the field's render.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from data import load_scene
from fields.gaussians import GaussianField, read_splats
from render import rasterize_splats

from ..evaluate import evenly_spaced
from ..evaluate.metrics import psnr
from ..export.splats import export_splats
from ..runs import load_checkpoint, load_run_config

__all__ = ["add_arguments", "bench_splats"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..commands import types

    parser.add_argument("run", help="run folder of a gaussians field (e.g. from bench train --field gaussians)")
    parser.add_argument("--eval-views", type=types.positive_int(100_000), default=10, help="held-out views to score (default: 10)")
    parser.add_argument("--rank", type=types.positive_int(types.MAX_RANK), default=4, help="rank to slim to (default: 4)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 3)


@torch.no_grad()
def bench_splats(args: argparse.Namespace) -> dict[str, Any]:
    """Score the field, its rasterized `.ply`, the round trip and the slimmed field on held-out views."""
    model = load_checkpoint(args.run).model
    if not isinstance(model.field, GaussianField):
        raise ValueError(f"{args.run}: holds a '{model.field.name}' field; bench splats needs a gaussians run")
    train = load_run_config(args.run)["train"]
    scene = load_scene(train["data"], train["downsample"])
    views = evenly_spaced(scene.split("test"), args.eval_views).tolist()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scene.ply"
        export_splats(model, path)
        splats, size = read_splats(path), path.stat().st_size
    round_trip = model.with_field(GaussianField.from_splats(splats, aabb=model.field.aabb.cpu(), resolution=model.field.resolution,
                                                            min_scale=model.field.min_scale))  # fmt: skip
    slimmed = model.with_field(model.field.slim(min(args.rank, model.field.ranks)))
    background = tuple(model.settings.background)
    scores: dict[str, list[float]] = {k: [] for k in ("field", "rasterized", "rasterized_vs_field", "round_trip", "round_trip_vs_field", "slimmed")}
    for view in views:
        photo = scene.images[view].float() / 255.0
        own = model.render_image(scene.cameras, view)["rgb"]
        drawn = rasterize_splats(splats.means, splats.scales, splats.quats, splats.opacities, splats.sh, scene.cameras, view,
                                 background=background)["rgb"].clamp(0, 1)  # fmt: skip
        back = round_trip.render_image(scene.cameras, view)["rgb"]
        scores["field"].append(psnr(own, photo))
        scores["rasterized"].append(psnr(drawn, photo))
        scores["rasterized_vs_field"].append(psnr(drawn, own))
        scores["round_trip"].append(psnr(back, photo))
        scores["round_trip_vs_field"].append(psnr(back, own))
        scores["slimmed"].append(psnr(slimmed.render_image(scene.cameras, view)["rgb"], photo))
    result = {
        "run": str(Path(args.run).resolve()),
        "gaussians": len(splats),
        "parameters": model.field.num_parameters(),
        "ply_mb": round(size / 1e6, 2),
        "views": views,
        "rank": min(args.rank, model.field.ranks),
        "of_ranks": model.field.ranks,
        **{f"psnr_{name}": _mean(values) for name, values in scores.items()},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result
