"""SfM points of a scene (`Scene.points`): COLMAP models, `ply_file_path` PLY files, bad files.

The COLMAP model here is written by hand (text format) in an arbitrary similarity of a known
world, with exact observations, so the loaded points must project onto them with the loaded
cameras after the loader's normalization.
"""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement
from scipy.spatial.transform import Rotation

from data import SceneError, load_scene
from data.points import POINTS_FILE, read_points, write_points
from data.synthetic import look_at_opengl

WIDTH, HEIGHT, FOCAL = 64, 48, 50.0
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def numbers(values: object) -> str:
    """Numbers as COLMAP's text files take them, exactly (17 significant digits)."""
    return " ".join(f"{float(v):.17g}" for v in values)


def write_colmap_project(folder: Path, views: int = 10, count: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[dict[int, np.ndarray]]]:
    """A COLMAP project (`images/`, text model in `sparse/0`) of `count` points in a cube seen by a
    ring of PINHOLE cameras, all moved by a similarity (rotation, scale 2.5, shift) into the SfM
    world. Returns the points (SfM world) `[P, 3]`, their colours `[P, 3]` uint8 and, per image
    in name order, the exact pixel of each point it observes by point index."""
    rng = np.random.default_rng(seed)
    rotation = Rotation.from_rotvec([0.4, -0.7, 0.25]).as_matrix()
    sfm_from_true = np.eye(4)
    sfm_from_true[:3, :3], sfm_from_true[:3, 3] = 2.5 * rotation, [3.0, -2.0, 5.0]
    true_points = rng.uniform(-1.0, 1.0, (count, 3))
    points = true_points @ sfm_from_true[:3, :3].T + sfm_from_true[:3, 3]
    colours = rng.integers(0, 256, (count, 3), dtype=np.uint8)
    (folder / "images").mkdir(parents=True)
    (folder / "sparse" / "0").mkdir(parents=True)
    image_lines, tracks, observed = [], {i: [] for i in range(count)}, []
    for view in range(views):
        angle = 2.0 * np.pi * view / views
        c2w = look_at_opengl(np.array([4.0 * np.cos(angle), 4.0 * np.sin(angle), 1.5])) @ GL_TO_CV
        c2w = sfm_from_true @ c2w
        c2w[:3, :3] /= 2.5  # a rotation again
        w2c = np.linalg.inv(c2w)
        local = points @ w2c[:3, :3].T + w2c[:3, 3]
        pixels = FOCAL * local[:, :2] / local[:, 2:] + [WIDTH / 2, HEIGHT / 2]
        seen = np.flatnonzero((local[:, 2] > 0) & (pixels >= 0).all(1) & (pixels < [WIDTH, HEIGHT]).all(1))
        qx, qy, qz, qw = Rotation.from_matrix(w2c[:3, :3]).as_quat()
        name = f"view_{view:02d}.png"
        image_lines.append(f"{view + 1} {numbers([qw, qx, qy, qz, *w2c[:3, 3]])} 1 {name}")
        image_lines.append(" ".join(f"{numbers(pixels[i])} {i + 1}" for i in seen))
        for index, i in enumerate(seen):
            tracks[i].append(f"{view + 1} {index}")
        observed.append({int(i): pixels[i] for i in seen})
        iio.imwrite(folder / "images" / name, np.full((HEIGHT, WIDTH, 3), 100, np.uint8))
    model = folder / "sparse" / "0"
    (model / "cameras.txt").write_text(f"1 PINHOLE {WIDTH} {HEIGHT} {FOCAL} {FOCAL} {WIDTH / 2} {HEIGHT / 2}\n")
    (model / "images.txt").write_text("\n".join(image_lines) + "\n")
    assert all(tracks.values()), "every point is seen by a camera"
    (model / "points3D.txt").write_text(
        "".join(f"{i + 1} {numbers(points[i])} {' '.join(map(str, colours[i]))} 0.5 {' '.join(tracks[i])}\n" for i in range(count))
    )
    return points, colours, observed


def write_transforms(folder: Path, count: int = 4, **meta: object) -> Path:
    """A transforms.json over `count` 8x6 images (written) on a ring, with `meta` merged in."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(count):
        iio.imwrite(folder / f"images/{i}.png", np.full((6, 8, 3), 128, np.uint8))
        c2w = look_at_opengl(np.array([4.0 * np.cos(i), 4.0 * np.sin(i), 1.0]))
        frames.append({"file_path": f"images/{i}.png", "transform_matrix": c2w.tolist()})
    path = folder / "transforms.json"
    path.write_text(json.dumps({"camera_angle_x": 0.8, "frames": frames, **meta}))
    return path


def write_ply(path: Path, **columns: np.ndarray) -> None:
    """A binary PLY whose one vertex element has `columns` as properties (their dtypes)."""
    count = len(next(iter(columns.values())))
    vertices = np.empty(count, dtype=[(name, values.dtype.str) for name, values in columns.items()])
    for name, values in columns.items():
        vertices[name] = values
    PlyData([PlyElement.describe(vertices, "vertex")]).write(str(path))


def test_colmap_points_project_onto_their_observations(tmp_path: Path) -> None:
    """The loaded points, in the normalized world, project with the loaded cameras to the pixels
    where the model says each image observed them; their colours are the model's."""
    points, colours, observed = write_colmap_project(tmp_path)
    scene = load_scene(tmp_path)
    assert scene.kind == "colmap" and not scene.ndc and len(scene.images) == len(observed)
    assert scene.points.dtype == torch.float32 and scene.points.shape == (len(points), 3)
    assert scene.point_colours.dtype == torch.uint8 and torch.equal(scene.point_colours, torch.from_numpy(colours))
    assert not torch.allclose(scene.points, torch.from_numpy(points).float(), atol=0.1)  # the world was normalized
    pixels, depths = scene.cameras.project(scene.points)
    for view, seen in enumerate(observed):
        ids = torch.tensor(sorted(seen))
        expected = torch.tensor(np.stack([seen[i] for i in sorted(seen)]), dtype=torch.float32)
        torch.testing.assert_close(pixels[view, ids], expected, atol=1e-2, rtol=0)
        assert (depths[view, ids] > 0).all()
    inside = ((scene.points >= scene.aabb[0]) & (scene.points <= scene.aabb[1])).all(1).float().mean()
    assert inside > 0.95, f"only {inside:.1%} of the points lie in the scene box"


def test_colmap_points_agree_with_keypoints(tmp_path: Path) -> None:
    """Each keypoint taken back into the world along its pixel's ray (at its distance) lands on
    a point of the scene: points and keypoints share one world."""
    write_colmap_project(tmp_path, views=6, count=40)
    scene = load_scene(tmp_path, downsample=2.0)  # the world does not change with the images' size
    view = scene.keypoints[:, 0].long()
    cameras = scene.cameras
    local = torch.stack(
        [(scene.keypoints[:, 1] - cameras.cx[view]) / cameras.fx[view], (scene.keypoints[:, 2] - cameras.cy[view]) / cameras.fy[view], torch.ones(len(view))], 1
    )
    directions = torch.nn.functional.normalize((cameras.c2w[view, :3, :3] @ local[:, :, None])[:, :, 0], dim=1)
    landed = cameras.c2w[view, :3, 3] + directions * scene.keypoints[:, 3:]
    nearest = torch.cdist(landed, scene.points).min(dim=1).values
    assert float(nearest.max()) < 1e-3 * float((scene.aabb[1] - scene.aabb[0]).norm())


def test_ply_file_path_round_trip(tmp_path: Path) -> None:
    points = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
    colours = np.random.default_rng(2).integers(0, 256, (50, 3), dtype=np.uint8)
    (tmp_path / "sfm").mkdir()
    write_points(tmp_path / "sfm" / POINTS_FILE, points, colours)
    write_transforms(tmp_path, ply_file_path=f"sfm/{POINTS_FILE}")
    for downsample in (1.0, 2.0):
        scene = load_scene(tmp_path, downsample)
        assert torch.equal(scene.points, torch.from_numpy(points))
        assert torch.equal(scene.point_colours, torch.from_numpy(colours))
    ply = PlyData.read(str(tmp_path / "sfm" / POINTS_FILE))
    assert [(p.name, p.val_dtype) for p in ply["vertex"].properties] == [
        ("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")
    ]


def test_points_without_colours_and_with_float_colours(tmp_path: Path) -> None:
    xyz = np.arange(12, dtype=np.float64).reshape(4, 3)
    write_ply(tmp_path / "plain.ply", x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2])
    points, colours = read_points(tmp_path / "plain.ply")
    assert colours is None and points.dtype == torch.float32 and points.tolist() == xyz.tolist()
    shade = np.array([0.0, 0.5, 1.0, 1.0], np.float32)
    write_ply(tmp_path / "float.ply", x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], red=shade, green=shade, blue=shade)
    _, colours = read_points(tmp_path / "float.ply")
    assert colours.dtype == torch.uint8 and colours[:, 0].tolist() == [0, 128, 255, 255]
    write_transforms(tmp_path, ply_file_path="plain.ply")
    scene = load_scene(tmp_path)
    assert scene.points.shape == (4, 3) and scene.point_colours is None


def test_scenes_without_a_point_file_have_no_points(tmp_path: Path) -> None:
    write_transforms(tmp_path)
    scene = load_scene(tmp_path)
    assert scene.points is None and scene.point_colours is None


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "point cloud file not found"),
        (b"not a ply file at all", "cannot read the point cloud as a PLY file"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n", "cannot read the point cloud"),
        ("no_y", "PLY vertices have no y, z"),
        ("nan", "must be finite"),
    ],
)
def test_bad_ply_file_names_the_file(tmp_path: Path, content: bytes | str | None, words: str) -> None:
    ply = tmp_path / "points" / POINTS_FILE
    ply.parent.mkdir()
    if content == "no_y":
        write_ply(ply, x=np.zeros(3, np.float32), red=np.zeros(3, np.uint8))
    elif content == "nan":
        write_ply(ply, x=np.zeros(2), y=np.array([0.0, np.nan]), z=np.zeros(2))
    elif content is not None:
        ply.write_bytes(content)
    write_transforms(tmp_path, ply_file_path=f"points/{POINTS_FILE}")
    with pytest.raises(SceneError) as info:
        load_scene(tmp_path)
    message = str(info.value)
    assert info.value.path == str(ply) and message.startswith(f"{ply}: ") and "\n" not in message
    assert words in message


def test_ply_file_path_must_be_a_name(tmp_path: Path) -> None:
    path = write_transforms(tmp_path, ply_file_path=3)
    with pytest.raises(SceneError, match="'ply_file_path' must be the name of a PLY file") as info:
        load_scene(tmp_path)
    assert info.value.path == str(path)


def test_blender_and_llff_scenes_have_no_points(tmp_path: Path) -> None:
    blender = tmp_path / "blender"
    write_transforms(blender)
    (blender / "transforms.json").rename(blender / "transforms_train.json")
    llff = tmp_path / "llff"
    (llff / "images").mkdir(parents=True)
    row = np.concatenate([np.hstack([np.eye(4)[:3], [[6.0], [8.0], [10.0]]]).ravel(), [1.0, 5.0]])
    np.save(llff / "poses_bounds.npy", np.stack([row, row]))
    for i in range(2):
        iio.imwrite(llff / f"images/{i}.png", np.zeros((6, 8, 3), np.uint8))
    for folder, kind in ((blender, "blender"), (llff, "llff")):
        scene = load_scene(folder)
        assert scene.kind == kind and scene.points is None and scene.point_colours is None
