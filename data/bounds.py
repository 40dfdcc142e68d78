"""Scene box, near/far and orientation of a structure-from-motion world, from its cameras and points.

SfM worlds have an arbitrary position, rotation and scale. `normalize_world` maps one to what the
trainer expects: object captures are turned so the cameras' mean "up" is +z, centred on the
robust box of the points (1st-99th percentiles per axis, plus a margin) and scaled so that box fits
in [-1.5, 1.5]^3, like a Blender scene. Forward-facing captures (LLFF-like) are recentred on
their average camera and scaled so the nearest points are at depth 1 / 0.75, as TensoRF does for
LLFF, and train in NDC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .cameras import OPENGL_TO_OPENCV
from .llff import LLFF_AABB, NEAR_SCALE, average_pose

__all__ = ["WorldBounds", "describe_bounds", "is_forward_facing", "normalize_world", "point_depths"]

BOX_HALF_SIZE = 1.5  # the robust point box is scaled to fit in [-1.5, 1.5]^3
BOX_MARGIN = 0.1  # grow the percentile box by this fraction of its size on each side
PERCENTILES = (1.0, 99.0)
FORWARD_MAX_ANGLE = 60.0  # degrees between any viewing direction and their mean
FORWARD_MAX_SPREAD = 30.0  # degrees between any camera and their mean, seen from the scene
MAX_DEPTH_SAMPLES = 20000  # points used for the near/far percentiles
NEAR_MARGIN = 0.8  # object captures: near is this times the 1st percentile of point depths


@dataclass
class WorldBounds:
    """A normalized world.

    Attributes:
        c2w: OpenCV camera-to-world matrices in the normalized world, `[N, 4, 4]` float64.
        world_from_sfm: the similarity applied to the SfM world, `[4, 4]` (x' = s R x + t).
        aabb: the scene box, `[2, 3]` (world units; NDC units when `forward_facing`).
        near, far: ray distance bounds in world units (robust point depths).
        forward_facing: the capture looks one way; train in NDC with the near plane at 1.
    """

    c2w: np.ndarray
    world_from_sfm: np.ndarray
    aabb: np.ndarray
    near: float
    far: float
    forward_facing: bool


def is_forward_facing(c2w: np.ndarray, points: np.ndarray) -> bool:
    """All viewing directions within `FORWARD_MAX_ANGLE` of their mean, and the cameras seen from
    the scene (the median point) all within `FORWARD_MAX_SPREAD` of their mean direction: the
    cameras look one way from a patch in front of the scene rather than around it (as in LLFF).

    Args:
        c2w: OpenCV camera-to-world matrices, `[N, 4, 4]`. points: scene points, `[P, 3]`.
    """
    return _largest_angle(c2w[:, :3, 2]) <= FORWARD_MAX_ANGLE and (
        _largest_angle(c2w[:, :3, 3] - np.median(points, axis=0)) <= FORWARD_MAX_SPREAD
    )


def _largest_angle(vectors: np.ndarray) -> float:
    """The largest angle in degrees between one of `vectors` `[N, 3]` and their mean direction."""
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    mean = units.mean(0) / np.linalg.norm(units.mean(0))
    return math.degrees(math.acos(float(np.clip((units @ mean).min(), -1.0, 1.0))))


def point_depths(c2w: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Depths of points in front of each camera (OpenCV z), flattened over cameras.

    Args:
        c2w: `[N, 4, 4]` OpenCV camera-to-world. points: `[P, 3]` (subsampled to at most
            `MAX_DEPTH_SAMPLES`, deterministically).
    Returns:
        `[K]` positive depths.
    """
    if len(points) > MAX_DEPTH_SAMPLES:
        points = points[np.random.default_rng(0).choice(len(points), MAX_DEPTH_SAMPLES, replace=False)]
    depths = (points[None] - c2w[:, None, :3, 3]) @ c2w[:, :3, 2][:, :, None]
    depths = depths.ravel()
    return depths[depths > 0]


def normalize_world(c2w: np.ndarray, points: np.ndarray) -> WorldBounds:
    """Normalize an SfM world (see the module docstring).

    Args:
        c2w: OpenCV camera-to-world matrices in the SfM world, `[N, 4, 4]`.
        points: the SfM points, `[P, 3]` (P >= 1).
    """
    if is_forward_facing(c2w, points):
        return _forward_facing(c2w, points)
    return _object_capture(c2w, points)


def _similarity(rotation: np.ndarray, scale: float, translation: np.ndarray) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = scale * rotation
    matrix[:3, 3] = translation
    return matrix


def _apply(world_from_sfm: np.ndarray, c2w: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cameras and points moved by a similarity; camera rotations stay orthonormal."""
    scale = np.cbrt(np.linalg.det(world_from_sfm[:3, :3]))
    moved = world_from_sfm @ c2w
    moved[:, :3, :3] /= scale
    return moved, points @ world_from_sfm[:3, :3].T + world_from_sfm[:3, 3]


def _rotation_to_z(up: np.ndarray) -> np.ndarray:
    """The rotation taking the unit vector `up` to +z (Rodrigues; a half turn about x if -z)."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(up, z)
    sin, cos = np.linalg.norm(axis), float(up @ z)
    if sin < 1e-9:
        return np.eye(3) if cos > 0 else np.diag([1.0, -1.0, -1.0])
    k = axis / sin
    skew = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + sin * skew + (1.0 - cos) * skew @ skew


def _object_capture(c2w: np.ndarray, points: np.ndarray) -> WorldBounds:
    up = -c2w[:, :3, 1].mean(0)
    rotation = _rotation_to_z(up / np.linalg.norm(up))
    low, high = np.percentile(points @ rotation.T, PERCENTILES, axis=0)
    margin = BOX_MARGIN * (high - low)
    low, high = low - margin, high + margin
    scale = BOX_HALF_SIZE / (0.5 * (high - low).max())
    world_from_sfm = _similarity(rotation, scale, -scale * 0.5 * (low + high))
    moved, moved_points = _apply(world_from_sfm, c2w, points)
    aabb = scale * (np.stack([low, high]) - 0.5 * (low + high))
    depths = point_depths(moved, moved_points)
    corners = np.stack(np.meshgrid(*aabb.T, indexing="ij"), -1).reshape(-1, 3)
    far = np.linalg.norm(moved[:, None, :3, 3] - corners[None], axis=-1).max()
    near = NEAR_MARGIN * np.percentile(depths, PERCENTILES[0])
    return WorldBounds(moved, world_from_sfm, aabb, float(near), float(far), False)


def _forward_facing(c2w: np.ndarray, points: np.ndarray) -> WorldBounds:
    gl = c2w @ OPENGL_TO_OPENCV.double().numpy()
    average = np.eye(4)
    average[:3] = average_pose(gl[:, :3])
    centred = np.linalg.inv(average)
    moved, moved_points = _apply(centred, c2w, points)
    near, far = np.percentile(point_depths(moved, moved_points), PERCENTILES)
    scale = 1.0 / (near * NEAR_SCALE)
    world_from_sfm = np.diag([scale, scale, scale, 1.0]) @ centred
    moved, _ = _apply(world_from_sfm, c2w, points)
    return WorldBounds(moved, world_from_sfm, np.array(LLFF_AABB), float(near * scale), float(far * scale), True)


def describe_bounds(bounds: WorldBounds) -> str:
    """One log line about the chosen normalization."""
    scale = np.cbrt(np.linalg.det(bounds.world_from_sfm[:3, :3]))
    low, high = (", ".join(f"{v:.2f}" for v in corner) for corner in bounds.aabb)
    if bounds.forward_facing:
        return (
            f"forward-facing capture (viewing directions within {FORWARD_MAX_ANGLE:g} degrees, cameras within "
            f"{FORWARD_MAX_SPREAD:g} degrees seen from the scene): "
            f"NDC like LLFF; recentred on the average camera, scaled x{scale:.3g} so the 1st-percentile "
            f"point depth is {bounds.near:.3g} (99th: {bounds.far:.3g}); NDC box [{low}]..[{high}]"
        )
    return (
        f"object capture: box from the 1st-99th percentiles of the SfM points (+10% margin), "
        f"up along +z, scaled x{scale:.3g} to [{low}]..[{high}]; near {bounds.near:.3g} far {bounds.far:.3g}"
    )
