"""Scene contraction of unbounded (360-degree) captures, as mip-NeRF 360.

A `Contraction` names the foreground ball (world centre and radius). Rays are rendered in its
frame (world minus centre, over radius, so the ball is the unit ball), and the field sees every
sample through `contract`: the unit ball at full resolution, all of space beyond it squeezed into
the shell between radius 1 and 2. The field's box is `CONTRACTED_AABB`; so is the occupancy
grid's, and the marcher steps in contracted space (`cuda_ext.march_rays(..., contracted=True)`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cuda_ext.reference import contract

from .paths import focus_point
from .rays import Rays

__all__ = ["Contraction", "CONTRACTED_AABB", "FOREGROUND_FRACTION", "contract", "contracted_stretch", "foreground_ball"]

#: the box of contracted space, `[2, 3]`: every contracted point lies in the ball of radius 2
CONTRACTED_AABB = ((-2.0, -2.0, -2.0), (2.0, 2.0, 2.0))
#: the foreground ball's radius, as a fraction of the cameras' median distance from its centre
FOREGROUND_FRACTION = 0.5


@dataclass(frozen=True)
class Contraction:
    """The foreground ball of an unbounded scene: `center` (world, 3 floats) and `radius` (world
    units). Saved with the render settings."""

    center: tuple[float, float, float]
    radius: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", tuple(float(v) for v in self.center))
        object.__setattr__(self, "radius", float(self.radius))
        if not self.radius > 0:
            raise ValueError(f"the contraction radius must be positive, got {self.radius}")

    def to_unit(self, rays: Rays) -> Rays:
        """`rays` in the ball's frame (origins moved and scaled, directions kept; distances along
        them, `far` included, divided by the radius)."""
        center = torch.tensor(self.center, dtype=rays.origins.dtype, device=rays.origins.device)
        return Rays((rays.origins - center) / self.radius, rays.directions, rays.far / self.radius, rays.code)

    def field_points(self, points: torch.Tensor) -> torch.Tensor:
        """World points `[N, 3]` where the field takes them: contracted in the ball's frame."""
        center = torch.tensor(self.center, dtype=points.dtype, device=points.device)
        return contract((points - center) / self.radius)

    def points_to_world(self, points: torch.Tensor) -> torch.Tensor:
        """Points `[N, 3]` of the ball's frame (uncontracted) in world units."""
        return points * self.radius + torch.tensor(self.center, dtype=points.dtype, device=points.device)


def contracted_stretch(contracted: torch.Tensor) -> torch.Tensor:
    """The longest stretch of a march step (`cuda_ext.reference.contraction_stretch`, going
    straight out: |x|^2, at least 1) at the point x whose contraction is `contracted [..., 3]`
    (|x| = 1 / (2 - |contract(x)|) outside the unit ball), `[...]`."""
    radius = contracted.norm(dim=-1)
    outside = 1.0 / (2.0 - radius.clamp(min=1.0, max=2.0 - 1e-6))
    return (outside * outside).clamp(min=1.0)


def foreground_ball(c2w: torch.Tensor) -> Contraction:
    """The foreground ball of cameras `c2w [N, 4, 4]` (OpenCV camera-to-world) around an object:
    centred on the point nearest to all optical axes, radius `FOREGROUND_FRACTION` of the
    cameras' median distance from it. The object gets the ball at full resolution, the cameras
    sit in the shell (at contracted radius 1.5), and the room behind them nearer radius 2."""
    c2w = c2w.detach().cpu()
    center = focus_point(c2w)
    distance = (c2w[:, :3, 3] - center).norm(dim=-1).median()
    return Contraction(tuple(center.tolist()), FOREGROUND_FRACTION * float(distance))
