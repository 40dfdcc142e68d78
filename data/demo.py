"""The embedded demo scene: a few coloured meshes rendered with Open3D ray casting.

`build_demo_scene(folder, seed)` writes a nerfstudio-style scene that `load_scene` reads: RGBA
PNGs with a transparent background in `images/`, `transforms.json` (OpenGL camera-to-world
poses, pixel intrinsics, disjoint `train/val/test_filenames`, the scene `aabb`) and `mesh.ply`,
the ground-truth mesh (all parts merged, with vertex colours) for mesh metrics.

The parts: a checkered box, a striped sphere, a mottled torus, a slim banded pole and a U-shaped
block (concave). Their colours are vertex colours from procedural patterns; a pixel's colour is
the interpolated vertex colour under Lambert shading from a fixed light with an ambient term and
cast shadows, so a surface point looks the same from every camera. Each pixel averages
`supersample`^2 rays, as a camera's pixel averages light. The seed picks the colours, the
patterns, the parts' orientations and where the cameras sit.

With `room=True` the parts stand in a room (`demo_room`): an inward-facing box of half-size
`ROOM_HALF_SIZE` (floor, four walls, ceiling) with procedural textures, far behind the cameras, so
every pixel sees something: the images are opaque RGB photos of an unbounded 360-degree scene (the
benchmark for scene contraction). Only the parts cast shadows (onto each other and onto the room),
the room is lit more by its ambient term, the field of view is wider (the parts' bounding sphere
spans `ROOM_FILL` of the image), and `transforms.json` gives a `far` that reaches the room's
corners. `mesh.ply` and the `aabb` stay those of the parts: the foreground's ground truth.

Open3D is imported when a scene is built, not when `data` is imported.
"""

from __future__ import annotations

import colorsys
import json
import math
import os
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np

from .scene import SceneError

__all__ = ["build_demo_scene", "demo_mesh", "demo_poses", "demo_room", "DEMO_VERSION"]

#: bump when the scene changes, so that existing demo folders are rebuilt
DEMO_VERSION = 1
STAMP_KEY = "tensorfields_demo"
MESH_NAME = "mesh.ply"
CAMERA_DISTANCE = 4.0
ELEVATIONS_DEG = (-25.0, 80.0)  # cameras from a little below the parts to nearly overhead
LIGHT = np.array([0.45, -0.35, 0.82]) / np.linalg.norm([0.45, -0.35, 0.82])
AMBIENT, DIFFUSE = 0.3, 0.7
BOX_MARGIN = 0.05  # world units between the parts' bounds and the scene box
FRAME_MARGIN = 1.08  # the parts' bounding sphere fills the image up to this factor
ROOM_HALF_SIZE = 10.0  # the room is the box [-10, 10]^3: its walls are 6-14 units behind the cameras
ROOM_CELLS = 160  # grid cells along each edge of a room face (0.125 world units: the texture's grain)
ROOM_FILL = 0.65  # with the room, the parts' bounding sphere spans this fraction of the image width
ROOM_AMBIENT, ROOM_DIFFUSE = 0.55, 0.45  # the room's faces turned away from the light stay readable


def build_demo_scene(
    folder: str | Path,
    seed: int = 0,
    size: int = 100,
    views: tuple[int, int, int] = (60, 10, 10),
    supersample: int = 2,
    room: bool = False,
) -> Path:
    """Write the demo scene into `folder` (created if needed) and return the folder.

    Idempotent: a folder that already holds a complete scene built with the same version and
    arguments is left alone. `transforms.json` is written last, so a build that stopped half way
    is redone.

    Args:
        seed: picks colours, patterns, part orientations and camera positions.
        size: width and height of the images in pixels.
        views: how many (train, val, test) views; the splits are disjoint.
        supersample: rays per pixel along each axis (antialiasing).
        room: put the parts in a textured room and write opaque RGB images (see the module doc).
    """
    folder = Path(folder)
    stamp = {"version": DEMO_VERSION, "seed": seed, "size": size, "views": list(views), "supersample": supersample}
    if room:
        stamp["room"] = True  # absent without the room, so those folders and files stay as they were
    if size < 8 or supersample < 1 or min(views) < 1:
        raise SceneError(folder, f"the demo scene needs size >= 8, supersample >= 1 and >= 1 view per split, got {stamp}")
    if _is_complete(folder, stamp):
        return folder
    o3d = _open3d()
    mesh = demo_mesh(seed)
    focal = _focal(mesh, size, ROOM_FILL if room else None)
    poses = demo_poses(sum(views), seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "transforms.json").unlink(missing_ok=True)  # no stale poses beside new images
    o3d.io.write_triangle_mesh(str(folder / MESH_NAME), mesh, write_ascii=False)
    caster = _Caster(mesh, demo_room(seed) if room else None)
    names = [f"images/frame_{i:03d}.png" for i in range(len(poses))]
    for name, c2w in zip(names, poses):
        image = caster.render(c2w, focal, size, supersample)
        iio.imwrite(folder / name, image[..., :3] if room else image)  # every pixel sees the room
    meta = _transforms(mesh, poses, names, focal, size, views, stamp)
    if room:
        meta["far"] = round(1.01 * _farthest_corner(poses), 4)
    _write_json(folder / "transforms.json", meta)
    return folder


def demo_mesh(seed: int = 0) -> Any:
    """All parts merged into one Open3D `TriangleMesh` with vertex colours and normals, centred
    on the origin (world z is up)."""
    o3d = _open3d()
    rng = np.random.default_rng(seed)
    mesh = o3d.geometry.TriangleMesh()
    for make in (_checkered_box, _striped_sphere, _mottled_torus, _banded_pole, _u_block):
        mesh += make(o3d, rng)
    mesh.translate(-mesh.get_axis_aligned_bounding_box().get_center())
    mesh.compute_vertex_normals()
    return mesh


def demo_poses(count: int, seed: int = 0) -> np.ndarray:
    """OpenGL camera-to-world matrices `[count, 4, 4]` on a sphere of radius `CAMERA_DISTANCE`
    looking at the origin: a Fibonacci spiral between `ELEVATIONS_DEG`, turned by the seed."""
    turn = np.random.default_rng([seed, 1]).uniform(0.0, 2.0 * math.pi)
    low, high = (math.sin(math.radians(e)) for e in ELEVATIONS_DEG)
    heights = low + (high - low) * (np.arange(count) + 0.5) / count
    azimuths = turn + np.arange(count) * math.pi * (3.0 - math.sqrt(5.0))
    ring = np.sqrt(1.0 - heights**2)
    eyes = CAMERA_DISTANCE * np.stack([ring * np.cos(azimuths), ring * np.sin(azimuths), heights], axis=1)
    return np.stack([_look_at_origin(eye) for eye in eyes])


def _look_at_origin(eye: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world `[4, 4]` (x right, y up, z backwards) at `eye [3]`, world z up."""
    backward = eye / np.linalg.norm(eye)
    right = np.cross([0.0, 0.0, 1.0], backward)
    right /= np.linalg.norm(right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, np.cross(backward, right), backward, eye
    return c2w


def demo_room(seed: int = 0) -> Any:
    """The room around the parts: an Open3D `TriangleMesh` of the inward-facing box
    [-`ROOM_HALF_SIZE`, `ROOM_HALF_SIZE`]^3, each face a grid of `ROOM_CELLS`^2 squares with
    procedural vertex colours and inward vertex normals. Triangles are wound so that their normals
    face inwards too. The faces come in the order of `ROOM_FACES`; the seed jitters the colours and
    the noise."""
    o3d = _open3d()
    rng = np.random.default_rng([seed, 2])  # its own stream: the parts' colours stay as they were
    room = o3d.geometry.TriangleMesh()
    for normal, up, texture in ROOM_FACES.values():
        room += _room_face(o3d, np.array(normal, float), np.array(up, float), texture, rng)
    return room


def _room_face(o3d: Any, normal: np.ndarray, up: np.ndarray, texture: Any, rng: np.random.Generator) -> Any:
    """One face of the room at `-ROOM_HALF_SIZE * normal [3]`, facing inwards along `normal`;
    `texture(s, t, rng)` colours `[V, 3]` the vertices at face coordinates `s` (along
    `up x normal`) and `t` (along `up [3]`), both `[V]` in world units. The face reaches a little
    past the room's edges, so that no ray slips out between two faces."""
    across = np.cross(up, normal)
    steps = np.linspace(-1.0, 1.0, ROOM_CELLS + 1) * (ROOM_HALF_SIZE + 0.01)
    s, t = (grid.ravel() for grid in np.meshgrid(steps, steps, indexing="ij"))
    points = -ROOM_HALF_SIZE * normal + s[:, None] * across + t[:, None] * up
    corner = (np.arange(ROOM_CELLS)[:, None] * (ROOM_CELLS + 1) + np.arange(ROOM_CELLS)[None, :]).ravel()
    a, b, c, d = corner, corner + ROOM_CELLS + 1, corner + ROOM_CELLS + 2, corner + 1  # (i, j) (i+1, j) (i+1, j+1) (i, j+1)
    triangles = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])  # across x up = normal
    face = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(points), o3d.utility.Vector3iVector(triangles))
    face.vertex_colors = o3d.utility.Vector3dVector(np.clip(texture(s, t, rng), 0.0, 1.0))
    face.vertex_normals = o3d.utility.Vector3dVector(np.broadcast_to(normal, points.shape).copy())
    return face


def _focal(mesh: Any, size: int, fill: float | None = None) -> float:
    """Focal length in pixels at which the parts' bounding sphere fills the image (`fill` None)
    or spans the fraction `fill` of its width."""
    radius = np.linalg.norm(np.asarray(mesh.vertices), axis=1).max()
    if fill is not None:
        return fill * 0.5 * size / math.tan(math.asin(radius / CAMERA_DISTANCE))
    half_angle = FRAME_MARGIN * math.asin(radius / CAMERA_DISTANCE)
    return 0.5 * size / math.tan(half_angle)


def _farthest_corner(poses: np.ndarray) -> float:
    """The largest distance from a camera of `poses [N, 4, 4]` to a corner of the room."""
    corners = ROOM_HALF_SIZE * np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    return float(np.linalg.norm(corners[None] - poses[:, None, :3, 3], axis=2).max())


# --- parts ------------------------------------------------------------------------------------
def _checkered_box(o3d: Any, rng: np.random.Generator) -> Any:
    mesh = _box(o3d, (0.55, 0.55, 0.55), subdivisions=5)
    weight = _checker(np.asarray(mesh.vertices), cell=0.1375)
    _paint(mesh, weight, _colour(rng, 0.02), _colour(rng, 0.13, value=0.95, saturation=0.25))
    return _place(mesh, _rotation_z(rng.uniform(0, math.pi / 2)), (-0.5, -0.45, -0.28))


def _striped_sphere(o3d: Any, rng: np.random.Generator) -> Any:
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius=0.33, resolution=60)
    axis = _unit(rng.normal(size=3))
    weight = 0.5 + 0.5 * np.sin(2 * math.pi * np.asarray(mesh.vertices) @ axis / 0.16)
    _paint(mesh, np.clip(2.0 * weight - 0.5, 0, 1), _colour(rng, 0.6), _colour(rng, 0.16, value=0.95))
    return _place(mesh, np.eye(3), (0.52, -0.4, -0.25))


def _mottled_torus(o3d: Any, rng: np.random.Generator) -> Any:
    mesh = o3d.geometry.TriangleMesh.create_torus(torus_radius=0.33, tube_radius=0.1, radial_resolution=90, tubular_resolution=30)
    weight = 0.5 + 0.5 * _waves(np.asarray(mesh.vertices), rng, frequency=14.0)
    _paint(mesh, weight, _colour(rng, 0.33, value=0.55), _colour(rng, 0.45, value=0.9, saturation=0.45))
    tilt = _rotation_x(math.radians(rng.uniform(50, 70))) @ _rotation_z(rng.uniform(0, math.pi))
    return _place(mesh, tilt, (0.0, 0.42, 0.32))


def _banded_pole(o3d: Any, rng: np.random.Generator) -> Any:
    mesh = o3d.geometry.TriangleMesh.create_cylinder(radius=0.035, height=1.3, resolution=20, split=40)
    height = np.asarray(mesh.vertices)[:, 2]
    weight = (np.floor(height / 0.1 + rng.uniform()) % 2).astype(float)
    _paint(mesh, weight, _colour(rng, 0.98), _colour(rng, 0.1, value=0.97, saturation=0.1))
    return _place(mesh, np.eye(3), (0.62, 0.42, -0.05))


def _u_block(o3d: Any, rng: np.random.Generator) -> Any:
    mesh = _box(o3d, (0.62, 0.2, 0.14), subdivisions=4, centre=(0.0, 0.0, -0.18))
    for side in (-1.0, 1.0):
        mesh += _box(o3d, (0.14, 0.2, 0.36), subdivisions=4, centre=(side * 0.24, 0.0, 0.07))
    points = np.asarray(mesh.vertices)
    weight = np.clip(0.5 + 0.8 * points[:, 0] + 0.35 * _waves(points, rng, frequency=22.0), 0, 1)
    _paint(mesh, weight, _colour(rng, 0.75), _colour(rng, 0.08, value=0.9))
    return _place(mesh, _rotation_z(rng.uniform(-0.4, 0.4)), (-0.48, 0.4, -0.42))


def _box(o3d: Any, extent: tuple[float, float, float], subdivisions: int, centre: tuple[float, ...] = (0, 0, 0)) -> Any:
    """A box with its own vertices on each face (so vertex normals are the face normals),
    each face split into 2 x 4^`subdivisions` triangles."""
    box = o3d.geometry.TriangleMesh.create_box(*extent)
    corners = np.asarray(box.vertices)[np.asarray(box.triangles)].reshape(-1, 3)
    corners += np.asarray(centre) - 0.5 * np.asarray(extent)
    mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(corners), o3d.utility.Vector3iVector(np.arange(len(corners)).reshape(-1, 3))
    )
    return mesh.subdivide_midpoint(number_of_iterations=subdivisions)


def _place(mesh: Any, rotation: np.ndarray, position: tuple[float, float, float]) -> Any:
    mesh.rotate(rotation, center=(0.0, 0.0, 0.0))
    return mesh.translate(position)


# --- colours ----------------------------------------------------------------------------------
def _paint(mesh: Any, weight: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
    """Vertex colours blended from `first [3]` (weight 0) to `second [3]` (weight 1); `weight [V]`."""
    colours = (1.0 - weight[:, None]) * first + weight[:, None] * second
    mesh.vertex_colors = _open3d().utility.Vector3dVector(np.clip(colours, 0.0, 1.0))


def _colour(rng: np.random.Generator, hue: float, value: float = 0.85, saturation: float = 0.75) -> np.ndarray:
    """An RGB colour `[3]` near `hue`, jittered by the seed."""
    jittered = (hue + rng.uniform(-0.04, 0.04)) % 1.0
    return np.array(colorsys.hsv_to_rgb(jittered, saturation, value))


def _checker(points: np.ndarray, cell: float) -> np.ndarray:
    """1 or 0 per point `[V, 3]` in a 3D checkerboard of `cell`-sized cubes, `[V]`."""
    return (np.floor(points / cell + 1e-6).sum(axis=1) % 2).astype(float)


def _waves(points: np.ndarray, rng: np.random.Generator, frequency: float, count: int = 8) -> np.ndarray:
    """Smooth noise in about [-1, 1] at `points [V, 3]`: random plane waves, `[V]`."""
    directions = rng.normal(size=(count, 3)) * frequency / math.sqrt(3.0)
    phases = rng.uniform(0.0, 2.0 * math.pi, size=count)
    return np.sin(points @ directions.T + phases).sum(axis=1) * math.sqrt(2.0 / count)


# --- the room's textures: colours [V, 3] at face coordinates s, t [V] (world units) ------------
def _floor(s: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Large tiles in two warm colours, dark grout, a faint small checker in each tile, mottling."""
    tiles = _checker(np.stack([s, t], 1), cell=2.5)
    colour = _blend(tiles, _colour(rng, 0.07, value=0.75, saturation=0.6), _colour(rng, 0.12, value=0.95, saturation=0.25))
    colour *= (1.0 + 0.16 * (_checker(np.stack([s, t], 1), cell=0.625) - 0.5) + 0.12 * _waves(_flat(s, t), rng, 1.5))[:, None]
    return _blend(np.maximum(_lines(s, 2.5, 0.15), _lines(t, 2.5, 0.15)), colour, np.full(3, 0.18))


def _ceiling(s: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pale panels with grey seams and a coarse stain."""
    colour = np.broadcast_to(_colour(rng, 0.55, value=0.95, saturation=0.08), (len(s), 3)).copy()
    colour *= (1.0 + 0.1 * _waves(_flat(s, t), rng, 0.7))[:, None]
    return _blend(np.maximum(_lines(s, 4.0, 0.2), _lines(t, 4.0, 0.2)), colour, np.full(3, 0.45))


def _wall(hue: float, pattern: Any) -> Any:
    """A wall texture: `pattern(s, t) [V]` in [0, 1] blends a dark and a pale colour of `hue`; a
    skirting board along the floor, panel seams every 5 units, fine grain and coarse mottling."""

    def texture(s: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        dark, pale = _colour(rng, hue, value=0.6, saturation=0.85), _colour(rng, hue, value=0.95, saturation=0.35)
        colour = _blend(pattern(s, t), dark, pale)
        grain = 0.1 * _waves(_flat(s, t), rng, 9.0) + 0.1 * _waves(_flat(s, t), rng, 0.8)
        colour *= 1.0 + grain[:, None]
        colour = _blend(_lines(s, 5.0, 0.2), colour, 0.5 * dark)
        return _blend((t < 1.0 - ROOM_HALF_SIZE).astype(float), colour, np.full(3, 0.25))

    return texture


def _stripes(x: np.ndarray, period: float) -> np.ndarray:
    """Soft-edged stripes of `period` along `x [V]`, in [0, 1]."""
    return np.clip(0.5 + 1.5 * np.sin(2.0 * math.pi * x / period), 0.0, 1.0)


def _lines(x: np.ndarray, period: float, width: float) -> np.ndarray:
    """1 on lines every `period` along `x [V]`, fading to 0 at `width` from them."""
    distance = np.abs((x / period + 0.5) % 1.0 - 0.5) * period
    return np.clip(1.0 - distance / width, 0.0, 1.0)


def _dots(s: np.ndarray, t: np.ndarray, spacing: float, radius: float) -> np.ndarray:
    """1 inside discs of `radius` on a square grid of `spacing`, else 0, soft-edged."""
    offsets = [np.abs((x / spacing + 0.5) % 1.0 - 0.5) * spacing for x in (s, t)]
    return np.clip((radius - np.hypot(*offsets)) / 0.15 + 0.5, 0.0, 1.0)


def _flat(s: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.stack([s, t, np.zeros_like(s)], axis=1)


def _blend(weight: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """`first` (weight 0) to `second` (weight 1): colours `[3]` or `[V, 3]`, `weight [V]`."""
    return (1.0 - weight[:, None]) * first + weight[:, None] * second


#: the room's faces: inward normal, the face's up direction and its texture. Each wall has its own
#: colour and pattern, so that a view's background tells which way it looks.
ROOM_FACES = {
    "floor": ((0, 0, 1), (0, 1, 0), _floor),
    "ceiling": ((0, 0, -1), (1, 0, 0), _ceiling),
    "wall +x": ((-1, 0, 0), (0, 0, 1), _wall(0.0, lambda s, t: _stripes(s, 1.6))),  # red, upright stripes
    "wall -x": ((1, 0, 0), (0, 0, 1), _wall(0.33, lambda s, t: _stripes(t, 1.2))),  # green, level bands
    "wall +y": ((0, -1, 0), (0, 0, 1), _wall(0.6, lambda s, t: _stripes(s + t, 2.0))),  # blue, slanted stripes
    "wall -y": ((0, 1, 0), (0, 0, 1), _wall(0.14, lambda s, t: _dots(s, t, 1.5, 0.45))),  # yellow, dots
}


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def _rotation_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rotation_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# --- rendering --------------------------------------------------------------------------------
class _Caster:
    """Renders RGBA images of one mesh by ray casting (Open3D `RaycastingScene`), optionally
    inside a `room` mesh that receives the mesh's shadows but casts none and is lit by
    `ROOM_AMBIENT`, `ROOM_DIFFUSE`."""

    def __init__(self, mesh: Any, room: Any | None = None) -> None:
        self.o3d = o3d = _open3d()
        self.vertices = np.asarray(mesh.vertices, dtype=np.float32)
        self.triangles = np.asarray(mesh.triangles, dtype=np.uint32)
        self.colours = np.asarray(mesh.vertex_colors, dtype=np.float32)
        self.normals = np.asarray(mesh.vertex_normals, dtype=np.float32)
        self.shadows = o3d.t.geometry.RaycastingScene()  # what casts shadows: the mesh alone
        self.shadows.add_triangles(o3d.core.Tensor(self.vertices), o3d.core.Tensor(self.triangles))
        self.scene, self.room_start = self.shadows, len(self.triangles)  # triangles from room_start on are the room's
        if room is not None:
            self.triangles = np.concatenate([self.triangles, np.asarray(room.triangles, dtype=np.uint32) + len(self.vertices)])
            self.vertices = np.concatenate([self.vertices, np.asarray(room.vertices, dtype=np.float32)])
            self.colours = np.concatenate([self.colours, np.asarray(room.vertex_colors, dtype=np.float32)])
            self.normals = np.concatenate([self.normals, np.asarray(room.vertex_normals, dtype=np.float32)])
            self.scene = o3d.t.geometry.RaycastingScene()
            self.scene.add_triangles(o3d.core.Tensor(self.vertices), o3d.core.Tensor(self.triangles))
        self.miss = o3d.t.geometry.RaycastingScene.INVALID_ID

    def render(self, c2w: np.ndarray, focal: float, size: int, supersample: int) -> np.ndarray:
        """`[size, size, 4]` uint8 RGBA (straight alpha) seen by the OpenGL camera `c2w [4, 4]`."""
        fine = size * supersample
        rays = _camera_rays(c2w, focal * supersample, fine)
        rgb, hit = self._shade(rays)
        coverage = hit.reshape(size, supersample, size, supersample).mean(axis=(1, 3))
        summed = (rgb * hit[:, None]).reshape(size, supersample, size, supersample, 3).sum(axis=(1, 3))
        colour = summed / np.maximum(coverage * supersample**2, 1e-6)[..., None]
        rgba = np.concatenate([colour, coverage[..., None]], axis=-1)
        return np.round(np.clip(rgba, 0.0, 1.0) * 255.0).astype(np.uint8)

    def _shade(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lambert-shaded vertex colours `[R, 3]` and hit flags `[R]` of `rays [R, 6]`."""
        result = self.scene.cast_rays(self.o3d.core.Tensor(rays))
        triangle = result["primitive_ids"].numpy()
        hit = triangle != self.miss
        uv = result["primitive_uvs"].numpy()[hit]
        weights = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)[:, :, None]
        corners = self.triangles[triangle[hit]]
        albedo = (weights * self.colours[corners]).sum(axis=1)
        normal = (weights * self.normals[corners]).sum(axis=1)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        points = rays[hit, :3] + result["t_hit"].numpy()[hit, None] * rays[hit, 3:]
        light = np.clip(normal @ LIGHT, 0.0, None) * self._unshadowed(points, result["primitive_normals"].numpy()[hit])
        ambient, diffuse = AMBIENT, DIFFUSE
        if self.room_start < len(self.triangles):
            on_room = triangle[hit] >= self.room_start
            ambient = np.where(on_room, ROOM_AMBIENT, AMBIENT)[:, None]
            diffuse = np.where(on_room, ROOM_DIFFUSE, DIFFUSE)[:, None]
        rgb = np.zeros((len(rays), 3), np.float32)
        rgb[hit] = albedo * (ambient + diffuse * light[:, None])
        return rgb, hit.astype(np.float32)

    def _unshadowed(self, points: np.ndarray, face_normals: np.ndarray) -> np.ndarray:
        """1 where the light reaches `points [P, 3]` (lifted off their faces), else 0, `[P]`."""
        origins = points + 1e-3 * face_normals
        rays = np.concatenate([origins, np.broadcast_to(LIGHT, origins.shape)], axis=1).astype(np.float32)
        return 1.0 - self.shadows.test_occlusions(self.o3d.core.Tensor(rays)).numpy().astype(np.float32)


def _camera_rays(c2w: np.ndarray, focal: float, size: int) -> np.ndarray:
    """Rays `[size * size, 6]` (origin, unit direction) through pixel centres, row by row."""
    centres = np.arange(size) + 0.5 - 0.5 * size
    x, y = np.meshgrid(centres / focal, -centres / focal)
    directions = np.stack([x, y, -np.ones_like(x)], axis=-1).reshape(-1, 3) @ c2w[:3, :3].T
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    origins = np.broadcast_to(c2w[:3, 3], directions.shape)
    return np.concatenate([origins, directions], axis=1).astype(np.float32)


# --- files ------------------------------------------------------------------------------------
def _transforms(
    mesh: Any, poses: np.ndarray, names: list[str], focal: float, size: int, views: tuple[int, int, int], stamp: dict
) -> dict[str, Any]:
    """The `transforms.json` contents (nerfstudio layout)."""
    low = np.asarray(mesh.get_min_bound()) - BOX_MARGIN
    high = np.asarray(mesh.get_max_bound()) + BOX_MARGIN
    splits = _splits(len(names), views)
    return {
        "camera_model": "OPENCV",
        "fl_x": focal,
        "fl_y": focal,
        "cx": size / 2,
        "cy": size / 2,
        "w": size,
        "h": size,
        "aabb": [low.round(4).tolist(), high.round(4).tolist()],
        "frames": [{"file_path": name, "transform_matrix": c2w.tolist()} for name, c2w in zip(names, poses)],
        **{f"{split}_filenames": [names[i] for i in indices] for split, indices in splits.items()},
        STAMP_KEY: stamp,
    }


def _splits(count: int, views: tuple[int, int, int]) -> dict[str, list[int]]:
    """Disjoint frame indices per split. The held-out views are spread evenly along the spiral
    (so over all elevations); val takes every other one of them first."""
    held_count = views[1] + views[2]
    held = [int(count / held_count * (k + 0.5)) for k in range(held_count)]
    interleaved = held[0::2] + held[1::2]
    return {
        "train": [i for i in range(count) if i not in held],
        "val": sorted(interleaved[: views[1]]),
        "test": sorted(interleaved[views[1] :]),
    }


def _is_complete(folder: Path, stamp: dict) -> bool:
    """Whether `folder` holds a finished scene built with `stamp`."""
    path = folder / "transforms.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if meta.get(STAMP_KEY) != stamp or not (folder / MESH_NAME).is_file():
        return False
    return all((folder / frame["file_path"]).is_file() for frame in meta.get("frames", []))


def _write_json(path: Path, value: dict[str, Any]) -> None:
    """Write through a temporary file and rename it into place."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=1) + "\n")
    os.replace(partial, path)


def _open3d() -> Any:
    """The `open3d` module, or a `SceneError` saying how to install it."""
    try:
        import open3d
    except ImportError as error:  # also raised when libusb-1.0 is missing
        raise SceneError(
            "open3d", f"the demo scene needs Open3D ({error}); install it with: pip install open3d "
            "(and on Debian: apt-get install libusb-1.0-0)"
        ) from None
    return open3d
