"""`tensorfields bench splats`: how a Gaussian run survives the trip to the 3DGS ecosystem.

On held-out views of the scene a `gaussians` run trained on, side by side: the field's own
render; its exported `.ply` drawn by the reference splat rasterizer (as splat viewers draw it);
the `.ply` read back into a field (export, import, render: the round trip); and the field
slimmed to `--rank`. Each is scored against the photos (PSNR), and the rasterized and
round-tripped renders also against the field's render. On a CUDA device with gsplat installed,
the `.ply` is also drawn by `gsplat.rasterization` and scored against the photos and against the
reference rasterizer's image (their agreement); otherwise the result says why it was skipped.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from data import load_scene
from fields.gaussians import GaussianField, read_splats
from render import rasterize_splats
from render.splats import rasterize_splats_gsplat

from ..evaluate import at_most_pixels, evenly_spaced
from ..evaluate.metrics import psnr
from ..export.splats import export_splats
from ..runs import load_checkpoint, load_run_config

__all__ = ["add_arguments", "bench_splats", "CUDA_TILE_SIZE"]

#: the reference rasterizer's tile side on a CUDA device: its tiles are a Python loop, and at
#: 800x800 the default 8 x 8 tiles (10,000 of them) cost launches, not arithmetic (the image does
#: not depend on the tile size)
CUDA_TILE_SIZE = 32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..commands import types

    parser.add_argument("run", help="run folder of a gaussians field (e.g. from bench train --field gaussians)")
    parser.add_argument("--eval-views", type=types.positive_int(100_000), default=10, help="held-out views to score (default: 10)")
    parser.add_argument("--rank", type=types.positive_int(types.MAX_RANK), default=4, help="rank to slim to (default: 4)")
    parser.add_argument(
        "--pixels",
        type=types.whole(64, 100_000_000, "pixels"),
        default=None,
        help="score every view scaled down to at most this many pixels, 64 to 100,000,000 (default: full size)",
    )
    parser.add_argument("--device", type=types.device, default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")


def gsplat_unavailable(device: torch.device) -> str | None:
    """Why gsplat cannot draw on `device` (None: it can): not a CUDA device, or gsplat does not import."""
    if device.type != "cuda":
        return f"not on a CUDA device ({device})" if torch.cuda.is_available() else "no CUDA device"
    try:
        import gsplat  # noqa: F401
    except Exception as error:  # an optional package: any failure to import is a reason to skip
        return f"gsplat does not import ({type(error).__name__}: {error})"
    return None


def _timed(seconds: dict[str, float], name: str, render: Callable[[], torch.Tensor]) -> torch.Tensor:
    """`render()`, its time (device work included) added to `seconds[name]`."""
    started = time.perf_counter()
    image = render()
    if image.is_cuda:
        torch.cuda.synchronize(image.device)
    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
    return image


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 3)


@torch.no_grad()
def bench_splats(args: argparse.Namespace) -> dict[str, Any]:
    """Score the field, its rasterized `.ply` (reference, and gsplat where it can), the round trip
    and the slimmed field on held-out views."""
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_checkpoint(args.run, device).model
    if not isinstance(model.field, GaussianField):
        raise ValueError(f"{args.run}: holds a '{model.field.name}' field; bench splats needs a gaussians run")
    train = load_run_config(args.run)["train"]
    scene = load_scene(train["data"], train["downsample"])
    views = evenly_spaced(scene.split("test"), args.eval_views)
    if args.pixels is not None:
        scene, _ = at_most_pixels(scene, views, args.pixels)
    views = views.tolist()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scene.ply"
        export_splats(model, path)
        splats, size = read_splats(path), path.stat().st_size
    round_trip = model.with_field(GaussianField.from_splats(splats, aabb=model.field.aabb.cpu(), resolution=model.field.resolution,
                                                            min_scale=model.field.min_scale).to(device))  # fmt: skip
    slimmed = model.with_field(model.field.slim(min(args.rank, model.field.ranks)))
    background = tuple(model.settings.background)
    gaussians = [t.to(device) for t in (splats.means, splats.scales, splats.quats, splats.opacities, splats.sh)]
    tile_size = {"tile_size": CUDA_TILE_SIZE} if device.type == "cuda" else {}
    skipped = gsplat_unavailable(device)
    names = ["field", "rasterized", "rasterized_vs_field", "round_trip", "round_trip_vs_field", "slimmed"]
    scores: dict[str, list[float]] = {k: [] for k in names + ([] if skipped else ["gsplat", "gsplat_vs_reference"])}
    seconds: dict[str, float] = {}
    for view in views:
        photo = (scene.images[view].float() / 255.0).to(device)
        own = _timed(seconds, "field", lambda: model.render_image(scene.cameras, view)["rgb"])
        drawn = _timed(seconds, "rasterized", lambda: rasterize_splats(*gaussians, scene.cameras, view, background=background, **tile_size)["rgb"])
        back = round_trip.render_image(scene.cameras, view)["rgb"]
        scores["field"].append(psnr(own, photo))
        scores["rasterized"].append(psnr(drawn.clamp(0, 1), photo))
        scores["rasterized_vs_field"].append(psnr(drawn.clamp(0, 1), own))
        scores["round_trip"].append(psnr(back, photo))
        scores["round_trip_vs_field"].append(psnr(back, own))
        scores["slimmed"].append(psnr(slimmed.render_image(scene.cameras, view)["rgb"], photo))
        if not skipped:
            other = _timed(seconds, "gsplat", lambda: rasterize_splats_gsplat(*gaussians, scene.cameras, view, background=background))
            scores["gsplat"].append(psnr(other.clamp(0, 1), photo))
            scores["gsplat_vs_reference"].append(psnr(other, drawn))  # unclamped: the rasterizers' own outputs
    if not skipped:
        import gsplat

        version = f"gsplat {getattr(gsplat, '__version__', '(version unknown)')}"
    result = {
        "run": str(Path(args.run).resolve()),
        "device": str(device),
        "gaussians": len(splats),
        "parameters": model.field.num_parameters(),
        "ply_mb": round(size / 1e6, 2),
        "views": views,
        "resolution": [scene.width, scene.height],
        "rank": min(args.rank, model.field.ranks),
        "of_ranks": model.field.ranks,
        "gsplat": f"skipped: {skipped}" if skipped else version,
        **{f"psnr_{name}": _mean(values) for name, values in scores.items()},
        "render_seconds_per_view": {name: round(total / len(views), 3) for name, total in seconds.items()},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result
