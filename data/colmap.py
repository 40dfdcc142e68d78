"""COLMAP projects: `images/` with a model in `sparse/0` (binary or text), read with pycolmap.

A model with lens distortion (SIMPLE_RADIAL, OPENCV, ...) is undistorted once with pycolmap into
`undistorted/` next to it (pinhole cameras, undistorted images; reused on later loads), since
ray generation assumes pinhole cameras. The world is normalized from the model's points (see
`bounds.normalize_world`) and the scene loads like a `transforms.json` scene, with the model's
3D points moved into that world as `Scene.points` (see `sfm_points`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pycolmap
import torch

from .bounds import WorldBounds, describe_bounds, normalize_world
from .cameras import OPENGL_TO_OPENCV
from .nerfstudio import scene_from_transforms
from .scene import Scene, SceneError

__all__ = ["colmap_transforms", "load_colmap", "read_model", "sfm_points", "undistort"]

log = logging.getLogger(__name__)

PINHOLE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE")
UNDISTORTED = "undistorted"
_OPENGL_TO_OPENCV = OPENGL_TO_OPENCV.double().numpy()


def read_model(path: Path) -> pycolmap.Reconstruction:
    """A COLMAP model folder (`cameras`, `images`, `points3D` as .bin or .txt) with registered images."""
    try:
        reconstruction = pycolmap.Reconstruction(path)
    except (RuntimeError, ValueError) as error:
        raise SceneError(path, f"cannot read COLMAP model: {' '.join(str(error).split())}") from None
    if reconstruction.num_reg_images() == 0:
        raise SceneError(path, "COLMAP model has no registered images")
    if reconstruction.num_points3D() == 0:
        raise SceneError(path, "COLMAP model has no 3D points (needed for the scene box)")
    return reconstruction


def undistort(model: Path, image_dir: Path, out: Path, max_size: int = -1) -> Path:
    """Undistort the registered images of `model` with pycolmap.

    Writes `out/images/` (undistorted copies, long side at most `max_size` when > 0) and their
    pinhole model in `out/sparse/`, which is returned.
    """
    options = pycolmap.UndistortCameraOptions()
    options.max_image_size = max_size
    try:
        pycolmap.undistort_images(out, model, image_dir, undistort_options=options)
    except (RuntimeError, ValueError) as error:
        raise SceneError(model, f"undistortion failed: {' '.join(str(error).split())}") from None
    return out / "sparse"


def colmap_transforms(reconstruction: pycolmap.Reconstruction, image_prefix: str) -> tuple[dict[str, Any], WorldBounds]:
    """A nerfstudio `transforms.json` dictionary of a pinhole model, in the normalized world.

    Args:
        reconstruction: a model whose cameras are all PINHOLE or SIMPLE_PINHOLE.
        image_prefix: folder of the images relative to the transforms file, e.g. "images".
    Returns:
        the dictionary (frames sorted by image name, each with the "keypoints" it observes, see
        `_keypoints`; `aabb`, `near`, `far`, `forward_facing`) and the normalization that was chosen.
    """
    images = sorted((reconstruction.images[i] for i in reconstruction.reg_image_ids()), key=lambda image: image.name)
    c2w = np.stack([_camera_to_world(image) for image in images])
    points = np.array([point.xyz for point in reconstruction.points3D.values()])
    bounds = normalize_world(c2w, points)
    first = _intrinsics(images[0].camera)
    frames = []
    for image, pose in zip(images, bounds.c2w):
        own = _intrinsics(image.camera)
        frame = {"file_path": f"{image_prefix}/{image.name}", "transform_matrix": (pose @ _OPENGL_TO_OPENCV).tolist()}
        keypoints = _keypoints(reconstruction, image, pose, bounds.world_from_sfm)
        frames.append({**frame, **({} if own == first else own), "keypoints": keypoints})
    meta = {
        **first,
        "aabb": bounds.aabb.tolist(),
        "near": bounds.near,
        "far": bounds.far,
        "forward_facing": bounds.forward_facing,
        "frames": frames,
    }
    return meta, bounds


def load_colmap(folder: Path, downsample: float = 1.0) -> Scene:
    """Load a COLMAP project (`images/` + `sparse/0`), undistorting it first when needed.

    Every 8th image (by name) is held out as val and test.
    """
    model = folder / "sparse" / "0"
    image_dir = folder / "images"
    if not image_dir.is_dir():
        raise SceneError(folder, "COLMAP project has sparse/0 but no images/ folder")
    reconstruction = read_model(model)
    _check_images(reconstruction, image_dir)
    prefix = "images"
    if any(camera.model_name not in PINHOLE_MODELS for camera in reconstruction.cameras.values()):
        undistorted = folder / UNDISTORTED
        if not (undistorted / "sparse").is_dir():
            log.info("undistorting %d images into %s (once)", reconstruction.num_reg_images(), undistorted)
            undistort(model, image_dir, undistorted)
        reconstruction = read_model(undistorted / "sparse")
        prefix = f"{UNDISTORTED}/images"
    meta, bounds = colmap_transforms(reconstruction, prefix)
    log.info("%s: %s", folder, describe_bounds(bounds))
    points, colours = sfm_points(reconstruction, bounds.world_from_sfm)
    return scene_from_transforms(
        folder, model, meta, downsample, kind="colmap", points=(torch.from_numpy(points), torch.from_numpy(colours))
    )


def sfm_points(reconstruction: pycolmap.Reconstruction, world_from_sfm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's 3D points (by id) in the normalized world, as `colmap_transforms` moves the
    cameras (`world_from_sfm [4, 4]`, x' = s R x + t).

    Returns:
        `[P, 3]` float32 positions and `[P, 3]` uint8 RGB colours.
    """
    ids = sorted(reconstruction.points3D)
    if not ids:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
    xyz = np.stack([reconstruction.points3D[i].xyz for i in ids])
    colours = np.stack([reconstruction.points3D[i].color for i in ids]).astype(np.uint8)
    moved = xyz @ world_from_sfm[:3, :3].T + world_from_sfm[:3, 3]
    return moved.astype(np.float32), colours


def _keypoints(reconstruction: pycolmap.Reconstruction, image: pycolmap.Image, c2w: np.ndarray, world_from_sfm: np.ndarray) -> list[list[float]]:
    """The points `image` observes as rows of (x, y, distance): their projection by its pinhole
    camera (pixel-centre coordinates) and their distance from its centre in the normalized world
    (`c2w [4, 4]` OpenCV, `world_from_sfm [4, 4]`), for those in front of it and inside the image."""
    ids = [point.point3D_id for point in image.points2D if point.has_point3D()]
    if not ids:
        return []
    points = np.stack([reconstruction.points3D[i].xyz for i in ids]) @ world_from_sfm[:3, :3].T + world_from_sfm[:3, 3]
    relative = points - c2w[:3, 3]
    local = relative @ c2w[:3, :3]  # camera coordinates (OpenCV: z forward)
    camera = _intrinsics(image.camera)
    z = np.maximum(local[:, 2], 1e-9)
    x = camera["fl_x"] * local[:, 0] / z + camera["cx"]
    y = camera["fl_y"] * local[:, 1] / z + camera["cy"]
    inside = (local[:, 2] > 0) & (x >= 0) & (x < camera["w"]) & (y >= 0) & (y < camera["h"])
    rows = np.stack([x, y, np.linalg.norm(relative, axis=1)], 1)[inside]
    return np.round(rows, 4).tolist()


def _camera_to_world(image: pycolmap.Image) -> np.ndarray:
    """OpenCV camera-to-world of a registered image, `[4, 4]`."""
    w2c = np.eye(4)
    w2c[:3] = image.cam_from_world().matrix()
    return np.linalg.inv(w2c)


def _intrinsics(camera: pycolmap.Camera) -> dict[str, float | int]:
    return {
        "fl_x": camera.focal_length_x,
        "fl_y": camera.focal_length_y,
        "cx": camera.principal_point_x,
        "cy": camera.principal_point_y,
        "w": camera.width,
        "h": camera.height,
    }


def _check_images(reconstruction: pycolmap.Reconstruction, image_dir: Path) -> None:
    for image_id in reconstruction.reg_image_ids():
        name = reconstruction.images[image_id].name
        if not (image_dir / name).is_file():
            raise SceneError(image_dir / name, "image file not found (named in the COLMAP model)")
