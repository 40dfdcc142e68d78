"""NeRF-Synthetic (Blender) scenes: `transforms_{train,val,test}.json` next to the images.

The JSON helpers here (frames, poses, image paths, hold-out splits) are shared with the
nerfstudio loader, whose `transforms.json` is the same format with more optional keys.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .cameras import OPENGL_TO_OPENCV, Cameras, rotation_problem
from .images import IMAGE_SUFFIXES, load_images
from .scene import Scene, SceneError

__all__ = [
    "HOLDOUT_EVERY",
    "frame_c2w",
    "holdout_splits",
    "image_name",
    "load_blender",
    "read_frames",
    "read_json",
    "resolve_image",
]

SPLITS = ("train", "val", "test")
HOLDOUT_EVERY = 8
BLENDER_AABB = ((-1.5, -1.5, -1.5), (1.5, 1.5, 1.5))
BLENDER_NEAR, BLENDER_FAR = 2.0, 6.0


def read_json(path: Path) -> dict[str, Any]:
    """Parse a JSON object file, raising `SceneError` on any problem."""
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SceneError(path, f"invalid JSON: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SceneError(path, f"cannot read file: {error}") from None
    if not isinstance(meta, dict):
        raise SceneError(path, f"expected a JSON object, got {type(meta).__name__}")
    return meta


def read_frames(path: Path, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-empty list of frame objects of a transforms file, each with a `file_path`."""
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise SceneError(path, "names no frames ('frames' is missing or empty)")
    for index, frame in enumerate(frames):
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            raise SceneError(path, f"frame {index} has no 'file_path'")
    return frames


def frame_c2w(path: Path, index: int, frame: dict[str, Any]) -> np.ndarray:
    """A frame's `transform_matrix` (OpenGL camera-to-world), validated, `[4, 4]` float64; a
    uniform scale in its rotation block (some exporters write one) is divided out."""
    try:
        matrix = np.asarray(frame.get("transform_matrix"), dtype=np.float64)
    except (TypeError, ValueError):
        matrix = np.zeros(0)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        where = f"frame {index} ({frame['file_path']})"
        raise SceneError(path, f"{where}: transform_matrix must be 4x4 finite numbers")
    problem = rotation_problem(matrix[:3, :3])
    if problem:
        raise SceneError(path, f"frame {index} ({frame['file_path']}): transform_matrix is not a camera pose: {problem}")
    matrix[:3, :3] /= np.cbrt(np.linalg.det(matrix[:3, :3]))
    return matrix


def resolve_image(folder: Path, file_path: str, source: Path) -> Path:
    """The image file a frame names, relative to `folder`; the extension may be left out.

    Args:
        source: the transforms file that names it (for the error message).
    """
    path = folder / file_path
    suffixes = IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES)
    candidates = [path] + [path.with_name(path.name + s) for s in suffixes]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise SceneError(path, f"image file not found (named in {source.name})")


def image_name(folder: Path, path: Path) -> str:
    """How a scene names an image: its path relative to the scene folder, with / separators."""
    return Path(os.path.relpath(path, folder)).as_posix()


def holdout_splits(count: int, every: int = HOLDOUT_EVERY) -> dict[str, torch.Tensor]:
    """Every `every`-th view (0, 8, 16, ...) is held out as "val" and "test"; the rest train."""
    indices = torch.arange(count)
    held = indices % every == 0
    return {"train": indices[~held], "val": indices[held], "test": indices[held]}


def load_blender(folder: Path, downsample: float = 1.0) -> Scene:
    """Load a NeRF-Synthetic scene.

    Each existing `transforms_{train,val,test}.json` becomes a split; with only a train file,
    every 8th view is held out. RGBA images are composited on white and alpha is kept.
    """
    files = {s: folder / f"transforms_{s}.json" for s in SPLITS}
    files = {s: f for s, f in files.items() if f.is_file()}
    if "train" not in files:
        raise SceneError(folder / "transforms_train.json", "file not found")
    paths: list[Path] = []
    c2w: list[np.ndarray] = []
    angles: list[float] = []
    splits: dict[str, torch.Tensor] = {}
    for split, json_path in files.items():
        meta = read_json(json_path)
        angle = _camera_angle_x(json_path, meta)
        start = len(paths)
        for index, frame in enumerate(read_frames(json_path, meta)):
            c2w.append(frame_c2w(json_path, index, frame))
            paths.append(resolve_image(folder, frame["file_path"], json_path))
            angles.append(angle)
        splits[split] = torch.arange(start, len(paths))
    if len(files) == 1:
        splits = holdout_splits(len(paths))

    stack = load_images(paths, downsample, background=(1.0, 1.0, 1.0))
    width, height = stack.source_size
    focal = 0.5 * width / torch.tan(0.5 * torch.tensor(angles, dtype=torch.float64))
    cameras = Cameras(
        c2w=torch.from_numpy(np.stack(c2w)).float() @ OPENGL_TO_OPENCV,
        fx=focal.float(),
        fy=focal.float(),
        cx=torch.tensor(width / 2.0),
        cy=torch.tensor(height / 2.0),
        width=width,
        height=height,
    ).scaled(1.0 / downsample)
    return Scene(
        images=torch.from_numpy(stack.rgb),
        cameras=cameras,
        aabb=torch.tensor(BLENDER_AABB),
        near=BLENDER_NEAR,
        far=BLENDER_FAR,
        background=torch.tensor(stack.background),
        splits=splits,
        source=folder,
        kind="blender",
        downsample=downsample,
        alpha=None if stack.alpha is None else torch.from_numpy(stack.alpha),
        names=[image_name(folder, p) for p in paths],
    )


def _camera_angle_x(path: Path, meta: dict[str, Any]) -> float:
    angle = meta.get("camera_angle_x")
    if not isinstance(angle, (int, float)) or not 0.0 < angle < math.pi:
        raise SceneError(path, f"camera_angle_x must be a number in (0, pi), got {angle!r}")
    return float(angle)
