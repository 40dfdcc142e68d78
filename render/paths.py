"""Camera paths for videos: an orbit around an object, or a circle for forward-facing captures."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from data.cameras import Cameras

__all__ = ["look_at", "focus_point", "world_up", "with_intrinsics", "orbit_path", "forward_circle_path"]


def look_at(positions: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """OpenCV camera-to-world matrices `[N, 4, 4]` at `positions [N, 3]` looking at `target [3]`,
    with image "up" along world `up [3]`."""
    forward = F.normalize(target - positions, dim=-1)
    right = F.normalize(torch.cross(forward, up.expand_as(forward), dim=-1), dim=-1)
    down = torch.cross(forward, right, dim=-1)
    c2w = torch.eye(4).repeat(len(positions), 1, 1)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = right, down, forward, positions
    return c2w


def focus_point(c2w: torch.Tensor) -> torch.Tensor:
    """The point nearest (least squares) to all optical axes of OpenCV cameras `[N, 4, 4]`, `[3]`."""
    origins, axes = c2w[:, :3, 3].double(), c2w[:, :3, 2].double()
    projector = torch.eye(3, dtype=torch.float64) - axes[:, :, None] * axes[:, None, :]
    return torch.linalg.lstsq(projector.sum(0), (projector @ origins[:, :, None]).sum(0)).solution[:, 0].float()


def world_up(c2w: torch.Tensor) -> torch.Tensor:
    """The world's up direction `[3]` as OpenCV cameras `[N, 4, 4]` hold it: minus their mean image-down axis."""
    return F.normalize(-c2w[:, :3, 1].mean(0), dim=0)


def orbit_path(reference: Cameras, frames: int) -> Cameras:
    """A full turn around the point the reference cameras look at, at their median distance and
    mean elevation, with the intrinsics of the first reference camera."""
    c2w = reference.c2w.cpu()
    up = world_up(c2w)
    center = focus_point(c2w)
    offsets = c2w[:, :3, 3] - center
    radius = offsets.norm(dim=-1).median()
    elevation = torch.asin((F.normalize(offsets, dim=-1) @ up).clamp(-1, 1)).mean()
    e1 = F.normalize(offsets[0] - (offsets[0] @ up) * up, dim=0)
    e2 = torch.cross(up, e1, dim=0)
    angles = torch.linspace(0, 2 * math.pi, frames + 1)[:-1]
    ring = torch.cos(angles)[:, None] * e1 + torch.sin(angles)[:, None] * e2
    positions = center + radius * (torch.cos(elevation) * ring + torch.sin(elevation) * up)
    return with_intrinsics(look_at(positions, center, up), reference)


def forward_circle_path(reference: Cameras, frames: int, focus_distance: float = 3.0) -> Cameras:
    """Forward-facing captures: cameras on a circle around the average camera (radius: 90th
    percentile of the cameras' offsets), all looking at a point `focus_distance` ahead of it."""
    c2w = reference.c2w.cpu()
    center = c2w[:, :3, 3].mean(0)
    forward = F.normalize(c2w[:, :3, 2].mean(0), dim=0)
    up = world_up(c2w)
    right = F.normalize(torch.cross(forward, up, dim=0), dim=0)
    up = torch.cross(right, forward, dim=0)
    offsets = c2w[:, :3, 3] - center
    radius_x = torch.quantile((offsets @ right).abs(), 0.9)
    radius_y = torch.quantile((offsets @ up).abs(), 0.9)
    angles = torch.linspace(0, 2 * math.pi, frames + 1)[:-1]
    positions = center + radius_x * torch.cos(angles)[:, None] * right + radius_y * torch.sin(angles)[:, None] * up
    return with_intrinsics(look_at(positions, center + focus_distance * forward, up), reference)


def with_intrinsics(c2w: torch.Tensor, reference: Cameras) -> Cameras:
    """Cameras at poses `c2w [N, 4, 4]` with the image size and the first camera's intrinsics of `reference`."""
    n = len(c2w)
    return Cameras(
        c2w=c2w,
        fx=reference.fx[:1].expand(n).cpu(),
        fy=reference.fy[:1].expand(n).cpu(),
        cx=reference.cx[:1].expand(n).cpu(),
        cy=reference.cy[:1].expand(n).cpu(),
        width=reference.width,
        height=reference.height,
    )
