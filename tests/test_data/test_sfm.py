"""Photos and videos to scenes: pycolmap SfM, COLMAP projects, video frames, SfM scene bounds."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pycolmap
import pytest
import torch
from conftest import FERN, LEGO, requires_fern, requires_lego
from PIL import ExifTags, Image, ImageFilter, ImageOps
from plyfile import PlyData

from apps.bench.sfm import LEGO_SIZE, centre_error, lego_photos
from apps.cli import main
from apps.commands import colmap as colmap_command
from data import SceneError, load_scene, prepare_scene
from data import sfm
from data.bounds import is_forward_facing, normalize_world
from data.sfm import run_sfm
from data.video import extract_frames
from render import camera_rays

LEGO_VIEWS = 40


def frame_names(transforms: Path) -> list[str]:
    return [Path(frame["file_path"]).name for frame in json.loads(transforms.read_text())["frames"]]


def write_jpeg(path: Path, seed: int, size: tuple[int, int] = (64, 48), **exif: int | str) -> None:
    """Noise of `size` (as stored), with EXIF tags given by name (`Orientation=6`, `Model="X"`)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    image, tags = Image.fromarray(pixels), Image.Exif()
    for name, value in exif.items():
        tags[getattr(ExifTags.Base, name)] = value
    image.save(path, format="JPEG", exif=tags)


@pytest.fixture(scope="session")
def lego_sfm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """SfM of the first 40 lego training views at 400x400 (on white; at 200x200 about one run in five
    converged to a wrong, self-consistent model); the folder and the given
    camera centres by file name."""
    folder = tmp_path_factory.mktemp("lego_photos")
    centres = lego_photos(LEGO, folder, LEGO_VIEWS)
    run_sfm(folder)
    return folder, centres


@pytest.fixture(scope="session")
def fern_sfm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """SfM of fern's 17 images_8 views, plus a file of another size, a corrupt JPEG and a note, in
    a photo folder that cannot be written (simulated: tests run as root); the photo folder, the
    fallback folder that holds the results, and the log messages."""
    folder = tmp_path_factory.mktemp("fern_photos")
    for path in sorted((FERN / "images_8").iterdir()):
        shutil.copy(path, folder / path.name)
    Image.open(folder / "image001.png").resize((300, 200)).save(folder / "odd_size.png")
    write_jpeg(folder / "broken.jpg", 0)
    (folder / "broken.jpg").write_bytes((folder / "broken.jpg").read_bytes()[:400])
    (folder / "notes.txt").write_text("not a photo")
    out = tmp_path_factory.mktemp("fern_run") / "sfm"
    logger = logging.getLogger("data.sfm")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger.addHandler(handler)
    writable = sfm._writable
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sfm, "_writable", lambda path: path != folder and writable(path))
            assert run_sfm(folder, out=out) == out / "transforms.json"
    finally:
        logger.removeHandler(handler)
    return folder, out, records


@requires_lego
def test_sfm_recovers_lego_cameras(lego_sfm: tuple[Path, dict[str, np.ndarray]]) -> None:
    folder, given = lego_sfm
    meta = json.loads((folder / "transforms.json").read_text())
    names = frame_names(folder / "transforms.json")
    assert len(names) >= 0.8 * LEGO_VIEWS, f"only {len(names)} of {LEGO_VIEWS} registered"
    recovered = np.array([frame["transform_matrix"] for frame in meta["frames"]])[:, :3, 3]
    error = centre_error(recovered, np.stack([given[name] for name in names]))
    print(f"lego SfM: {len(names)}/{LEGO_VIEWS} registered, camera centre error RMS {error:.4%} of the camera spread")
    assert error < 0.03
    assert meta["forward_facing"] is False
    aabb = np.array(meta["aabb"])
    assert np.all(np.abs(aabb) <= 1.5 + 1e-6) and np.isclose(np.abs(aabb).max(), 1.5)
    scene = load_scene(folder)
    assert not scene.ndc and scene.near < scene.far and len(scene.images) == len(names)
    assert (folder / "colmap" / "sparse" / "0").is_dir() and (folder / "colmap" / "undistorted" / "images").is_dir()


@requires_lego
def test_sfm_keypoints_lie_on_points_other_photos_see(lego_sfm: tuple[Path, dict[str, np.ndarray]]) -> None:
    """Every SfM point is seen by two photos or more: a keypoint taken back into the world along
    its pixel's ray (at its distance) meets a keypoint of another photo there."""
    folder, _ = lego_sfm
    scene = load_scene(folder, downsample=2.0)  # keypoints follow the images' size
    keypoints = scene.keypoints
    assert keypoints is not None and set(keypoints[:, 0].long().tolist()) == set(range(len(scene.images)))
    assert (keypoints[:, 1] >= 0).all() and (keypoints[:, 1] < scene.width).all() and (keypoints[:, 2] < scene.height).all()
    rays = camera_rays(scene.cameras, keypoints[:, 0].long(), keypoints[:, 1], keypoints[:, 2])
    points = rays.origins + rays.directions * keypoints[:, 3:]
    distance = torch.cdist(points, points)
    distance[keypoints[:, 0, None] == keypoints[None, :, 0]] = float("inf")  # the same photo does not count
    nearest = distance.min(dim=1).values
    assert float(nearest.median()) < 0.005 * float((scene.aabb[1] - scene.aabb[0]).norm())


@requires_lego
def test_sfm_writes_its_points_beside_transforms(lego_sfm: tuple[Path, dict[str, np.ndarray]]) -> None:
    """nerfstudio's `sparse_pc.ply`, named by `ply_file_path`: the model's points in the world
    of the cameras, nearly all inside the scene box (the 1st-99th percentiles plus a margin)."""
    folder, _ = lego_sfm
    assert json.loads((folder / "transforms.json").read_text())["ply_file_path"] == "sparse_pc.ply"
    vertex = PlyData.read(str(folder / "sparse_pc.ply"))["vertex"]
    assert [(p.name, p.val_dtype) for p in vertex.properties] == [
        ("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")
    ]
    model = pycolmap.Reconstruction(folder / "colmap" / "undistorted" / "sparse")
    scene = load_scene(folder)
    assert scene.points.shape == (model.num_points3D(), 3) and scene.point_colours.shape == (model.num_points3D(), 3)
    inside = ((scene.points >= scene.aabb[0]) & (scene.points <= scene.aabb[1])).all(1).float().mean()
    assert inside > 0.95
    pixels, depths = scene.cameras.project(scene.points)
    seen = (depths > 0) & (pixels >= 0).all(-1) & (pixels[..., 0] < scene.width) & (pixels[..., 1] < scene.height)
    assert seen.any(0).float().mean() > 0.99  # every point is in some photo


@requires_lego
def test_second_run_skips_sfm(lego_sfm: tuple[Path, dict[str, np.ndarray]]) -> None:
    folder, _ = lego_sfm
    before = (folder / "transforms.json").stat().st_mtime_ns
    assert prepare_scene(folder) == folder
    assert (folder / "transforms.json").stat().st_mtime_ns == before


@requires_fern
def test_a_later_run_finds_the_fallback_results(fern_sfm: tuple[Path, Path, list[str]]) -> None:
    """`train --resume` on a read-only photo folder reuses what the first run's SfM left in its
    run folder (`prepare_scene(..., out=)`), without running SfM again."""
    folder, out, _ = fern_sfm
    before = (out / "transforms.json").stat().st_mtime_ns
    assert prepare_scene(folder, out=out) == out
    assert (out / "transforms.json").stat().st_mtime_ns == before and not (folder / "transforms.json").exists()


@requires_fern
def test_sfm_fern_is_forward_facing(fern_sfm: tuple[Path, Path, list[str]]) -> None:
    photos, folder, messages = fern_sfm
    names = frame_names(folder / "transforms.json")
    assert names == sorted(path.name for path in (FERN / "images_8").iterdir())  # all 17 registered
    left_out = next(m for m in messages if "left out" in m)
    assert "odd_size.png (300x200, unlike the 504x378" in left_out and "broken.jpg (cannot read image" in left_out
    meta = json.loads((folder / "transforms.json").read_text())
    assert meta["forward_facing"] is True
    truth = np.load(FERN / "poses_bounds.npy")[:, :15].reshape(-1, 3, 5)[:, :, 3]
    recovered = np.array([frame["transform_matrix"] for frame in meta["frames"]])[:, :3, 3]
    assert centre_error(recovered, truth) < 0.05
    record = json.loads((folder / "colmap" / sfm.RECORD).read_text())
    assert record["threads"] == sfm.default_threads() and record["registered"] == 17
    assert set(record["seconds"]) == {"photos", "features", "matching", "mapping", "undistortion", "total"}
    scene = load_scene(folder)
    assert scene.ndc and scene.ndc_near == 1.0 and scene.ndc_focal == pytest.approx(scene.cameras.fx[0].item())
    assert (folder / meta["ply_file_path"]).is_file() and scene.points is not None and len(scene.points) > 100
    _, depths = scene.cameras.project(scene.points)  # world units (not NDC), in front of the cameras
    assert (depths > 0).float().mean() > 0.99


@requires_fern
def test_read_only_photos_go_to_the_fallback_folder(fern_sfm: tuple[Path, Path, list[str]]) -> None:
    photos, folder, messages = fern_sfm
    assert not (photos / "transforms.json").exists() and not (photos / "colmap").exists()
    assert f"{photos} cannot be written: the SfM results go to {folder}" in messages


def test_read_only_photos_without_a_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for seed in range(3):
        write_jpeg(tmp_path / f"{seed}.jpg", seed)
    monkeypatch.setattr(sfm, "_writable", lambda path: False)
    with pytest.raises(SceneError, match="cannot write transforms.json and colmap/ here") as info:
        run_sfm(tmp_path)
    assert info.value.path == str(tmp_path)
    with pytest.raises(SceneError, match="neither the photo folder nor this folder can be written"):
        run_sfm(tmp_path, out=tmp_path / "out")


@requires_lego
@pytest.mark.parametrize("form", ["binary", "text"])
def test_colmap_project_loads_undistorted(lego_sfm: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, form: str) -> None:
    folder, _ = lego_sfm
    model = pycolmap.Reconstruction(folder / "colmap" / "sparse" / "0")
    camera = next(iter(model.cameras.values()))
    assert camera.model_name == "SIMPLE_RADIAL"
    camera.params = [camera.params[0], camera.params[1], camera.params[2], 0.05]  # visible barrel distortion
    (tmp_path / "sparse" / "0").mkdir(parents=True)
    getattr(model, f"write_{form}")(tmp_path / "sparse" / "0")
    shutil.copytree(folder, tmp_path / "images", ignore=shutil.ignore_patterns("colmap", "transforms.json"))
    scene = load_scene(tmp_path)
    assert scene.kind == "colmap" and len(scene.images) == model.num_reg_images()
    assert scene.cameras.distortion is None
    undistorted = pycolmap.Reconstruction(tmp_path / "undistorted" / "sparse")
    assert {c.model_name for c in undistorted.cameras.values()} == {"PINHOLE"}
    assert (scene.width, scene.height) == (undistorted.cameras[camera.camera_id].width, undistorted.cameras[camera.camera_id].height)
    assert (scene.width, scene.height) != (LEGO_SIZE, LEGO_SIZE)
    assert not scene.ndc and np.all(np.abs(scene.aabb.numpy()) <= 1.5 + 1e-6)


def test_two_images_are_too_few(tmp_path: Path) -> None:
    for seed in range(2):
        write_jpeg(tmp_path / f"{seed}.jpg", seed)
    with pytest.raises(SceneError, match="2 usable images of 2; structure-from-motion needs at least 3") as info:
        run_sfm(tmp_path)
    assert info.value.path == str(tmp_path)


def test_identical_images(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "a.jpg", 0)
    for name in ("b.jpg", "c.jpg", "d.jpg"):
        shutil.copy(tmp_path / "a.jpg", tmp_path / name)
    with pytest.raises(SceneError, match=r"1 usable images of 4.*b\.jpg \(same content as a\.jpg\)"):
        run_sfm(tmp_path)


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "clip.wav").write_bytes(b"RIFF")
    with pytest.raises(SceneError, match="no JPG/PNG images"):
        run_sfm(tmp_path)


def test_corrupt_jpeg(tmp_path: Path) -> None:
    for seed in range(3):
        write_jpeg(tmp_path / f"{seed}.jpg", seed)
    (tmp_path / "2.jpg").write_bytes((tmp_path / "2.jpg").read_bytes()[:300])
    with pytest.raises(SceneError, match=r"left out: 2\.jpg \(cannot read image"):
        run_sfm(tmp_path)


def test_mixed_sizes(tmp_path: Path) -> None:
    for seed, size in enumerate([(64, 48), (80, 60), (80, 60)]):
        write_jpeg(tmp_path / f"{seed}.jpg", seed, size)
    with pytest.raises(SceneError, match=r"2 usable images of 3.*left out: 0\.jpg \(64x48, unlike the 80x60 of most images\)"):
        run_sfm(tmp_path)


def test_mixed_orientation_is_left_out(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "a.jpg", 0)
    write_jpeg(tmp_path / "b.jpg", 1)
    write_jpeg(tmp_path / "c.jpg", 2, Orientation=6)  # stored landscape, shown portrait
    with pytest.raises(SceneError, match=r"2 usable images of 3.*c\.jpg \(portrait, unlike most images; a scene takes photos of one orientation\)"):
        run_sfm(tmp_path)


def test_two_cameras_are_left_out(tmp_path: Path) -> None:
    write_jpeg(tmp_path / "a.jpg", 0, Make="Canon", Model="X1")
    write_jpeg(tmp_path / "b.jpg", 1, Make="Canon", Model="X1")
    write_jpeg(tmp_path / "c.jpg", 2, Make="Apple", Model="iPhone")
    with pytest.raises(SceneError, match=r"c\.jpg \(taken with Apple iPhone, unlike the Canon X1 of most images; SfM here estimates one camera\)"):
        run_sfm(tmp_path)


def test_exif_orientation_is_honoured(tmp_path: Path) -> None:
    for seed in range(3):
        write_jpeg(tmp_path / f"{seed}.jpg", seed, Orientation=6)
    with pytest.raises(SceneError, match="only 0 of 3 images registered"):  # noise: nothing matches
        run_sfm(tmp_path)
    copy = np.asarray(Image.open(tmp_path / "colmap" / "images" / "0.jpg"), dtype=float)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "0.jpg")), dtype=float)
    assert copy.shape == upright.shape == (64, 48, 3) and np.abs(copy - upright).mean() < 8  # JPEG again


def test_colmap_flags_match_sfm() -> None:
    assert colmap_command.MATCHERS == sfm.MATCHERS and colmap_command.MAPPERS == sfm.MAPPERS
    assert colmap_command.DEFAULT_MAX_SIZE == sfm.DEFAULT_MAX_SIZE
    assert (colmap_command.EXHAUSTIVE_MAX_IMAGES, colmap_command.MAX_DEFAULT_THREADS) == (sfm.EXHAUSTIVE_MAX_IMAGES, sfm.MAX_DEFAULT_THREADS)


def test_loop_closing_pairs() -> None:
    names = [f"{i:02d}.jpg" for i in range(30)]
    assert sfm._loop_pairs(names, 3) == [(names[a], names[b]) for a, b in [(0, 27), (0, 28), (0, 29), (1, 28), (1, 29), (2, 29)]]
    assert sfm._loop_pairs(names[:4], 3) == []  # sequential matching already pairs them all


def test_unregistered_majority_stops_with_advice(tmp_path: Path) -> None:
    for seed in range(4):  # unrelated noise images: nothing matches
        write_jpeg(tmp_path / f"{seed}.jpg", seed, (160, 120))
    with pytest.raises(SceneError, match=r"only 0 of 4 images registered \(exhaustive matching\); try .*overlap.*blurry.*--matcher sequential"):
        run_sfm(tmp_path)


def test_colmap_command_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for seed in range(2):
        write_jpeg(tmp_path / f"{seed}.jpg", seed)
    assert main(["colmap", str(tmp_path), "--matcher", "sequential"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"tensorfields colmap: error: {tmp_path}: ") and "\n" not in error


def test_video_frames_drop_the_blurry_ones(tmp_path: Path) -> None:
    texture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 256, 3), dtype=np.uint8))
    texture = texture.filter(ImageFilter.GaussianBlur(1))
    frames = [np.asarray(texture.crop((4 * i, 0, 4 * i + 128, 96))) for i in range(30)]
    blurred = (12, 22)
    for i in blurred:
        frames[i] = np.asarray(Image.fromarray(frames[i]).filter(ImageFilter.GaussianBlur(3)))
    video = tmp_path / "walk.mp4"
    iio.imwrite(video, np.stack(frames), fps=10, quality=10, macro_block_size=1)

    out = extract_frames(video, fps=5.0)  # every 2nd frame: 15 samples, 2 of them blurred
    assert out == tmp_path / "walk_frames"
    record = json.loads((out / "frames.json").read_text())
    assert record["dropped"] == [f"frame_{i // 2:05d}.jpg" for i in blurred]
    assert len(sorted(out.glob("*.jpg"))) == 13
    assert extract_frames(video, fps=5.0) == out  # reused
    with pytest.raises(SceneError, match="at 5.0 fps; delete it to extract at 2 fps"):
        extract_frames(video, fps=2.0)


def test_train_accepts_fps() -> None:
    from apps.cli import build_parser

    args = build_parser().parse_args(["train", "--data", "clip.mp4", "--out", "runs/x", "--fps", "3"])
    assert args.fps == 3.0


def _ring(count: int, radius: float = 4.0) -> np.ndarray:
    """OpenCV cameras on a horizontal circle looking at the origin, `[N, 4, 4]`."""
    c2w = np.tile(np.eye(4), (count, 1, 1))
    for i, angle in enumerate(np.linspace(0, 2 * np.pi, count, endpoint=False)):
        eye = radius * np.array([np.cos(angle), np.sin(angle), 0.3])
        forward = -eye / np.linalg.norm(eye)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        c2w[i, :3, :3] = np.stack([right, np.cross(forward, right), forward], axis=1)
        c2w[i, :3, 3] = eye
    return c2w


def _grid() -> np.ndarray:
    """OpenCV cameras on a small planar grid, all looking along +z, `[N, 4, 4]`."""
    c2w = np.tile(np.eye(4), (9, 1, 1))
    xs, ys = np.meshgrid(np.linspace(-0.3, 0.3, 3), np.linspace(-0.2, 0.2, 3))
    c2w[:, 0, 3], c2w[:, 1, 3] = xs.ravel(), ys.ravel()
    return c2w


def test_forward_facing_detection() -> None:
    in_front = np.random.default_rng(0).normal(size=(500, 3)) * 0.5 + [0.0, 0.0, 4.0]
    around_origin = np.random.default_rng(0).normal(size=(500, 3)) * 0.5
    assert is_forward_facing(_grid(), in_front)
    assert not is_forward_facing(_ring(12), around_origin)
    assert not is_forward_facing(_ring(36)[:8], around_origin)  # a 70-degree arc around an object


def test_normalized_object_world_fits_the_blender_box() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(5000, 3)) * [0.5, 0.3, 0.4]
    c2w = _ring(12)
    turn = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])  # an SfM world: turned, scaled, moved
    c2w[:, :3, :3] = turn @ c2w[:, :3, :3]
    c2w[:, :3, 3] = 0.5 * c2w[:, :3, 3] @ turn.T + [10.0, -3.0, 2.0]
    bounds = normalize_world(c2w, 0.5 * points @ turn.T + [10.0, -3.0, 2.0])
    assert not bounds.forward_facing
    assert np.all(np.abs(bounds.aabb) <= 1.5 + 1e-9) and np.isclose(np.abs(bounds.aabb).max(), 1.5)
    up = -bounds.c2w[:, :3, 1].mean(0)
    assert np.allclose(up / np.linalg.norm(up), [0.0, 0.0, 1.0], atol=1e-6)
    distance = np.linalg.norm(bounds.c2w[:, :3, 3], axis=1)
    assert 0 < bounds.near < distance.min() and distance.max() < bounds.far
