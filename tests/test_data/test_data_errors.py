"""Bad scene input: each case raises one one-line `SceneError` naming the offending file."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from data import SceneError, load_scene

POSE = np.eye(4).tolist()


def write_image(path: Path, width: int = 8, height: int = 6) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.full((height, width, 3), 128, np.uint8))


def write_transforms(folder: Path, count: int = 3, name: str = "transforms.json", **meta) -> Path:
    """A valid transforms file over `count` 8x6 images (written), with `meta` merged in."""
    frames = []
    for i in range(count):
        write_image(folder / f"images/{i}.png")
        frames.append({"file_path": f"images/{i}.png", "transform_matrix": POSE})
    path = folder / name
    path.write_text(json.dumps({"camera_angle_x": 0.8, "frames": frames, **meta}))
    return path


def assert_scene_error(folder: Path, expected_path: Path, *words: str) -> None:
    with pytest.raises(SceneError) as info:
        load_scene(folder)
    error = info.value
    message = str(error)
    assert error.path == str(expected_path), message
    assert message.startswith(f"{expected_path}: ") and "\n" not in message
    for word in words:
        assert word in message


def test_missing_path(tmp_path: Path) -> None:
    assert_scene_error(tmp_path / "nowhere", tmp_path / "nowhere", "no such")


def test_empty_folder(tmp_path: Path) -> None:
    assert_scene_error(tmp_path, tmp_path, "empty")


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert_scene_error(tmp_path, tmp_path, "no scene found")


def test_folder_of_images_needs_sfm(tmp_path: Path) -> None:
    write_image(tmp_path / "images/a.jpg")
    write_image(tmp_path / "images/b.jpg")
    assert_scene_error(tmp_path, tmp_path, "2 images", f"tensorfields colmap {tmp_path}")


def test_missing_image_file(tmp_path: Path) -> None:
    write_transforms(tmp_path, name="transforms_train.json")
    (tmp_path / "images/1.png").unlink()
    assert_scene_error(tmp_path, tmp_path / "images/1.png", "not found", "transforms_train.json")


def test_corrupt_image(tmp_path: Path) -> None:
    write_transforms(tmp_path)
    (tmp_path / "images/2.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image" * 10)
    assert_scene_error(tmp_path, tmp_path / "images/2.png", "cannot read image")


def test_no_frames(tmp_path: Path) -> None:
    path = write_transforms(tmp_path, frames=[])
    assert_scene_error(tmp_path, path, "no frames")


def test_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "transforms_train.json"
    path.write_text('{"camera_angle_x": 0.8, "frames": [')
    assert_scene_error(tmp_path, path, "invalid JSON")


@pytest.mark.parametrize("keypoints", ["many", [[1.0, 2.0]], [[1.0, 2.0, -3.0]], [[1.0, float("nan"), 3.0]]])
def test_bad_keypoints(tmp_path: Path, keypoints: object) -> None:
    path = write_transforms(tmp_path)
    meta = json.loads(path.read_text())
    meta["frames"][0]["keypoints"] = [[4.0, 3.0, 1.5]]
    meta["frames"][2]["keypoints"] = keypoints
    path.write_text(json.dumps(meta))
    assert_scene_error(tmp_path, path, "frame 2", "'keypoints'")


def test_keypoints_follow_the_downsampled_images(tmp_path: Path) -> None:
    box = {"aabb": [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]], "near": 0.1, "far": 5.0}  # the cameras all stand in one place
    path = write_transforms(tmp_path, **box)
    meta = json.loads(path.read_text())
    meta["frames"][1]["keypoints"] = [[4.0, 3.0, 1.5], [6.0, 2.0, 2.5]]
    path.write_text(json.dumps(meta))
    keypoints = load_scene(tmp_path, downsample=2.0).keypoints
    assert keypoints.tolist() == [[1.0, 2.0, 1.5, 1.5], [1.0, 3.0, 1.0, 2.5]]
    write_transforms(tmp_path / "none", **box)
    assert load_scene(tmp_path / "none").keypoints is None


def test_transform_matrix_not_4x4(tmp_path: Path) -> None:
    path = write_transforms(tmp_path, name="transforms_train.json")
    meta = json.loads(path.read_text())
    meta["frames"][1]["transform_matrix"] = np.eye(4)[:3].tolist()
    path.write_text(json.dumps(meta))
    assert_scene_error(tmp_path, path, "frame 1", "4x4")


@pytest.mark.parametrize(
    ("rotation", "problem"),
    [
        (np.zeros((3, 3)), "all zeros"),
        (np.diag([1.0, 1.0, 0.0]), "not orthogonal"),
        (np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), "not orthogonal"),
        (np.diag([1.0, 1.0, -1.0]), "reflection"),
    ],
)
def test_transform_matrix_not_a_pose(tmp_path: Path, rotation: np.ndarray, problem: str) -> None:
    path = write_transforms(tmp_path)
    meta = json.loads(path.read_text())
    pose = np.eye(4)
    pose[:3, :3] = rotation
    meta["frames"][2]["transform_matrix"] = pose.tolist()
    path.write_text(json.dumps(meta))
    assert_scene_error(tmp_path, path, "frame 2 (images/2.png)", "not a camera pose", problem)


def test_scaled_rotation_is_a_pose(tmp_path: Path) -> None:
    """Exporters that bake a uniform scale into the rotation block still load, as rotations."""
    path = write_transforms(tmp_path, aabb=[[-1, -1, -1], [1, 1, 1]], near=0.1, far=5.0)
    meta = json.loads(path.read_text())
    meta["frames"][1]["transform_matrix"] = (np.diag([2.0, 2.0, 2.0, 1.0])).tolist()
    path.write_text(json.dumps(meta))
    rotations = load_scene(tmp_path).cameras.c2w[:, :3, :3]
    assert np.allclose(rotations[1] @ rotations[1].T, np.eye(3), atol=1e-6)


def test_llff_pose_not_a_pose(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / f"images/{i}.png")
    pose = np.concatenate([np.eye(3), np.zeros((3, 1)), np.array([[6.0], [8.0], [10.0]])], axis=1)
    poses = np.stack([pose.copy() for _ in range(3)])
    poses[1, :, :3] = 0.0
    array = np.concatenate([poses.reshape(3, 15), np.tile([1.0, 5.0], (3, 1))], axis=1)
    np.save(tmp_path / "poses_bounds.npy", array)
    assert_scene_error(tmp_path, tmp_path / "poses_bounds.npy", "pose 1", "all zeros")


def test_inconsistent_image_sizes(tmp_path: Path) -> None:
    write_transforms(tmp_path)
    write_image(tmp_path / "images/1.png", width=10)
    assert_scene_error(tmp_path, tmp_path / "images/1.png", "10x6", "8x6")


def test_image_size_disagrees_with_json(tmp_path: Path) -> None:
    write_transforms(tmp_path, w=16, h=12)
    assert_scene_error(tmp_path, tmp_path / "images/0.png", "8x6", "16x12")


def test_frames_declare_different_sizes(tmp_path: Path) -> None:
    path = write_transforms(tmp_path, w=8, h=6)
    meta = json.loads(path.read_text())
    meta["frames"][2].update(w=4, h=3)
    path.write_text(json.dumps(meta))
    assert_scene_error(tmp_path, path, "different image sizes")


def test_missing_focal_length(tmp_path: Path) -> None:
    path = write_transforms(tmp_path)
    meta = json.loads(path.read_text())
    del meta["camera_angle_x"]
    path.write_text(json.dumps(meta))
    assert_scene_error(tmp_path, path, "frame 0", "focal")


def test_llff_pose_count_mismatch(tmp_path: Path) -> None:
    hwf = [[6], [8], [10]]
    row = np.concatenate([np.hstack([np.eye(3), np.zeros((3, 1)), hwf]).ravel(), [1, 5]])
    np.save(tmp_path / "poses_bounds.npy", np.stack([row] * 3))
    write_image(tmp_path / "images/a.png")
    write_image(tmp_path / "images/b.png")
    assert_scene_error(tmp_path, tmp_path / "poses_bounds.npy", "3 poses but 2 images")


def test_llff_bad_poses_array(tmp_path: Path) -> None:
    np.save(tmp_path / "poses_bounds.npy", np.zeros((3, 15)))
    assert_scene_error(tmp_path, tmp_path / "poses_bounds.npy", "[N, 17]")


def test_downsample_below_one(tmp_path: Path) -> None:
    write_transforms(tmp_path)
    with pytest.raises(ValueError, match="downsample"):
        load_scene(tmp_path, downsample=0.5)


def test_empty_image_file(tmp_path: Path) -> None:
    write_transforms(tmp_path, name="transforms_train.json")  # a Blender scene
    (tmp_path / "images/1.png").write_bytes(b"")
    assert_scene_error(tmp_path, tmp_path / "images/1.png", "empty file (0 bytes), not an image")


def test_text_file_named_png(tmp_path: Path) -> None:
    write_transforms(tmp_path)
    (tmp_path / "images/0.png").write_text("hello, not an image")
    with pytest.raises(SceneError) as info:
        load_scene(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'images/0.png'}: cannot read image: not a PNG or JPEG image")
    assert "pip install" not in message and "plugin" not in message


@pytest.mark.parametrize("content, words", [(b"", "empty file (0 bytes), not a video"), (b"not a video", "cannot read video: Invalid data")])
def test_a_file_that_is_not_a_video(content: bytes, words: str, tmp_path: Path) -> None:
    from data.video import extract_frames

    video = tmp_path / "clip.mp4"
    video.write_bytes(content)
    with pytest.raises(SceneError) as info:
        extract_frames(video, fps=2.0)
    message = str(info.value)
    assert message.startswith(f"{video}: {words}") and "\n" not in message, message
    assert "ffmpeg version" not in message and len(message) < 200, message
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"], "no frames folder is left behind"
