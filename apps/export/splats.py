"""A Gaussian run as a standard 3DGS `.ply`, and how closely splat viewers will draw it: the file
rasterized by the reference splat rasterizer (`render.rasterize_splats`) against the field's own
renders, at the same cameras."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from data.cameras import Cameras
from fields.gaussians import GaussianField, Splats, write_splats
from render import Model, rasterize_splats

from ..evaluate.metrics import psnr

__all__ = ["splats_of", "export_splats", "rasterizer_agreement", "AGREEMENT_PIXELS"]

#: the agreement check renders each view at this many pixels at most (the rasterizer is slow)
AGREEMENT_PIXELS = 160 * 160


def splats_of(model: Model) -> Splats:
    """The Gaussians of `model` in world space; ValueError when it holds another kind of field,
    or lives in NDC or contracted space (its Gaussians would not be where a viewer draws them)."""
    field = model.field
    if not isinstance(field, GaussianField):
        raise ValueError(f"this run holds a '{field.name}' field; export-splats writes the Gaussians of a 'gaussians' run")
    if model.settings.ndc is not None or model.settings.contraction is not None:
        space = "NDC" if model.settings.ndc is not None else "contracted"
        raise ValueError(f"this run's Gaussians live in {space} space, not in the world that splat viewers draw")
    return field.to_splats()


def export_splats(model: Model, path: str | Path) -> Splats:
    """Write the Gaussians of `model` to `path` (a 3DGS `.ply`) and return them."""
    splats = splats_of(model)
    write_splats(path, splats)
    return splats


@torch.no_grad()
def rasterizer_agreement(model: Model, splats: Splats, cameras: Cameras, views: list[int]) -> list[float]:
    """PSNR (dB) of `splats` drawn by the reference splat rasterizer against the field's render,
    per camera of `views`, both at `AGREEMENT_PIXELS` at most and on the model's background."""
    factor = min(1.0, math.sqrt(AGREEMENT_PIXELS / (cameras.width * cameras.height)))
    small = cameras.scaled(factor) if factor < 1.0 else cameras
    device = model.device
    small = small.to(device)
    on_device = [t.to(device) for t in (splats.means, splats.scales, splats.quats, splats.opacities, splats.sh)]
    background = tuple(model.settings.background)
    scores = []
    for view in views:
        field_render = model.render_image(small, view)["rgb"]
        drawn = rasterize_splats(*on_device, small, view, background=background)["rgb"]
        scores.append(psnr(drawn.clamp(0, 1), field_render))
    return scores
