"""`Model`: a field with its occupancy grid and render settings, the unit that is rendered,
evaluated, viewed, exported and saved."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from data.cameras import Cameras
from fields.base import Field

from .occupancy import OccupancyGrid
from .rays import Rays
from .renderer import RenderOutput, RenderSettings, render_image, render_rays, render_rays_progressive

__all__ = ["Model"]


class Model(nn.Module):
    """A field, the occupancy grid its rays march through, and how it is rendered.

    `forward(rays)` renders a batch of rays differentiably (training; `jitter` offsets the
    samples); `render_image` and `render_progressive` render without gradients. Training
    replaces `field` and `grid` as it goes (upsampling, placement, box shrinks); `settings` is
    plain data, saved with every checkpoint.
    """

    def __init__(self, field: Field, grid: OccupancyGrid, settings: RenderSettings) -> None:
        super().__init__()
        self.field = field
        self.grid = grid
        self.settings = settings

    @property
    def device(self) -> torch.device:
        return self.field.aabb.device

    def forward(
        self,
        rays: Rays,
        settings: RenderSettings | None = None,
        jitter: bool = False,
        generator: torch.Generator | None = None,
        with_samples: bool = False,
    ) -> RenderOutput:
        """Render `rays` (`settings` replace the model's for this batch, e.g. another background;
        `with_samples`: the output carries the samples' weights, see `render_rays`)."""
        return render_rays(
            self.field, self.grid, rays, settings or self.settings, jitter=jitter, generator=generator, with_samples=with_samples
        )

    def render_progressive(self, rays: Rays, settings: RenderSettings | None = None) -> RenderOutput:
        """Inference rendering of `rays` in depth segments (see `render.render_rays_progressive`)."""
        return render_rays_progressive(self.field, self.grid, rays, settings or self.settings)

    def render_image(
        self, cameras: Cameras, index: int, settings: RenderSettings | None = None, code: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Camera `index` of `cameras` as "rgb" `[H, W, 3]`, "opacity" `[H, W]`, "depth" `[H, W]`,
        with the appearance `code [E]` (None: the field's mean code; see `fields.appearance`)."""
        return render_image(self.field, self.grid, cameras, index, settings or self.settings, code=code)

    @property
    def world_scale(self) -> float:
        """World units per unit of distance along the rays the field is marched on (the
        contraction's radius; 1 without): density per world unit is the field's over this."""
        contraction = self.settings.contraction
        return 1.0 if contraction is None else contraction.radius

    def field_points(self, points: torch.Tensor) -> torch.Tensor:
        """World points `[N, 3]` where the field takes them: as they are, or contracted in the
        foreground ball's frame for unbounded scenes."""
        contraction = self.settings.contraction
        return points if contraction is None else contraction.field_points(points)

    def with_field(self, field: Field) -> "Model":
        """A model of `field` with this model's grid and (a copy of its) settings."""
        return Model(field, self.grid, dataclasses.replace(self.settings))
