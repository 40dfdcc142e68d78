"""`tensorfields bench unbounded`: scene contraction against the bounded box, side by side, on a
360-degree capture with a known ground truth: the demo parts inside a textured room
(`data.build_demo_scene(..., room=True)`), so every view has a background. Both runs train for the
same budget; each reports its held-out PSNR and the F-score of its foreground mesh (marching
cubes, unseen vertices removed with the training cameras) against the parts' mesh."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from data import build_demo_scene
from data.demo import MESH_NAME

from ..export.mesh import export_mesh
from ..export.mesh_metrics import mesh_quality, scene_size
from ..runs import load_checkpoint, load_run_config, train_cameras
from ..training import TrainConfig, train_run

__all__ = ["add_arguments", "bench_unbounded", "ROOM_SCENE_FOLDER"]

ROOM_SCENE_FOLDER = "room-scene"
#: F-score threshold as a fraction of the parts' size (as `bench mesh`)
F_SCORE_THRESHOLD = 0.01


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..commands import types

    parser.add_argument("--out", default="runs/bench-unbounded", help="folder of the scene and both runs (default: runs/bench-unbounded)")
    parser.add_argument("--budget", type=types.seconds, default=120.0, help="seconds of training per run (default: 120)")
    parser.add_argument("--size", type=types.whole(16, 800), default=100, help="image width and height, 16 to 800 (default: 100)")
    parser.add_argument("--field", type=types.field_name, default="vm", help="representation (default: vm)")
    parser.add_argument(
        "--resolution", type=types.whole(8, types.MAX_GRID), default=192, help="marching-cubes points on the longest side (default: 192)"
    )
    parser.add_argument("--json", default=None, help="write the results to this JSON file")


def bench_unbounded(args: argparse.Namespace) -> dict[str, Any]:
    """Build the room scene in `args.out`, train `--contraction on` and `off` for `args.budget`
    seconds each (appearance codes off: the renders have no exposure changes), and score both."""
    import open3d as o3d

    out = Path(args.out)
    scene = build_demo_scene(out / ROOM_SCENE_FOLDER, size=args.size, room=True)
    truth = o3d.io.read_triangle_mesh(str(scene / MESH_NAME))
    threshold = F_SCORE_THRESHOLD * scene_size(truth)
    results: dict[str, Any] = {"scene": str(scene), "budget": args.budget, "size": args.size, "field": args.field}
    for contraction in ("on", "off"):
        run = out / f"contraction-{contraction}"
        config = TrainConfig(
            data=str(scene), field=args.field, out=str(run), budget=args.budget, appearance="off", contraction=contraction
        )
        metrics = train_run(config, overwrite=True)
        results[f"contraction_{contraction}"] = {
            "psnr": round(metrics["psnr"], 2),
            "ssim": round(metrics["ssim"], 4),
            "iterations": metrics["iterations"],
            **_mesh_scores(run, args.resolution, truth, threshold),
            "run": str(run),
        }
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


def _mesh_scores(run: Path, resolution: int, truth: Any, threshold: float) -> dict[str, Any]:
    """F-score and Chamfer distance of the run's foreground mesh, or F-score 0 with the reason
    when the field has no surface to extract (a bounded box that never formed one)."""
    cameras = train_cameras(load_run_config(run)["scene"])
    try:
        mesh = export_mesh(load_checkpoint(run).model, run / "mesh.ply", "mc", resolution, cameras=cameras)
    except ValueError as error:
        return {"fscore": 0.0, "mesh": str(error)}
    return {k: round(v, 4) for k, v in mesh_quality(mesh, truth, threshold).items()}
