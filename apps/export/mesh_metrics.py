"""Mesh quality against a ground-truth mesh (Chamfer distance, F-score); `tensorfields bench mesh`
(`apps/bench/mesh.py`) measures it for a VM field trained on the demo scene.

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

from typing import Any

import numpy as np

__all__ = ["mesh_distances", "mesh_quality", "scene_size"]

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
