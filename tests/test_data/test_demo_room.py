"""The demo scene in its room (data/demo.py, `room=True`): opaque photos in which every pixel sees
something, the parts drawn exactly as without the room, four walls that tell apart, the parts'
ground truth kept, and rebuilds only when the flag changes. Small scenes keep it fast."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import open3d as o3d
import pytest

from data import build_demo_scene, load_scene
from data.demo import ROOM_CELLS, ROOM_FACES, ROOM_HALF_SIZE, _Caster, demo_mesh, demo_room

SMALL = dict(size=48, views=(6, 2, 2), supersample=2)
TINY = dict(size=16, views=(3, 1, 1), supersample=1)
WALLS = [name for name in ROOM_FACES if name.startswith("wall")]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the room scene, the same scene without the room)."""
    root = tmp_path_factory.mktemp("demo_room")
    return build_demo_scene(root / "room", seed=0, room=True, **SMALL), build_demo_scene(root / "plain", seed=0, **SMALL)


def _meta(folder: Path) -> dict:
    return json.loads((folder / "transforms.json").read_text())


def _pixel_rays(meta: dict, c2w_gl: np.ndarray) -> np.ndarray:
    """Rays `[H * W, 6]` (origin, unit direction) through the pixel centres, row by row."""
    column, row = np.meshgrid(np.arange(meta["w"]) + 0.5, np.arange(meta["h"]) + 0.5)
    local = np.stack([(column - meta["cx"]) / meta["fl_x"], -(row - meta["cy"]) / meta["fl_y"], -np.ones_like(column)], -1)
    directions = local.reshape(-1, 3) @ c2w_gl[:3, :3].T
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return np.concatenate([np.broadcast_to(c2w_gl[:3, 3], directions.shape), directions], axis=1).astype(np.float32)


def test_images_are_opaque_rgb_and_load_as_photos(scenes: tuple[Path, Path]) -> None:
    room, _ = scenes
    meta = _meta(room)
    assert all(iio.imread(room / frame["file_path"]).shape == (48, 48, 3) for frame in meta["frames"])
    scene = load_scene(room)
    assert scene.images.shape == (10, 48, 48, 3) and scene.alpha is None
    assert {k: len(v) for k, v in scene.splits.items()} == {"train": 6, "val": 2, "test": 2}
    corners = ROOM_HALF_SIZE * np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
    eyes = scene.cameras.c2w[:, :3, 3].numpy()
    assert scene.far >= np.linalg.norm(corners[None] - eyes[:, None], axis=2).max(), "rays should reach the room's corners"


def test_every_pixel_sees_the_room_or_the_parts(scenes: tuple[Path, Path]) -> None:
    room, _ = scenes
    meta = _meta(room)
    caster = _Caster(demo_mesh(0), demo_room(0))
    for frame in meta["frames"]:
        rendered = caster.render(np.array(frame["transform_matrix"]), meta["fl_x"], 48, 2)
        assert (rendered[..., 3] == 255).all(), f"{frame['file_path']}: rays left the room"
        assert np.array_equal(rendered[..., :3], iio.imread(room / frame["file_path"]))


def test_the_parts_look_as_without_the_room(scenes: tuple[Path, Path]) -> None:
    """Rendered without the room at the room scene's wider focal, every pixel wholly covered by the
    parts is the same, and a ring of background runs round each image."""
    room, _ = scenes
    meta = _meta(room)
    caster = _Caster(demo_mesh(0))
    for frame in meta["frames"]:
        alone = caster.render(np.array(frame["transform_matrix"]), meta["fl_x"], 48, 2)
        image = iio.imread(room / frame["file_path"])
        inside = alone[..., 3] == 255
        assert inside.sum() > 100
        assert np.array_equal(image[inside], alone[inside][:, :3]), frame["file_path"]
        border = np.ones((48, 48), bool)
        border[3:-3, 3:-3] = False
        assert (alone[..., 3][border] == 0).all(), f"{frame['file_path']}: the parts should not reach the image's edge"
        assert (image[alone[..., 3] == 0] / 255).std(0).min() > 0.05, "the background should be textured"


def test_the_four_walls_have_distinct_colours(scenes: tuple[Path, Path]) -> None:
    """Mean image colour of the pixels whose centre ray meets each wall first."""
    room, _ = scenes
    meta = _meta(room)
    caster = o3d.t.geometry.RaycastingScene()
    parts = caster.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(demo_mesh(0)))
    walls = caster.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(demo_room(0)))
    seen: dict[str, list[np.ndarray]] = {name: [] for name in WALLS}
    for frame in meta["frames"]:
        result = caster.cast_rays(o3d.core.Tensor(_pixel_rays(meta, np.array(frame["transform_matrix"]))))
        geometry = result["geometry_ids"].numpy()
        assert np.isin(geometry, [parts, walls]).all(), "every ray should hit something"
        face = np.array(list(ROOM_FACES))[result["primitive_ids"].numpy() // (2 * ROOM_CELLS**2) % len(ROOM_FACES)]
        pixels = iio.imread(room / frame["file_path"]).reshape(-1, 3) / 255
        for name in WALLS:
            seen[name].append(pixels[(geometry == walls) & (face == name)])
    means = {}
    for name in WALLS:
        pixels = np.concatenate(seen[name])
        assert len(pixels) > 30, f"{name} is hardly seen"
        assert pixels.std(0).max() > 0.05, f"{name} should be textured"
        means[name] = pixels.mean(0)
    for i, first in enumerate(WALLS):
        for second in WALLS[i + 1 :]:
            assert np.abs(means[first] - means[second]).max() > 0.1, f"{first} and {second} look alike: {means}"


def test_the_ground_truth_is_the_parts_alone(scenes: tuple[Path, Path]) -> None:
    room, plain = scenes
    assert (room / "mesh.ply").read_bytes() == (plain / "mesh.ply").read_bytes()
    with_room, without = _meta(room), _meta(plain)
    assert with_room["aabb"] == without["aabb"] and "far" not in without
    assert with_room["tensorfields_demo"]["room"] is True and "room" not in without["tensorfields_demo"]
    assert with_room["fl_x"] < 0.75 * without["fl_x"], "the room scene should see more around the parts"


def test_room_faces_face_inwards() -> None:
    room = demo_room(0)
    room.compute_triangle_normals()
    centres = np.asarray(room.vertices)[np.asarray(room.triangles)].mean(1)
    assert (np.einsum("ij,ij->i", np.asarray(room.triangle_normals), -centres) > 0).all()
    assert np.allclose(np.abs(centres).max(1), ROOM_HALF_SIZE, atol=1e-6)


def test_room_builds_are_deterministic_and_rebuilt_when_the_flag_changes(tmp_path: Path) -> None:
    first, again = (build_demo_scene(tmp_path / name, room=True, **TINY) for name in ("a", "b"))
    names = [frame["file_path"] for frame in _meta(first)["frames"]]
    for name in [*names, "transforms.json", "mesh.ply"]:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    image = first / names[0]
    image.write_bytes(b"left alone")
    build_demo_scene(first, room=True, **TINY)
    assert image.read_bytes() == b"left alone"
    build_demo_scene(first, room=False, **TINY)
    assert iio.imread(image).shape == (16, 16, 4) and "room" not in _meta(first)["tensorfields_demo"]
    build_demo_scene(first, room=True, **TINY)
    assert image.read_bytes() == (again / names[0]).read_bytes()
