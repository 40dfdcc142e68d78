"""`tensorfields bench mesh`: Chamfer / F-score of the marching-cubes mesh of a VM run on the demo
scene against its ground-truth mesh, with the export's time and peak memory."""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

from data import build_demo_scene
from data.demo import MESH_NAME

from ..commands.demo import DEMO_SCENE_FOLDER
from ..export.mesh import export_mesh
from ..export.mesh_metrics import mesh_quality, scene_size
from ..runs import CHECKPOINT_NAME, load_checkpoint, load_run_config, train_cameras
from ..training import TrainConfig, train_run

__all__ = ["add_arguments", "bench_mesh"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..commands import types

    parser.add_argument("--out", default="runs/bench-mesh", help="run folder, reused when it has a checkpoint (default: runs/bench-mesh)")
    parser.add_argument("--budget", type=types.seconds, default=60.0, help="seconds of training when a run is needed (default: 60)")
    parser.add_argument(
        "--resolution",
        type=types.whole(8, types.MAX_GRID),
        default=256,
        help=f"marching-cubes points on the longest side, 8 to {types.MAX_GRID} (default: 256)",
    )
    parser.add_argument(
        "--threshold",
        type=types.real(0, 1, low_open=True, noun="a fraction"),
        default=0.01,
        help="F-score threshold as a fraction of the scene size, above 0 and at most 1 (default: 0.01)",
    )
    parser.add_argument("--json", default=None, help="write the results to this JSON file")


def bench_mesh(args: argparse.Namespace) -> dict[str, Any]:
    """Train (or reuse) a VM run on the demo scene in `args.out`, export it with marching cubes at
    `args.resolution` (unseen vertices removed with the training cameras) and score the mesh against the scene's ground truth at `args.threshold`
    times the scene size. Reports the export's time and peak resident memory."""
    import open3d as o3d

    out = Path(args.out)
    scene = build_demo_scene(out / DEMO_SCENE_FOLDER)
    if (out / CHECKPOINT_NAME).is_file():
        print(f"bench mesh: reusing the run in {out}")
    else:
        train_run(TrainConfig(data=str(scene), field="vm", out=str(out), budget=args.budget), overwrite=True)
    checkpoint = load_checkpoint(out)
    cameras = train_cameras(load_run_config(out)["scene"])
    peak_reset = _reset_peak_memory()
    started = time.perf_counter()
    mesh = export_mesh(checkpoint.model, out / "mesh.ply", "mc", args.resolution, cameras=cameras)
    seconds = time.perf_counter() - started
    peak_mb = _peak_memory_mb()
    truth = o3d.io.read_triangle_mesh(str(scene / MESH_NAME))
    result = {
        "method": "mc",
        "resolution": args.resolution,
        **mesh_quality(mesh, truth, args.threshold * scene_size(truth)),
        "threshold_fraction": args.threshold,
        "export_seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_mb, 1),
        "peak_rss_scope": "export" if peak_reset else "process",
        "vertices": len(mesh.vertices),
        "triangles": len(mesh.triangles),
        "run": str(out),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


def _reset_peak_memory() -> bool:
    """Restart the kernel's peak-RSS count of this process (Linux `clear_refs`); False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_memory_mb() -> float:
    """Peak resident memory in MB since `_reset_peak_memory` (VmHWM), else of the whole process."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
