"""Turntable / fly-around videos of a trained field."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import torch
from tqdm import tqdm

from data import Cameras
from render import Model
from render.paths import forward_circle_path, orbit_path

from ..evaluate import to_uint8

__all__ = ["render_video", "video_cameras"]


def video_cameras(reference: Cameras, frames: int, forward_facing: bool) -> Cameras:
    """The camera path of a video: an orbit for object captures, a circle for forward-facing ones."""
    return forward_circle_path(reference, frames) if forward_facing else orbit_path(reference, frames)


@torch.no_grad()
def render_video(model: Model, cameras: Cameras, out: Path, fps: int = 30) -> Path:
    """Render every camera of `cameras` and write them as a video (.mp4) or animation (.gif)."""
    cameras = cameras.to(model.device)
    frames = [
        to_uint8(model.render_image(cameras, index)["rgb"]).cpu().numpy()
        for index in tqdm(range(len(cameras)), desc="rendering", unit="frame", disable=None)
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        imageio.mimwrite(out, frames, duration=1000 / fps, loop=0)
    else:
        imageio.mimwrite(out, frames, fps=fps, quality=8, macro_block_size=1)
    return out
