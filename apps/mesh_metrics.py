"""Mesh quality against a ground-truth mesh (Chamfer distance, F-score), and `tensorfields bench
mesh`, which measures it for a VM field trained on the demo scene.

Both surfaces are sampled uniformly (by area) with Open3D; each sample's distance to the nearest
sample of the other surface comes from Open3D's KD-tree (`compute_point_cloud_distance`).
- Chamfer distance: the mean of the two mean nearest-neighbour distances (prediction -> ground
  truth and back), in scene units.
- F-score at a threshold tau: the harmonic mean of precision (the fraction of predicted samples
  within tau of the ground truth) and recall (the fraction of ground-truth samples within tau of
  the prediction), as in Tanks and Temples.
The default threshold is 1% of the scene size, the longest side of the ground-truth mesh's
bounding box.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from data import build_demo_scene
from data.demo import MESH_NAME

from .checkpoint import CHECKPOINT_NAME, load_checkpoint
from .demo import DEMO_SCENE_FOLDER
from .mesh_export import export_mesh
from .run import load_run_config, train_run
from .trainer import TrainConfig, train_cameras

__all__ = ["mesh_distances", "mesh_quality", "scene_size", "bench_mesh"]

#: points sampled on each surface
SURFACE_SAMPLES = 200_000


def mesh_distances(predicted: Any, reference: Any, samples: int = SURFACE_SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour distances between `samples` points drawn uniformly on each of two Open3D
    triangle meshes: predicted -> reference `[samples]` and reference -> predicted `[samples]`."""
    import open3d as o3d

    o3d.utility.random.seed(seed)
    ours = predicted.sample_points_uniformly(number_of_points=samples)
    theirs = reference.sample_points_uniformly(number_of_points=samples)
    return np.asarray(ours.compute_point_cloud_distance(theirs)), np.asarray(theirs.compute_point_cloud_distance(ours))


def mesh_quality(predicted: Any, reference: Any, threshold: float, samples: int = SURFACE_SAMPLES) -> dict[str, float]:
    """Chamfer distance, and precision, recall and F-score at `threshold` (scene units), of
    `predicted` against `reference` (Open3D triangle meshes)."""
    to_reference, to_predicted = mesh_distances(predicted, reference, samples)
    precision = float((to_reference < threshold).mean())
    recall = float((to_predicted < threshold).mean())
    fscore = 2.0 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    chamfer = 0.5 * float(to_reference.mean() + to_predicted.mean())
    return {"chamfer": chamfer, "fscore": fscore, "precision": precision, "recall": recall, "threshold": threshold}


def scene_size(mesh: Any) -> float:
    """The longest side of `mesh`'s axis-aligned bounding box."""
    return float(np.max(mesh.get_max_bound() - mesh.get_min_bound()))


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
        train_run(TrainConfig(data=str(scene), field="vm", out=str(out), budget=args.budget))
    checkpoint = load_checkpoint(out)
    cameras = train_cameras(load_run_config(out)["scene"])
    peak_reset = _reset_peak_memory()
    started = time.perf_counter()
    mesh = export_mesh(checkpoint, out / "mesh.ply", "mc", args.resolution, cameras=cameras)
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
