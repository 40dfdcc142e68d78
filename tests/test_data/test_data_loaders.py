"""Scene loaders: the shared reference scenes and synthetic scenes with known geometry.

The synthetic scenes draw a dot where a known 3D point projects under a known OpenGL-convention
pose, computed here with an independent formula, and check that the loaded cameras project the
point onto the dot.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import FERN, LEGO, requires_fern, requires_lego

from data import Scene, load_scene, scene_summary
from data.synthetic import look_at_opengl

POINT = np.array([0.4, -0.3, 0.5])  # the 3D point drawn as a dot
DOT = (255, 0, 0)
DOT_RADIUS = 3.0
WIDTH, HEIGHT = 64, 48


def project_opengl(c2w: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Pixel (x, y) of POINT for an OpenGL pose, pixel centres at +0.5."""
    cam = c2w[:3, :3].T @ (POINT - c2w[:3, 3])
    depth = -cam[2]
    assert depth > 0
    return np.array([cx + fx * cam[0] / depth, cy - fy * cam[1] / depth])


def dot_image(pixel: np.ndarray, alpha: bool) -> np.ndarray:
    """A WIDTHxHEIGHT image, grey (or transparent) with a red dot centred on `pixel`."""
    cols, rows = np.meshgrid(np.arange(WIDTH) + 0.5, np.arange(HEIGHT) + 0.5)
    inside = (cols - pixel[0]) ** 2 + (rows - pixel[1]) ** 2 <= DOT_RADIUS**2
    image = np.zeros((HEIGHT, WIDTH, 4 if alpha else 3), np.uint8)
    image[..., :3] = 90
    image[inside, :3] = DOT
    if alpha:
        image[..., 3] = np.where(inside, 255, 0)
    return image


def ring_poses(count: int, radius: float = 4.0) -> list[np.ndarray]:
    """OpenGL poses on a tilted ring around the origin, looking at it."""
    angles = np.linspace(0.0, 2.0 * math.pi, count, endpoint=False)
    return [
        look_at_opengl(radius * np.array([np.cos(a) * 0.9, np.sin(a) * 0.9, 0.436]))
        for a in angles
    ]


def write_blender(folder: Path, count: int = 10, angle_x: float = 1.0) -> list[np.ndarray]:
    """A Blender scene with only transforms_train.json; returns the dot pixels per view."""
    (folder / "train").mkdir(parents=True)
    focal = 0.5 * WIDTH / math.tan(0.5 * angle_x)
    frames, pixels = [], []
    for i, c2w in enumerate(ring_poses(count)):
        pixel = project_opengl(c2w, focal, focal, WIDTH / 2, HEIGHT / 2)
        iio.imwrite(folder / f"train/r_{i}.png", dot_image(pixel, alpha=True))
        frames.append({"file_path": f"./train/r_{i}", "transform_matrix": c2w.tolist()})
        pixels.append(pixel)
    meta = {"camera_angle_x": angle_x, "frames": frames}
    (folder / "transforms_train.json").write_text(json.dumps(meta))
    return pixels


def write_nerfstudio(folder: Path, count: int = 9, **extra) -> list[np.ndarray]:
    """A transforms.json scene with per-frame intrinsics on frame 2; returns the dot pixels."""
    (folder / "images").mkdir(parents=True)
    meta = {"fl_x": 60.0, "fl_y": 55.0, "cx": 30.0, "cy": 26.0, "w": WIDTH, "h": HEIGHT, **extra}
    frames, pixels = [], []
    for i, c2w in enumerate(ring_poses(count)):
        frame = {"file_path": f"images/frame_{i:03d}.png", "transform_matrix": c2w.tolist()}
        if i == 2:
            frame.update(fl_x=70.0, cx=34.0)
        k = {**meta, **frame}
        pixel = project_opengl(c2w, k["fl_x"], k["fl_y"], k["cx"], k["cy"])
        iio.imwrite(folder / frame["file_path"], dot_image(pixel, alpha=False))
        frames.append(frame)
        pixels.append(pixel)
    (folder / "transforms.json").write_text(json.dumps({**meta, "frames": frames}))
    return pixels


def assert_on_dot(scene: Scene, pixels: list[np.ndarray], factor: float = 1.0) -> None:
    """The cameras project POINT onto the drawn dot (scaled by `factor`), and it is red there."""
    projected, depth = scene.cameras.project(torch.tensor(POINT, dtype=torch.float32)[None])
    expected = torch.tensor(np.stack(pixels) * factor, dtype=torch.float32)
    torch.testing.assert_close(projected[:, 0], expected, atol=1e-3, rtol=0)
    assert (depth > 0).all()
    cols, rows = projected[:, 0].floor().long().unbind(1)
    colours = scene.images[torch.arange(len(scene.images)), rows, cols].int()
    assert (colours[:, 0] > 180).all() and (colours[:, 1:] < 90).all(), colours


@pytest.fixture(scope="module")
def lego() -> Scene:
    return load_scene(LEGO, downsample=8)


@requires_lego
def test_lego_downsample_8(lego: Scene) -> None:
    assert lego.kind == "blender"
    assert lego.images.shape == (200, 100, 100, 3) and lego.images.dtype == torch.uint8
    assert (lego.cameras.width, lego.cameras.height) == (100, 100)
    assert len(lego.split("train")) == 100 and len(lego.split("val")) == 100
    # no test split here: "test" means the held-out val views, and says so
    assert lego.split_name("test") == "val" and torch.equal(lego.split("test"), lego.split("val"))
    assert lego.background.tolist() == [1.0, 1.0, 1.0]
    assert lego.alpha is not None and lego.alpha.shape == (200, 100, 100)
    assert (lego.images[lego.alpha == 0] == 255).all()  # composited on white
    assert lego.aabb.tolist() == [[-1.5] * 3, [1.5] * 3] and (lego.near, lego.far) == (2.0, 6.0)
    assert lego.names[0] == "train/r_0.png"


@requires_lego
def test_lego_opencv_convention(lego: Scene) -> None:
    """The object at the world origin is in front of every camera, near the image centre."""
    pixels, depth = lego.cameras.project(torch.zeros(1, 3))
    assert (depth > 0).all()
    assert ((pixels[:, 0] - 50.0).abs() < 10).all()
    cols, rows = pixels[:, 0].long().unbind(1)
    covered = lego.alpha[torch.arange(200), rows, cols] > 0
    assert covered.float().mean() > 0.8


@requires_fern
def test_fern_downsample_8() -> None:
    scene = load_scene(FERN, downsample=8)
    assert scene.kind == "llff" and scene.ndc and scene.ndc_near == 1.0
    assert scene.images.shape == (17, 378, 504, 3)
    assert scene.names[0] == "images_8/image001.png"
    assert scene.split("test").tolist() == [0, 8, 16] and scene.split("val").tolist() == [0, 8, 16]
    assert len(scene.split("train")) == 14
    hwf = np.load(FERN / "poses_bounds.npy")[0, :15].reshape(3, 5)[:, 4]
    assert scene.ndc_focal == pytest.approx(hwf[2] * 504 / hwf[1], rel=1e-6)
    torch.testing.assert_close(scene.cameras.cx, torch.full((17,), 252.0))
    # Recentred: the cameras look down world -z (OpenCV z axis) with image right along +x and
    # image down along -y (as TensoRF's average pose), as proper rotations (no mirroring).
    assert (scene.cameras.c2w[:, 2, 2] < -0.9).all()
    assert (scene.cameras.c2w[:, 0, 0] > 0.9).all() and (scene.cameras.c2w[:, 1, 1] < -0.9).all()
    torch.testing.assert_close(torch.linalg.det(scene.cameras.c2w[:, :3, :3]), torch.ones(17))
    assert scene.cameras.centers.mean(0).abs().max() < 1e-4
    torch.testing.assert_close(scene.aabb, torch.tensor([[-1.5, -1.67, -1.0], [1.5, 1.67, 1.0]]))


@requires_fern
def test_fern_resizes_from_finer_folder() -> None:
    scene = load_scene(FERN, downsample=16)
    assert scene.images.shape == (17, 189, 252, 3) and scene.downsample == 16
    assert scene.ndc_focal == pytest.approx(load_scene(FERN, 8).ndc_focal / 2, rel=1e-6)


def test_llff_synthetic_poses(tmp_path: Path) -> None:
    """Relative poses survive the LLFF processing, translations scaled by 1/(0.75 * near)."""
    c2w_cv = [look_at_opengl(p[:3, 3]) @ np.diag([1.0, -1.0, -1.0, 1.0]) for p in ring_poses(5)]
    rows = []
    for c2w in c2w_cv:  # LLFF columns: down, right, back, centre, then (h, w, f)
        llff = np.stack([c2w[:3, 1], c2w[:3, 0], -c2w[:3, 2], c2w[:3, 3]], axis=1)
        hwf = np.array([[HEIGHT * 2], [WIDTH * 2], [100.0]])
        rows.append(np.concatenate([np.hstack([llff, hwf]).ravel(), [2.0, 9.0]]))
    (tmp_path / "images").mkdir()
    np.save(tmp_path / "poses_bounds.npy", np.stack(rows))
    for i in range(5):
        black = np.zeros((HEIGHT * 2, WIDTH * 2, 3), np.uint8)
        iio.imwrite(tmp_path / f"images/{i:02d}.png", black)

    scene = load_scene(tmp_path, downsample=2)
    assert scene.images.shape == (5, HEIGHT, WIDTH, 3) and scene.kind == "llff"
    assert scene.ndc_focal == pytest.approx(50.0)
    loaded = scene.cameras.c2w.double().numpy()
    for i, j in [(0, 1), (1, 3), (2, 4)]:
        original = np.linalg.inv(c2w_cv[i]) @ c2w_cv[j]
        relative = np.linalg.inv(loaded[i]) @ loaded[j]
        np.testing.assert_allclose(relative[:3, :3], original[:3, :3], atol=1e-5)
        np.testing.assert_allclose(relative[:3, 3], original[:3, 3] / (0.75 * 2.0), atol=1e-5)


def test_blender_synthetic(tmp_path: Path) -> None:
    pixels = write_blender(tmp_path)
    scene = load_scene(tmp_path)
    assert scene.kind == "blender" and scene.images.shape == (10, HEIGHT, WIDTH, 3)
    assert scene.split("train").tolist() == [1, 2, 3, 4, 5, 6, 7, 9]
    assert scene.split("val").tolist() == [0, 8] and scene.split("test").tolist() == [0, 8]
    assert_on_dot(scene, pixels)
    assert (scene.images[scene.alpha == 0] == 255).all()


def test_blender_downsample_keeps_projection(tmp_path: Path) -> None:
    pixels = write_blender(tmp_path)
    scene = load_scene(tmp_path, downsample=2)
    assert scene.images.shape == (10, HEIGHT // 2, WIDTH // 2, 3) and scene.downsample == 2
    assert_on_dot(scene, pixels, factor=0.5)


def test_nerfstudio_per_frame_intrinsics(tmp_path: Path) -> None:
    pixels = write_nerfstudio(tmp_path)
    scene = load_scene(tmp_path)
    assert scene.kind == "nerfstudio" and scene.images.shape == (9, HEIGHT, WIDTH, 3)
    assert scene.cameras.fx[2] == 70.0 and scene.cameras.fx[1] == 60.0
    assert scene.cameras.fy.tolist() == [55.0] * 9
    assert scene.cameras.distortion is None and scene.alpha is None
    assert scene.background.tolist() == [0.0, 0.0, 0.0]
    assert scene.split("test").tolist() == [0, 8] and len(scene.split("train")) == 7
    assert_on_dot(scene, pixels)


def test_nerfstudio_downsample_keeps_projection(tmp_path: Path) -> None:
    pixels = write_nerfstudio(tmp_path)
    scene = load_scene(tmp_path / "transforms.json", downsample=2)
    assert scene.images.shape == (9, HEIGHT // 2, WIDTH // 2, 3)
    assert scene.cameras.fx[2] == 35.0
    assert_on_dot(scene, pixels, factor=0.5)


def test_nerfstudio_estimated_box(tmp_path: Path) -> None:
    """Cameras at radius 4 looking at the origin give a box of about [-1.6, 1.6]^3."""
    write_nerfstudio(tmp_path)
    scene = load_scene(tmp_path)
    torch.testing.assert_close(scene.aabb, torch.tensor([[-1.6] * 3, [1.6] * 3]), atol=1e-4, rtol=0)
    assert scene.near == pytest.approx(0.2, rel=1e-3)
    assert scene.far == pytest.approx(8 + 3.2 * math.sqrt(3), rel=1e-3)


def test_nerfstudio_aabb_distortion_and_splits(tmp_path: Path) -> None:
    write_nerfstudio(
        tmp_path,
        aabb=[[-1, -2, -3], [1, 2, 3]],
        k1=0.1,
        train_filenames=["images/frame_000.png", "images/frame_001.png"],
        test_filenames=["./images/frame_004.png"],
    )
    scene = load_scene(tmp_path)
    assert scene.aabb.tolist() == [[-1, -2, -3], [1, 2, 3]]
    assert scene.cameras.distortion.shape == (9, 4)
    assert scene.cameras.distortion[:, 0].tolist() == pytest.approx([0.1] * 9)
    assert scene.split("train").tolist() == [0, 1] and scene.split("val").tolist() == [4]


def test_nerfstudio_blender_layout(tmp_path: Path) -> None:
    """One transforms.json with camera_angle_x and extension-less RGBA paths."""
    pixels = write_blender(tmp_path)
    (tmp_path / "transforms_train.json").rename(tmp_path / "transforms.json")
    scene = load_scene(tmp_path)
    assert scene.kind == "nerfstudio" and scene.background.tolist() == [1.0, 1.0, 1.0]
    assert scene.alpha is not None
    assert_on_dot(scene, pixels)


def test_fern_like_fallback_without_fine_images(tmp_path: Path, caplog) -> None:
    """Asking for more resolution than any folder has loads the finest folder as is."""
    c2w = np.eye(4)[:3]
    row = np.concatenate([np.hstack([c2w, [[40.0], [80.0], [50.0]]]).ravel(), [1.0, 5.0]])
    np.save(tmp_path / "poses_bounds.npy", np.stack([row, row]))
    (tmp_path / "images_4").mkdir()
    for i in range(2):
        iio.imwrite(tmp_path / f"images_4/{i}.png", np.zeros((10, 20, 3), np.uint8))
    with caplog.at_level(logging.WARNING):
        scene = load_scene(tmp_path)
    assert scene.images.shape == (2, 10, 20, 3) and scene.downsample == 4
    assert "images_4" in caplog.text


def test_scene_summary(tmp_path: Path) -> None:
    write_nerfstudio(tmp_path)
    line = scene_summary(load_scene(tmp_path, downsample=2))
    assert "\n" not in line
    assert "nerfstudio" in line and "9 images 32x24" in line and "background black" in line
