"""Cameras to rays, occupancy grid, marching + compositing, image rendering, and `Model` (a field
with its grid and render settings)."""

from .contraction import CONTRACTED_AABB, Contraction, foreground_ball
from .model import Model
from .occupancy import OccupancyGrid
from .rays import NDC, Rays, camera_rays, image_rays, ndc_rays
from .renderer import RenderOutput, RenderSettings, render_image, render_rays, render_rays_progressive
from .splats import rasterize_splats

__all__ = [
    "Contraction",
    "CONTRACTED_AABB",
    "foreground_ball",
    "Model",
    "NDC",
    "Rays",
    "camera_rays",
    "image_rays",
    "ndc_rays",
    "OccupancyGrid",
    "RenderSettings",
    "RenderOutput",
    "render_rays",
    "render_rays_progressive",
    "render_image",
    "rasterize_splats",
]
