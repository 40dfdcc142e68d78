"""Turntable / fly-around videos of a trained field."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import torch
from tqdm import tqdm

from data import Cameras
from render import Model
from render.paths import forward_circle_path, orbit_path

from ..evaluate import to_uint8
from ..runs import RunWriteError, atomic_output

__all__ = ["render_video", "video_cameras"]


def video_cameras(reference: Cameras, frames: int, forward_facing: bool) -> Cameras:
    """The camera path of a video: an orbit for object captures, a circle for forward-facing ones."""
    return forward_circle_path(reference, frames) if forward_facing else orbit_path(reference, frames)


@torch.no_grad()
def render_video(model: Model, cameras: Cameras, out: Path, fps: int = 30) -> Path:
    """Render every camera of `cameras` and write them as a video (.mp4) or animation (.gif);
    `out` appears only complete (`runs.atomic_output`), else a one-line `RunWriteError`."""
    cameras = cameras.to(model.device)
    frames = [
        to_uint8(model.render_image(cameras, index)["rgb"]).cpu().numpy()
        for index in tqdm(range(len(cameras)), desc="rendering", unit="frame", disable=None)
    ]
    with atomic_output(out) as partial:
        if out.suffix.lower() == ".gif":  # encoded in memory: Pillow retries a failed write at exit
            partial.write_bytes(iio.imwrite("<bytes>", np.stack(frames), extension=".gif", duration=1000 / fps, loop=0))
        else:
            imageio.mimwrite(partial, frames, fps=fps, quality=8, macro_block_size=1)
            written = _frame_count(partial)  # ffmpeg runs apart: a full disk only shows in what it wrote
            if written != len(frames):
                raise RunWriteError(f"{out}: cannot write the video (it holds {written} of {len(frames)} frames; is the disk full?)")
    return out


def _frame_count(path: Path) -> int:
    """The frames of the video file `path` as ffmpeg reads them; 0 when it cannot read it."""
    try:
        with imageio.get_reader(path) as reader:
            return reader.count_frames()
    except (OSError, RuntimeError, ValueError):
        return 0
