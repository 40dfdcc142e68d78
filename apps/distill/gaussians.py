"""Gaussians fitted to any trained field: one Gaussian where each of many rays of the training
cameras ends, coloured as the field renders it there (the surface points a splat file needs,
as SfM points are for 3DGS), then fitted to the field's density and colour at points of its
occupied cells (`points.distill_at_points`). `train --init-from RUN` starts a Gaussian run
this way, and `export-splats --from-field` writes any run as splats."""

from __future__ import annotations

import dataclasses

import torch

from data.cameras import Cameras
from fields import render_step_size
from fields.gaussians import GaussianField
from render import Model, OccupancyGrid
from render.rays import camera_rays

from .points import distill_at_points, occupied_point_sampler

__all__ = ["surface_points", "fit_gaussians", "gaussian_model", "SURFACE_OPACITY", "FIT_STEPS", "FIT_OPACITY"]

#: a ray ends on a surface when the field stops more than this share of its light
SURFACE_OPACITY = 0.5
#: point-distillation steps of a fit (4096 points each)
FIT_STEPS = 300
#: the opacity fitted Gaussians start at (neighbours overlap: a surface of them is opaque)
FIT_OPACITY = 0.5


def _bounded(model: Model, what: str) -> None:
    if model.settings.ndc is not None or model.settings.contraction is not None:
        space = "NDC" if model.settings.ndc is not None else "contracted"
        raise ValueError(f"{what} needs a run of a bounded scene; this one lives in {space} space")


@torch.no_grad()
def surface_points(
    model: Model, cameras: Cameras, count: int, generator: torch.Generator | None = None, batch: int = 16384
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where rays through random pixels of `cameras` end in `model`, and the colour there.

    Returns:
        up to `count` points `[P, 3]` (world) at the expected depth of the rays whose opacity
        is above `SURFACE_OPACITY`, and their colours `[P, 3]` in [0, 1] with the background
        taken out (rgb - (1 - opacity) * background) / opacity. Fewer when the field is mostly
        empty (after 16 batches per `batch` asked for).
    """
    _bounded(model, "fitting Gaussians to a field")
    cameras = cameras.to(model.device)
    background = torch.tensor(model.settings.background, device=model.device)
    points, colours, found = [], [], 0
    for _ in range(16 * (count // batch + 1)):
        if found >= count:
            break
        index = torch.randint(len(cameras), (batch,), generator=generator).to(model.device)
        x = (torch.rand(batch, generator=generator) * cameras.width).to(model.device)
        y = (torch.rand(batch, generator=generator) * cameras.height).to(model.device)
        rays = camera_rays(cameras, index, x, y)
        out = model.render_progressive(rays)
        hit = out.opacity > SURFACE_OPACITY
        opacity = out.opacity[hit][:, None]
        points.append(rays.origins[hit] + rays.directions[hit] * (out.depth[hit][:, None] / opacity))
        colours.append(((out.rgb[hit] - (1.0 - opacity) * background) / opacity).clamp(0.0, 1.0))
        found += int(hit.sum())
    return torch.cat(points)[:count], torch.cat(colours)[:count]


def fit_gaussians(
    model: Model,
    cameras: Cameras,
    count: int,
    steps: int = FIT_STEPS,
    generator: torch.Generator | None = None,
    **field_options: object,
) -> GaussianField:
    """A Gaussian field of up to `count` Gaussians over `model`'s box, placed at its surface
    points (`surface_points` of `cameras`) with their colours at `FIT_OPACITY`, then fitted to
    `model`'s field at points of its occupied cells for `steps` steps. `field_options` go to
    `GaussianField` (colour_components, sh_degree, ...).

    Raises:
        ValueError: the model lives in NDC or contracted space, or no ray of `cameras` meets a surface.
    """
    points, colours = surface_points(model, cameras, count, generator)
    if points.shape[0] == 0:
        raise ValueError("no ray of the training cameras meets a surface of the field: there is nothing to place Gaussians on")
    aabb = model.field.aabb.detach().cpu()
    field = GaussianField(aabb, GaussianField.index_resolution(aabb), num_gaussians=points.shape[0], **field_options).to(model.device)  # type: ignore[arg-type]
    field.place(points, colours, opacity=FIT_OPACITY)
    if steps > 0:
        sample = occupied_point_sampler(model.grid, generator=None)
        distill_at_points(model.field, field, sample, steps, model.settings.step_size)
    return field


@torch.no_grad()
def gaussian_model(field: GaussianField, like: Model, step_ratio: float = 0.5, occupancy_threshold: float = 1e-3) -> Model:
    """`field` rendered as `like` is (a copy of its settings), but at `step_ratio` of its own
    lookup cell (as training marches it) through an occupancy grid of `like`'s resolution from
    its cutoff boxes."""
    settings = dataclasses.replace(like.settings, step_size=render_step_size(field, step_ratio))
    grid = OccupancyGrid(field.aabb, like.grid.resolution).to(field.aabb.device)
    grid.take_from(field, settings.step_size, occupancy_threshold)
    return Model(field, grid, settings)
