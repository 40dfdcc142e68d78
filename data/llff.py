"""LLFF forward-facing scenes: `poses_bounds.npy` with `images/`, `images_4/`, `images_8/`, ...

Poses are processed exactly as TensoRF's `dataLoader/llff.py` does (axis swap, recentring on the
average pose, rescaling so the nearest depth is at 1/0.75), then converted to OpenCV
camera-to-world matrices. Rays of these scenes are meant to be mapped to NDC with `ndc_focal`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch

from .blender import holdout_splits, image_name
from .cameras import OPENGL_TO_OPENCV, Cameras, rotation_problem
from .images import list_images, load_images
from .scene import Scene, SceneError

__all__ = ["average_pose", "center_poses", "load_llff"]

log = logging.getLogger(__name__)

LLFF_AABB = ((-1.5, -1.67, -1.0), (1.5, 1.67, 1.0))
NEAR_SCALE = 0.75  # after rescaling the nearest depth is at 1 / 0.75
_FOLDER = re.compile(r"images(?:_(\d+))?")


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def average_pose(poses: np.ndarray) -> np.ndarray:
    """The average camera of `poses` `[N, 3, 4]` (columns right, up, back, centre), `[3, 4]`."""
    center = poses[..., 3].mean(0)
    z = _normalize(poses[..., 2].mean(0))
    x = _normalize(np.cross(poses[..., 1].mean(0), z))
    y = np.cross(z, x)
    return np.stack([x, y, z, center], 1)


def center_poses(poses: np.ndarray) -> np.ndarray:
    """Express `poses` `[N, 3, 4]` in the frame of their average pose; returns `[N, 4, 4]`."""
    homogeneous = np.tile(np.eye(4), (len(poses), 1, 1))
    homogeneous[:, :3] = poses
    average = np.eye(4)
    average[:3] = average_pose(poses)
    return np.linalg.inv(average) @ homogeneous


def load_llff(folder: Path, downsample: float = 1.0) -> Scene:
    """Load an LLFF scene at 1 / `downsample` of the resolution in `poses_bounds.npy`.

    Uses `images_<downsample>/` when it exists, else resizes the coarsest folder that is still at
    least as fine; when every folder is coarser it loads the finest one as is (no upsampling) and
    records the factor it got. Every 8th image (0, 8, 16, ...) is held out as val and test.
    """
    poses_path = folder / "poses_bounds.npy"
    poses_bounds = _read_poses_bounds(poses_path)
    poses = poses_bounds[:, :15].reshape(-1, 3, 5)
    height, width, focal = poses[0, :, 4]
    factor, paths, resize = _image_source(folder, poses_path, len(poses), downsample)

    stack = load_images(paths, resize, background=(0.0, 0.0, 0.0))
    h, w = stack.rgb.shape[1:3]
    fx, fy = focal * w / width, focal * h / height

    # "down right back" -> "right up back" (OpenGL), as in LLFF/NeRF/TensoRF.
    poses = np.concatenate([poses[..., 1:2], -poses[..., :1], poses[..., 2:4]], -1)
    c2w = center_poses(poses)
    c2w[:, :3, 3] /= poses_bounds[:, 15:].min() * NEAR_SCALE
    cameras = Cameras(
        c2w=torch.from_numpy(c2w).float() @ OPENGL_TO_OPENCV,
        fx=torch.tensor(fx, dtype=torch.float32),
        fy=torch.tensor(fy, dtype=torch.float32),
        cx=torch.tensor(w / 2.0),
        cy=torch.tensor(h / 2.0),
        width=w,
        height=h,
    )
    return Scene(
        images=torch.from_numpy(stack.rgb),
        cameras=cameras,
        aabb=torch.tensor(LLFF_AABB),
        near=0.0,
        far=1.0,
        background=torch.tensor(stack.background),
        splits=holdout_splits(len(paths)),
        source=folder,
        kind="llff",
        downsample=factor,
        ndc=True,
        ndc_focal=float(fx),
        ndc_near=1.0,
        alpha=None if stack.alpha is None else torch.from_numpy(stack.alpha),
        names=[image_name(folder, p) for p in paths],
    )


def _read_poses_bounds(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise SceneError(path, f"cannot read poses: {' '.join(str(error).split())}") from None
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != 17:
        raise SceneError(path, f"expected an [N, 17] array, got shape {list(array.shape)}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all() or (array[:, [4, 9, 14, 15, 16]] <= 0).any():
        raise SceneError(path, "poses must be finite with positive height, width, focal, bounds")
    for index, pose in enumerate(array[:, :15].reshape(-1, 3, 5)):
        problem = rotation_problem(pose[:, :3])
        if problem:
            raise SceneError(path, f"pose {index} is not a camera pose: {problem}")
    return array


def _image_folders(folder: Path) -> dict[int, Path]:
    """Image folders by their downsampling factor: `images/` is 1, `images_K/` is K."""
    found = {}
    for child in folder.iterdir():
        match = _FOLDER.fullmatch(child.name)
        if match and child.is_dir() and list_images(child):
            found[int(match.group(1) or 1)] = child
    return found


def _image_source(
    folder: Path, poses_path: Path, count: int, downsample: float
) -> tuple[float, list[Path], float]:
    """Pick the image folder for `downsample`.

    Returns:
        the downsampling factor the scene gets, the image files, and the resize factor to apply.
    """
    folders = _image_folders(folder)
    if not folders:
        raise SceneError(folder, "LLFF scene has no images/ or images_K/ folder with images")
    finer = [k for k in folders if k <= downsample]
    if finer:
        source = max(finer)
        factor, resize = downsample, downsample / source
    else:
        source = min(folders)
        factor, resize = float(source), 1.0
        name = folders[source].name
        log.warning("%s: no images as fine as downsample %g; using %s/", folder, downsample, name)
    paths = list_images(folders[source])
    if len(paths) != count:
        raise SceneError(
            poses_path, f"{count} poses but {len(paths)} images in {folders[source].name}/"
        )
    return factor, paths, resize
