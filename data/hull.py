"""The visual hull of a scene whose training images carry alpha masks: points of the box that
every training view sees inside its object's mask (space carving), where an object's primitives
can start instead of uniformly in the box."""

from __future__ import annotations

import torch

from .scene import Scene

__all__ = ["visual_hull_points", "MASK_LEVEL"]

#: a pixel belongs to the object when its alpha is above this (of 255)
MASK_LEVEL = 127


@torch.no_grad()
def visual_hull_points(scene: Scene, count: int, tries: int = 8, generator: torch.Generator | None = None) -> torch.Tensor | None:
    """Up to `count` points `[M, 3]` drawn uniformly in `scene.aabb` and kept where every
    training view that sees them finds them inside its mask; None when the scene has no masks
    or no point survives. A point outside a view's image (or behind it) is not carved by it."""
    if scene.alpha is None:
        return None
    train = scene.split("train")
    cameras, masks = scene.cameras[train], scene.alpha[train] > MASK_LEVEL
    low, size = scene.aabb[0].float(), (scene.aabb[1] - scene.aabb[0]).float()
    kept: list[torch.Tensor] = []
    for _ in range(tries):
        points = low + torch.rand(4 * count, 3, generator=generator) * size
        pixels, depth = cameras.project(points)  # [V, P, 2], [V, P]
        col, row = pixels[..., 0].floor().long(), pixels[..., 1].floor().long()
        seen = (depth > 0) & (col >= 0) & (col < scene.width) & (row >= 0) & (row < scene.height)
        view = torch.arange(len(cameras))[:, None].expand_as(col)
        inside = masks[view, row.clamp(0, scene.height - 1), col.clamp(0, scene.width - 1)]
        kept.append(points[(inside | ~seen).all(dim=0)])
        if sum(len(k) for k in kept) >= count:
            break
    points = torch.cat(kept)[:count]
    return points if len(points) else None
