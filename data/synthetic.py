"""A tiny synthetic scene drawn exactly, with no renderer: the test suite's and the hostile-input
benchmark's fixture (a scene trains in seconds and its images are known)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["write_sphere_scene", "look_at_opengl"]


def look_at_opengl(eye: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """OpenGL camera-to-world `[4, 4]` (x right, y up, looking down -z) at `eye [3]` facing
    `target [3]` (default the origin), with +z up."""
    target = np.zeros(3) if target is None else target
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([right, up, -forward], axis=1)
    c2w[:3, 3] = eye
    return c2w


def write_sphere_scene(folder: Path, views: int = 12, width: int = 40, height: int = 30, radius: float = 0.5) -> Path:
    """A nerfstudio `transforms.json` scene in `folder`: a shaded sphere at the origin (RGBA,
    transparent around it, so it trains on white), seen from a ring of `views` cameras (OpenGL
    poses, as the format stores them), drawn by exact ray casting. Returns `folder`."""
    import imageio.v3 as iio

    folder.mkdir(parents=True, exist_ok=True)
    focal = 0.9 * width
    frames = []
    for i in range(views):
        angle = 2 * np.pi * i / views
        eye = np.array([3.0 * np.cos(angle), 3.0 * np.sin(angle), 1.2 + 0.3 * np.sin(3 * angle)])
        c2w = look_at_opengl(eye)
        right, up, forward = c2w[:3, 0], c2w[:3, 1], -c2w[:3, 2]
        cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
        dirs = ((cols - width / 2) / focal)[..., None] * right - ((rows - height / 2) / focal)[..., None] * up + forward
        dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
        b = dirs @ eye
        disc = b**2 - (eye @ eye - radius**2)
        hit = disc > 0
        t = -b - np.sqrt(np.clip(disc, 0, None))
        normal = (eye + t[..., None] * dirs) / radius
        shade = np.clip(0.35 + 0.65 * normal @ np.array([0.3, 0.4, 0.87]), 0, 1)
        colour = np.stack([0.9 * shade, 0.3 * shade + 0.2 * (normal[..., 2] > 0), 0.2 * shade], axis=-1)
        rgba = np.concatenate([np.where(hit[..., None], colour, 0.0), hit[..., None].astype(float)], axis=-1)
        iio.imwrite(folder / f"frame_{i:03d}.png", (rgba * 255 + 0.5).astype(np.uint8))
        frames.append({"file_path": f"frame_{i:03d}.png", "transform_matrix": c2w.tolist()})
    meta = {"fl_x": focal, "fl_y": focal, "cx": width / 2, "cy": height / 2, "w": width, "h": height}
    meta.update({"aabb": [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]], "frames": frames})
    (folder / "transforms.json").write_text(json.dumps(meta))
    return folder
