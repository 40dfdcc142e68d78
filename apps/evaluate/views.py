"""Rendering held-out views of a trained field and scoring them (PSNR, SSIM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dataclasses
import math

import imageio.v3 as iio
import numpy as np
import torch

from data import Scene
from data.images import resize_image, scaled_size
from render import Model

from .appearance import appearance_protocol, check_appearance_mode, fit_code
from .metrics import psnr, ssim

__all__ = ["evaluate_views", "evenly_spaced", "to_uint8", "at_most_pixels"]


def evenly_spaced(indices: torch.Tensor, count: int | None) -> torch.Tensor:
    """At most `count` entries of `indices [N]`, evenly spread (all of them when count is None)."""
    if count is None or count >= len(indices):
        return indices
    return indices[torch.linspace(0, len(indices) - 1, count).round().long()]


def at_most_pixels(scene: Scene, indices: torch.Tensor, pixels: int) -> tuple[Scene, float]:
    """`scene` with the images `indices [K]` (the others dropped from memory: zeros) resized, by
    the same Lanczos filter as the loaders, so that each has at most `pixels` pixels, and its
    cameras scaled to match; and the factor (1.0 and `scene` itself when they are small enough)."""
    factor = min(1.0, math.sqrt(pixels / (scene.width * scene.height)))
    if factor >= 1.0:
        return scene, 1.0
    width, height = scaled_size(scene.width, scene.height, factor)
    images = torch.zeros(len(scene.images), height, width, 3, dtype=torch.uint8)
    for index in indices.tolist():
        images[index] = torch.from_numpy(np.array(resize_image(scene.images[index].numpy(), (width, height))))
    cameras = dataclasses.replace(scene.cameras.scaled(factor), width=width, height=height)
    return dataclasses.replace(scene, images=images, cameras=cameras, alpha=None, downsample=scene.downsample / factor), factor


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """Float image in [0, 1] (`[H, W]` or `[H, W, C]`) -> uint8."""
    return (image.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)


@torch.no_grad()
def evaluate_views(
    model: Model,
    scene: Scene,
    indices: torch.Tensor,
    render_dir: Path | None = None,
    with_ssim: bool = True,
    appearance: str = "mean",
) -> dict[str, Any]:
    """Render the views `indices` of `scene` with `model` and compare them with its images.

    A field with appearance codes renders each view with the mean code (`appearance` "mean"),
    or with a code fitted to the view's left half, scoring the right half ("fit-left-half",
    NeRF-W's protocol; see `evaluate.appearance`).

    Returns:
        {"psnr": mean PSNR over views, "ssim": mean SSIM (None when skipped), "num_views",
        "resolution": [W, H], "appearance": how views were coloured ("mean code", "fitted on the
        left half, scored on the right half" or "none"), "per_view": [{"index", "psnr", "ssim"}]}.
        With `render_dir`, each render is written there as `<index>.png` beside its depth as
        `<index>_depth.png`.
    """
    check_appearance_mode(model, appearance)
    device = model.device
    cameras = scene.cameras.to(device)
    scored = slice(scene.width // 2, None) if appearance == "fit-left-half" else slice(None)
    per_view = []
    for index in indices.tolist():
        target = scene.images[index].to(device).float() / 255.0
        code = fit_code(model, cameras, index, target, seed=index) if appearance == "fit-left-half" else None
        rendered = model.render_image(cameras, index, code=code)
        rgb, target = rendered["rgb"][:, scored], target[:, scored]
        entry = {"index": index, "psnr": psnr(rgb, target), "ssim": ssim(rgb, target) if with_ssim else None}
        per_view.append(entry)
        if render_dir is not None:
            render_dir.mkdir(parents=True, exist_ok=True)
            iio.imwrite(render_dir / f"{index:04d}.png", to_uint8(rendered["rgb"]).cpu().numpy())
            iio.imwrite(render_dir / f"{index:04d}_depth.png", to_uint8(normalized_depth(rendered)).cpu().numpy())
    count = len(per_view)
    return {
        "psnr": sum(v["psnr"] for v in per_view) / max(count, 1),
        "ssim": sum(v["ssim"] for v in per_view) / max(count, 1) if with_ssim else None,
        "num_views": count,
        "resolution": [scene.width, scene.height],
        "appearance": appearance_protocol(model, appearance),
        "per_view": per_view,
    }


def normalized_depth(rendered: dict[str, torch.Tensor]) -> torch.Tensor:
    """Expected surface depth as brightness in [0, 1] (near bright, far dark, empty black), `[H, W]`:
    linear in disparity (1 / depth) between its 1st and 99th percentiles over the pixels that hit
    something, so the room of an unbounded scene, whose walls lie hundreds of times farther than
    the object, shows its shapes as well as a bounded scene does."""
    opacity = rendered["opacity"]
    disparity = opacity.clamp(min=1e-6) / rendered["depth"].clamp(min=1e-6)
    valid = opacity > 0.5
    if not valid.any():
        return torch.zeros_like(disparity)
    lo, hi = torch.quantile(disparity[valid].float()[:: max(1, int(valid.sum()) // 100_000)], torch.tensor([0.01, 0.99]))
    scaled = ((disparity - lo) / (hi - lo).clamp(min=1e-12)).clamp(0.0, 1.0)
    return scaled * valid
