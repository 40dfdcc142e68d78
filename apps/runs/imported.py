"""Run folders made from a 3DGS `.ply` of another tool (`tensorfields import-splats`): its
Gaussians as a `gaussians` field (`GaussianField.from_splats`, the inverse of export-splats'
conversion), rendered through the marcher like any run, so that `view`, `render`, `slim`,
`export-mesh`, `export-splats` and `train --init-splats` take it.

With the scene the file was made from, the run records that scene (its cameras, background and
box): `eval` scores it on the held-out views. Without one, the run's cameras are an orbit
around the Gaussians (`orbit_scene_info`), and the box is the one that holds all but the
outermost `OUTLIER_SHARE` of their centres on each axis (3DGS files carry far floaters that
would stretch a box over the whole room and starve the lookup cells): the Gaussians outside it
are left out and counted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from data import Scene
from fields import render_step_size
from fields.gaussians import GaussianField, Splats, read_splats
from render import Model, OccupancyGrid, RenderSettings
from render.paths import look_at

from .records import scene_info

__all__ = ["splat_run", "splat_box", "orbit_scene_info", "OUTLIER_SHARE", "ORBIT_VIEWS", "ORBIT_SIZE", "ORBIT_FOV_DEGREES"]

#: the share of the Gaussians' centres left outside the box on each side of each axis (no scene)
OUTLIER_SHARE = 0.001
#: the orbit a run without a scene records as its cameras: views, square image side, field of view
ORBIT_VIEWS = 24
ORBIT_SIZE = 800
ORBIT_FOV_DEGREES = 50.0
#: render settings of an import: the training defaults (`TrainConfig`)
STEP_RATIO = 0.5
OCCUPANCY_RESOLUTION = 128
OCCUPANCY_THRESHOLD = 1e-3


def splat_box(means: torch.Tensor) -> torch.Tensor:
    """The box `[2, 3]` of `means [N, 3]` without the outermost `OUTLIER_SHARE` on each side,
    widened by 2% of its diagonal."""
    if means.shape[0] < 2:
        return torch.stack([means.min(0).values, means.max(0).values]) + torch.tensor([[-1.0], [1.0]])
    low, high = torch.quantile(means.double(), torch.tensor([OUTLIER_SHARE, 1.0 - OUTLIER_SHARE], dtype=torch.float64), dim=0).float()
    margin = 0.02 * float((high - low).norm()) + 1e-6
    return torch.stack([low - margin, high + margin])


def orbit_scene_info(source: str | Path, aabb: torch.Tensor) -> dict[str, Any]:
    """Scene info (`records.scene_info`'s layout, kind "splats") whose training cameras are
    `ORBIT_VIEWS` views around `aabb [2, 3]` at 20 degrees elevation (z up), far enough that the
    box's bounding sphere fills `ORBIT_FOV_DEGREES`, at `ORBIT_SIZE` pixels square."""
    centre, radius = aabb.mean(0), float((aabb[1] - aabb[0]).norm()) / 2
    half_fov = math.radians(ORBIT_FOV_DEGREES) / 2
    distance = radius / math.sin(half_fov)
    angles = torch.arange(ORBIT_VIEWS) * (2 * math.pi / ORBIT_VIEWS)
    elevation = math.radians(20.0)
    offsets = torch.stack([angles.cos() * math.cos(elevation), angles.sin() * math.cos(elevation),
                           torch.full_like(angles, math.sin(elevation))], dim=-1)  # fmt: skip
    c2w = look_at(centre + distance * offsets, centre, torch.tensor([0.0, 0.0, 1.0]))
    focal = ORBIT_SIZE / 2 / math.tan(half_fov)
    return {
        "source": str(source),
        "kind": "splats",
        "downsample": 1,
        "width": ORBIT_SIZE,
        "height": ORBIT_SIZE,
        "num_train": ORBIT_VIEWS,
        "forward_facing": False,
        "train_cameras": {
            "c2w": [[round(v, 6) for v in m.flatten().tolist()] for m in c2w],
            "fx": focal,
            "fy": focal,
            "cx": ORBIT_SIZE / 2,
            "cy": ORBIT_SIZE / 2,
        },
    }


def _model(splats: Splats, aabb: torch.Tensor, background: list[float], near: float, far: float) -> Model:
    field = GaussianField.from_splats(splats, aabb=aabb, resolution=GaussianField.index_resolution(aabb))
    settings = RenderSettings(step_size=render_step_size(field, STEP_RATIO), near=near, far=far, background=background)
    grid = OccupancyGrid(field.aabb, OCCUPANCY_RESOLUTION)
    grid.take_from(field, settings.step_size, OCCUPANCY_THRESHOLD)
    return Model(field, grid, settings)


def splat_run(path: str | Path, scene: Scene | None = None) -> tuple[Model, dict[str, Any], int]:
    """The model of the 3DGS file `path` in the frame of `scene` (its box, cameras and
    background) when given, else around the Gaussians (white background), with the scene info
    its run records and how many Gaussians lay outside the box and were left out.

    Raises:
        SplatFileError: `path` is not a 3DGS file.
        ValueError: `scene` is forward-facing (its NDC space is not the world's), or none of the
            Gaussians lies in the box.
    """
    splats = read_splats(path)
    if scene is not None and scene.ndc:
        raise ValueError(f"{scene.source}: a forward-facing scene trains in NDC space, where world-space splats do not apply")
    aabb = scene.aabb.float() if scene is not None else splat_box(splats.means)
    inside = ((splats.means >= aabb[0]) & (splats.means <= aabb[1])).all(dim=-1)
    if not bool(inside.any()):
        raise ValueError(f"{path}: none of its {len(splats):,} Gaussians lies in the scene's box {aabb.tolist()}: "
                         "the file is in another frame than the scene")  # fmt: skip
    kept = Splats(*(getattr(splats, name)[inside] for name in ("means", "scales", "quats", "opacities", "sh")))
    if scene is None:
        return _model(kept, aabb, [1.0, 1.0, 1.0], 0.0, 1e10), orbit_scene_info(path, aabb), int((~inside).sum())
    return _model(kept, aabb, scene.background.tolist(), scene.near, scene.far), scene_info(scene), int((~inside).sum())
