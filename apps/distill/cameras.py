"""Cameras to distill through: sampled around a teacher's training cameras, so that the student
sees the teacher from where it was trained (jittered training poses) and, for objects, from
everywhere on the orbit the training cameras lie on (random poses on that sphere band)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from data.cameras import Cameras, se3_exp
from render.paths import focus_point, look_at, with_intrinsics, world_up

__all__ = ["sample_cameras", "POSITION_JITTER", "ROTATION_JITTER_DEGREES", "RADIUS_JITTER"]

#: jittered training poses move by this share of the cameras' median distance to their focus
#: (forward-facing captures: of the cameras' spread), in a random direction
POSITION_JITTER = 0.05
#: and turn by up to this many degrees about a random axis
ROTATION_JITTER_DEGREES = 3.0
#: orbit poses lie at the median distance times a factor within 1 +- this
RADIUS_JITTER = 0.1


def sample_cameras(reference: Cameras, count: int, forward_facing: bool, generator: torch.Generator) -> Cameras:
    """`count` cameras with the intrinsics and image size of `reference [N]` (its first camera):
    for objects (not `forward_facing`) half are jittered training poses and half look at the
    training cameras' focus point from random azimuths, at elevations within the training band
    and radii near the median; forward-facing captures get jittered training poses only (their
    field is undefined behind the cameras and beyond the frustum)."""
    c2w = reference.c2w.cpu().float()
    orbit = 0 if forward_facing or len(c2w) < 3 else count // 2
    center = c2w[:, :3, 3].mean(0) if forward_facing else focus_point(c2w)
    spread = (c2w[:, :3, 3] - center).norm(dim=-1).median().clamp(min=1e-6)
    poses = [_jittered(c2w, count - orbit, float(spread), generator)]
    if orbit:
        poses.append(_on_orbit(c2w, orbit, center, generator))
    return with_intrinsics(torch.cat(poses), reference)


def _jittered(c2w: torch.Tensor, count: int, spread: float, generator: torch.Generator) -> torch.Tensor:
    """`count` training poses `[count, 4, 4]` (cycled), each turned and moved a little."""
    base = c2w[torch.arange(count) % len(c2w)]
    angle = math.radians(ROTATION_JITTER_DEGREES) * torch.rand(count, 1, generator=generator)
    axis = F.normalize(torch.randn(count, 3, generator=generator), dim=-1)
    twist = torch.cat([axis * angle, torch.zeros(count, 3)], dim=1)
    moved = base @ se3_exp(twist)  # rotation about the camera's own centre
    step = F.normalize(torch.randn(count, 3, generator=generator), dim=-1) * POSITION_JITTER * spread
    moved[:, :3, 3] += step * torch.rand(count, 1, generator=generator)
    return moved


def _on_orbit(c2w: torch.Tensor, count: int, center: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """`count` poses `[count, 4, 4]` looking at `center` from random azimuths, elevations between
    the training cameras' lowest and highest, at their median distance (+- `RADIUS_JITTER`)."""
    up = world_up(c2w)
    offsets = c2w[:, :3, 3] - center
    radius = offsets.norm(dim=-1).median()
    elevations = torch.asin((F.normalize(offsets, dim=-1) @ up).clamp(-1, 1))
    low, high = float(elevations.min()), float(elevations.max())
    elevation = low + (high - low) * torch.rand(count, 1, generator=generator)
    azimuth = 2 * math.pi * torch.rand(count, 1, generator=generator)
    e1 = F.normalize(offsets[0] - (offsets[0] @ up) * up, dim=0)
    e2 = torch.cross(up, e1, dim=0)
    ring = torch.cos(azimuth) * e1 + torch.sin(azimuth) * e2
    distance = radius * (1 + RADIUS_JITTER * (2 * torch.rand(count, 1, generator=generator) - 1))
    positions = center + distance * (torch.cos(elevation) * ring + torch.sin(elevation) * up)
    return look_at(positions, center, up)
