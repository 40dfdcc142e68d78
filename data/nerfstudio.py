"""nerfstudio / instant-ngp scenes: one `transforms.json` in the scene folder.

Intrinsics `fl_x, fl_y, cx, cy, w, h` (or `camera_angle_x`, `camera_angle_y`) and distortion
`k1, k2, p1, p2` are read from the top level and may be overridden per frame. Poses are OpenGL
camera-to-world `transform_matrix`es. The Blender layout (one `transforms.json` with
`camera_angle_x`) is a special case. Optional `near` and `far` (world units) set the ray bounds;
`forward_facing: true` trains in NDC with the near plane at 1 and `aabb` in NDC units (what
`tensorfields colmap` writes for LLFF-like captures). An optional `ply_file_path` (relative to the
file's folder; nerfstudio's `sparse_pc.ply`) gives the SfM points in the file's world frame
(`Scene.points`, see `points.read_points`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .blender import frame_c2w, holdout_splits, image_name, read_frames, read_json, resolve_image
from .cameras import OPENGL_TO_OPENCV, Cameras
from .images import load_images
from .llff import LLFF_AABB
from .points import read_points
from .scene import Scene, SceneError

__all__ = ["estimate_box", "load_nerfstudio", "scene_from_transforms"]

DISTORTION_KEYS = ("k1", "k2", "p1", "p2")
SPLIT_KEYS = {"train": "train_filenames", "val": "val_filenames", "test": "test_filenames"}
BOX_HALF_SIZE = 0.4  # box half-size as a fraction of the median camera distance to its centre
NEAR_FRACTION = 0.05  # near plane as a fraction of that distance


def load_nerfstudio(folder: Path, downsample: float = 1.0) -> Scene:
    """Load `folder/transforms.json`; images with alpha are composited on white, else black.

    Splits come from `train_filenames` / `val_filenames` / `test_filenames` when present, else
    every 8th frame is held out. The box is the file's `aabb` or `estimate_box` of the cameras.
    """
    path = folder / "transforms.json"
    return scene_from_transforms(folder, path, read_json(path), downsample)


def scene_from_transforms(
    folder: Path,
    path: Path,
    meta: dict[str, Any],
    downsample: float = 1.0,
    kind: str = "nerfstudio",
    points: tuple[torch.Tensor, torch.Tensor | None] | None = None,
) -> Scene:
    """The scene a parsed transforms file describes (see `load_nerfstudio`).

    Args:
        folder: where `file_path`s and `ply_file_path` start. path: the file the metadata came
            from (for errors).
        points: the scene's SfM points `[P, 3]` and colours `[P, 3]` uint8 (or None) in the
            frame of the poses; None reads them from `ply_file_path` when the file names one.
    """
    frames = read_frames(path, meta)
    c2w_gl = np.stack([frame_c2w(path, i, frame) for i, frame in enumerate(frames)])
    paths = [resolve_image(folder, frame["file_path"], path) for frame in frames]
    names = [image_name(folder, p) for p in paths]
    splits = _splits(path, meta, frames, names)
    distortion = _distortion(path, meta, frames)
    keypoints = _keypoints(path, frames, downsample)
    aabb = _read_aabb(path, meta["aabb"]) if "aabb" in meta else None
    point_xyz, point_colours = points if points is not None else _points(folder, path, meta)

    stack = load_images(paths, downsample, background=None, size=_declared_size(path, meta, frames))
    width, height = stack.source_size
    intrinsics = [_intrinsics(path, i, meta, f, width, height) for i, f in enumerate(frames)]
    fx, fy, cx, cy = torch.tensor(intrinsics, dtype=torch.float32).unbind(1)
    cameras = Cameras(
        c2w=torch.from_numpy(c2w_gl).float() @ OPENGL_TO_OPENCV,
        fx=fx,
        fy=fy,
        cx=cx,
        cy=cy,
        width=width,
        height=height,
        distortion=distortion,
    ).scaled(1.0 / downsample)
    forward_facing = meta.get("forward_facing") is True
    if aabb is None and forward_facing:
        aabb = torch.tensor(LLFF_AABB)
    if aabb is None:
        aabb = estimate_box(cameras.c2w)
        if not (aabb[1] > aabb[0]).all():
            raise SceneError(path, "cannot estimate a scene box from the poses; add an 'aabb'")
    distance = (cameras.centers - aabb.mean(0)).norm(dim=1).median().item()
    near = _number(path, "top level", "near", meta.get("near", NEAR_FRACTION * distance))
    far = _number(path, "top level", "far", meta.get("far", 2.0 * distance + (aabb[1] - aabb[0]).norm().item()))
    if not 0.0 < near < far:
        raise SceneError(path, f"'near' and 'far' must satisfy 0 < near < far, got {near:g} and {far:g}")
    return Scene(
        images=torch.from_numpy(stack.rgb),
        cameras=cameras,
        aabb=aabb,
        near=0.0 if forward_facing else near,
        far=1.0 if forward_facing else far,
        background=torch.tensor(stack.background),
        splits=splits,
        source=folder,
        kind=kind,
        downsample=downsample,
        ndc=forward_facing,
        ndc_focal=cameras.fx[0].item() if forward_facing else 0.0,
        ndc_near=1.0,
        alpha=None if stack.alpha is None else torch.from_numpy(stack.alpha),
        names=names,
        keypoints=keypoints,
        points=point_xyz,
        point_colours=point_colours,
    )


def estimate_box(c2w: torch.Tensor) -> torch.Tensor:
    """A box around what the cameras look at.

    The centre is the least-squares point nearest to all optical axes (a tiny pull towards the
    cameras' centroid keeps it defined when the axes are parallel); the half-size is
    `BOX_HALF_SIZE` times the median camera distance to it.

    Args:
        c2w: OpenCV camera-to-world matrices, `[N, 4, 4]`.
    Returns:
        `[2, 3]` float32 (min, max).
    """
    origins = c2w[:, :3, 3].double()
    axes = torch.nn.functional.normalize(c2w[:, :3, 2].double(), dim=1)
    # sum_i |(I - d_i d_i^T)(p - o_i)|^2 + eps |p - mean(o)|^2 is minimal where A p = b.
    projectors = torch.eye(3, dtype=torch.float64) - axes[:, :, None] * axes[:, None, :]
    eps = 1e-6 * len(c2w)
    a = projectors.sum(0) + eps * torch.eye(3, dtype=torch.float64)
    b = (projectors @ origins[:, :, None]).sum(0)[:, 0] + eps * origins.mean(0)
    focus = torch.linalg.solve(a, b)
    half = BOX_HALF_SIZE * (origins - focus).norm(dim=1).median()
    return torch.stack([focus - half, focus + half]).float()


def _number(path: Path, where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SceneError(path, f"{where}: '{key}' must be a number, got {value!r}")
    return float(value)


def _declared_size(
    path: Path, meta: dict[str, Any], frames: list[dict[str, Any]]
) -> tuple[int, int] | None:
    """The one (w, h) the file declares (top level or per frame), or None if it declares none."""
    sizes = set()
    for index, frame in enumerate(frames):
        where = f"frame {index}"
        w, h = (frame.get(k, meta.get(k)) for k in ("w", "h"))
        if (w is None) != (h is None):
            raise SceneError(path, f"{where}: 'w' and 'h' must be given together")
        if w is not None:
            sizes.add((int(_number(path, where, "w", w)), int(_number(path, where, "h", h))))
    if len(sizes) > 1:
        raise SceneError(path, f"frames declare different image sizes {sorted(sizes)}")
    return sizes.pop() if sizes else None


def _focal(
    path: Path, index: int, sources: tuple[dict, dict], axis: str, size: int
) -> float | None:
    """`fl_<axis>` or the focal of `camera_angle_<axis>`, the frame's own keys first."""
    where = f"frame {index}"
    for source in sources:
        if f"fl_{axis}" in source:
            focal = _number(path, where, f"fl_{axis}", source[f"fl_{axis}"])
        elif f"camera_angle_{axis}" in source:
            angle = _number(path, where, f"camera_angle_{axis}", source[f"camera_angle_{axis}"])
            focal = 0.5 * size / math.tan(0.5 * angle) if 0.0 < angle < math.pi else -1.0
        else:
            continue
        if focal <= 0.0:
            raise SceneError(path, f"{where}: focal length along {axis} must be positive")
        return focal
    return None


def _intrinsics(
    path: Path, index: int, meta: dict[str, Any], frame: dict[str, Any], width: int, height: int
) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of one frame in pixels of the full-size image."""
    sources = (frame, meta)
    fx = _focal(path, index, sources, "x", width)
    if fx is None:
        raise SceneError(path, f"frame {index}: no focal length ('fl_x' or 'camera_angle_x')")
    fy = _focal(path, index, sources, "y", height)
    merged = {**meta, **frame}
    where = f"frame {index}"
    cx = _number(path, where, "cx", merged.get("cx", width / 2.0))
    cy = _number(path, where, "cy", merged.get("cy", height / 2.0))
    return fx, fx if fy is None else fy, cx, cy


def _distortion(
    path: Path, meta: dict[str, Any], frames: list[dict[str, Any]]
) -> torch.Tensor | None:
    """`[N, 4]` (k1, k2, p1, p2) per frame, or None when the file gives no coefficients."""
    if not any(k in source for source in (meta, *frames) for k in DISTORTION_KEYS):
        return None
    rows = [
        [_number(path, f"frame {i}", k, frame.get(k, meta.get(k, 0.0))) for k in DISTORTION_KEYS]
        for i, frame in enumerate(frames)
    ]
    return torch.tensor(rows, dtype=torch.float32)


def _keypoints(path: Path, frames: list[dict[str, Any]], downsample: float) -> torch.Tensor | None:
    """The frames' SfM keypoints (`Scene.keypoints`, `[K, 4]`; a frame's "keypoints" are rows of
    x, y, distance in the pixels of its image file), or None when no frame has any."""
    if not any("keypoints" in frame for frame in frames):
        return None
    rows = []
    for index, frame in enumerate(frames):
        try:
            points = torch.tensor(frame.get("keypoints", []), dtype=torch.float32).reshape(-1, 3)
        except (TypeError, ValueError, RuntimeError):
            points = torch.full((1, 3), float("nan"))
        if not (torch.isfinite(points).all() and (points[:, 2] > 0).all()):
            raise SceneError(path, f"frame {index}: 'keypoints' must be rows of [x, y, distance > 0]")
        rows.append(torch.cat([torch.full((len(points), 1), float(index)), points[:, :2] / downsample, points[:, 2:]], 1))
    return torch.cat(rows)


def _points(folder: Path, path: Path, meta: dict[str, Any]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The points of the PLY file `ply_file_path` names (relative to `folder`), or (None, None)
    when it names none. The loader keeps the file's world frame, so they need no transform."""
    if "ply_file_path" not in meta:
        return None, None
    name = meta["ply_file_path"]
    if not isinstance(name, str) or not name:
        raise SceneError(path, f"'ply_file_path' must be the name of a PLY file, got {name!r}")
    return read_points(folder / name)


def _read_aabb(path: Path, value: Any) -> torch.Tensor:
    try:
        aabb = torch.tensor(value, dtype=torch.float32)
    except (TypeError, ValueError):
        aabb = torch.zeros(0)
    if aabb.shape != (2, 3) or not torch.isfinite(aabb).all() or not (aabb[1] > aabb[0]).all():
        raise SceneError(path, f"'aabb' must be [[min x, y, z], [max x, y, z]], got {value!r}")
    return aabb


def _splits(
    path: Path, meta: dict[str, Any], frames: list[dict[str, Any]], names: list[str]
) -> dict[str, torch.Tensor]:
    """nerfstudio's `<split>_filenames` lists as index tensors, else the every-8th hold-out."""
    if not any(key in meta for key in SPLIT_KEYS.values()):
        return holdout_splits(len(frames))
    lookup = {}
    for index, (frame, name) in enumerate(zip(frames, names)):
        lookup[os.path.normpath(frame["file_path"])] = index
        lookup[os.path.normpath(name)] = index
    splits = {}
    for split, key in SPLIT_KEYS.items():
        if key not in meta:
            continue
        listed = meta[key]
        if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
            raise SceneError(path, f"'{key}' must be a list of file names")
        missing = [n for n in listed if os.path.normpath(n) not in lookup]
        if missing:
            raise SceneError(path, f"'{key}' names {missing[0]!r}, which is no frame's file_path")
        splits[split] = torch.tensor([lookup[os.path.normpath(n)] for n in listed]).long()
    return splits
