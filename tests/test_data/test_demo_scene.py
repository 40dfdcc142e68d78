"""The embedded demo scene (data/demo.py): poses match the images, splits, determinism, loading
and the ground-truth mesh. Small scenes (a few dozen pixels, a few views) keep it fast."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import open3d as o3d
import pytest

from data import build_demo_scene, load_scene

SMALL = dict(size=48, views=(6, 2, 2), supersample=2)
TINY = dict(size=16, views=(3, 1, 1), supersample=1)


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_scene(tmp_path_factory.mktemp("demo") / "scene", seed=0, **SMALL)


def _meta(folder: Path) -> dict:
    return json.loads((folder / "transforms.json").read_text())


def _alpha(folder: Path, frame: dict) -> np.ndarray:
    return iio.imread(folder / frame["file_path"])[..., 3]


def _project(meta: dict, c2w_gl: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (column, row) `[P, 2]` int and depth `[P]` of world `points [P, 3]` in an OpenGL
    camera, from the intrinsics in `transforms.json`."""
    local = (points - c2w_gl[:3, 3]) @ c2w_gl[:3, :3]
    depth = -local[:, 2]
    column = meta["cx"] + meta["fl_x"] * local[:, 0] / depth
    row = meta["cy"] - meta["fl_y"] * local[:, 1] / depth
    return np.floor(np.stack([column, row], axis=1)).astype(int), depth


def _visible_front_vertices(mesh: o3d.geometry.TriangleMesh, eye: np.ndarray) -> np.ndarray:
    """Vertices `[P, 3]` that face the camera at `eye [3]` and that a ray from it reaches first."""
    vertices = np.asarray(mesh.vertices)
    to_vertex = vertices - eye
    distance = np.linalg.norm(to_vertex, axis=1)
    facing = (np.asarray(mesh.vertex_normals) * to_vertex).sum(1) / distance < -0.3
    caster = o3d.t.geometry.RaycastingScene()
    caster.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    rays = np.concatenate([np.broadcast_to(eye, to_vertex.shape), to_vertex / distance[:, None]], axis=1)
    t_hit = caster.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))["t_hit"].numpy()
    return vertices[facing & (np.abs(t_hit - distance) < 1e-3)]


def test_visible_mesh_points_land_on_the_objects(small_scene: Path) -> None:
    meta = _meta(small_scene)
    mesh = o3d.io.read_triangle_mesh(str(small_scene / "mesh.ply"))
    mesh.compute_vertex_normals()
    for frame in meta["frames"]:
        c2w = np.array(frame["transform_matrix"])
        visible = _visible_front_vertices(mesh, c2w[:3, 3])
        pixels, depth = _project(meta, c2w, visible)
        assert len(visible) > 50 and (depth > 0).all()
        assert ((pixels >= 0) & (pixels < meta["w"])).all(), "the objects should lie inside every image"
        alpha = _alpha(small_scene, frame)
        on_object = alpha[pixels[:, 1], pixels[:, 0]] > 0
        assert on_object.mean() > 0.98, f"{frame['file_path']}: visible mesh points project to background"


def test_points_beside_the_objects_project_to_background(small_scene: Path) -> None:
    meta = _meta(small_scene)
    radius = np.linalg.norm(np.asarray(o3d.io.read_triangle_mesh(str(small_scene / "mesh.ply")).vertices), axis=1).max()
    for frame in meta["frames"]:
        c2w = np.array(frame["transform_matrix"])
        diagonal = (c2w[:3, 0] + c2w[:3, 1]) / np.sqrt(2.0)  # towards the image's top right corner
        pixels, _ = _project(meta, c2w, 1.25 * radius * diagonal[None])
        column, row = pixels[0]
        assert 0 <= column < meta["w"] and 0 <= row < meta["h"]
        assert column > meta["cx"] and row < meta["cy"]
        assert _alpha(small_scene, frame)[row, column] == 0


def test_splits_are_disjoint_and_cover_every_frame(small_scene: Path) -> None:
    meta = _meta(small_scene)
    splits = [set(meta[f"{name}_filenames"]) for name in ("train", "val", "test")]
    assert [len(s) for s in splits] == list(SMALL["views"])
    assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
    assert set.union(*splits) == {frame["file_path"] for frame in meta["frames"]}


def test_the_scene_loads(small_scene: Path) -> None:
    scene = load_scene(small_scene)
    assert scene.images.shape == (10, 48, 48, 3) and scene.alpha is not None
    assert scene.background.tolist() == [1.0, 1.0, 1.0]
    assert {k: len(v) for k, v in scene.splits.items()} == {"train": 6, "val": 2, "test": 2}
    mesh = o3d.io.read_triangle_mesh(str(small_scene / "mesh.ply"))
    assert (scene.aabb[0].numpy() < mesh.get_min_bound()).all() and (mesh.get_max_bound() < scene.aabb[1].numpy()).all()
    foreground = scene.images[scene.alpha == 255].float() / 255
    assert foreground.std(0).min() > 0.1, "the objects should be textured, not flat"


def test_mesh_has_vertex_colours(small_scene: Path) -> None:
    mesh = o3d.io.read_triangle_mesh(str(small_scene / "mesh.ply"))
    assert len(mesh.triangles) > 10000 and mesh.has_vertex_colors()
    assert np.asarray(mesh.vertex_colors).std(0).min() > 0.1


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    first, again, other = (build_demo_scene(tmp_path / name, seed=seed, **TINY) for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    names = [frame["file_path"] for frame in _meta(first)["frames"]]
    for name in [*names, "transforms.json", "mesh.ply"]:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    assert all(not np.array_equal(iio.imread(first / n), iio.imread(other / n)) for n in names)


def test_a_complete_scene_is_not_rebuilt(tmp_path: Path) -> None:
    folder = build_demo_scene(tmp_path / "scene", **TINY)
    image = folder / _meta(folder)["frames"][0]["file_path"]
    image.write_bytes(b"left alone")
    build_demo_scene(folder, **TINY)
    assert image.read_bytes() == b"left alone"
    build_demo_scene(folder, seed=3, **TINY)
    assert image.read_bytes() != b"left alone" and _meta(folder)["tensorfields_demo"]["seed"] == 3


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size >= 8"):
        build_demo_scene(tmp_path / "scene", size=4)
