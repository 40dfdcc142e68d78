"""The visual hull of a masked scene: where Gaussian fields start on object captures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from data import load_scene
from data.hull import visual_hull_points


def test_hull_points_lie_around_the_masked_sphere(sphere_scene: Path) -> None:
    scene = load_scene(sphere_scene)
    points = visual_hull_points(scene, 2000, generator=torch.Generator().manual_seed(0))
    assert points is not None and points.shape == (2000, 3)
    radius = points.norm(dim=-1)
    # the sphere (radius 0.5) is inside the hull, and a ring of 12 views carves most of the box away
    assert float(radius.max()) < 0.9 and float((radius < 0.5).float().mean()) > 0.3
    box = scene.aabb
    assert bool(((points >= box[0]) & (points <= box[1])).all())


def test_a_scene_without_masks_has_no_hull(sphere_scene: Path) -> None:
    scene = dataclasses.replace(load_scene(sphere_scene), alpha=None)
    assert visual_hull_points(scene, 100) is None
