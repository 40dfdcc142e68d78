"""Format detection: one entry point that loads any supported scene folder."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

from .blender import load_blender
from .images import list_images
from .llff import load_llff
from .nerfstudio import load_nerfstudio
from .scene import Scene, SceneError

__all__ = ["load_scene", "prepare_scene", "scene_summary"]


def _load_colmap(folder: Path, downsample: float) -> Scene:
    from .colmap import load_colmap  # pycolmap is imported only when a COLMAP project is loaded

    return load_colmap(folder, downsample)


# The file (or folder) that marks each format, in the order they are tried.
LOADERS: dict[str, Callable[[Path, float], Scene]] = {
    "transforms_train.json": load_blender,
    "poses_bounds.npy": load_llff,
    "transforms.json": load_nerfstudio,
    "sparse/0": _load_colmap,
}


def load_scene(path: str | Path, downsample: float = 1.0) -> Scene:
    """Load a scene folder (or its marker file), detecting the format.

    Blender (`transforms_train.json`), LLFF (`poses_bounds.npy`), nerfstudio / instant-ngp
    (`transforms.json`) and COLMAP projects (`sparse/0` with `images/`) are recognised, in that
    order. A folder of photos needs `prepare_scene` (structure-from-motion) first.

    Args:
        path: the scene folder, or its `transforms*.json` / `poses_bounds.npy`.
        downsample: divide the image size by this (>= 1); intrinsics are scaled to match.
    Raises:
        SceneError: the path is missing, holds no scene, or the scene's files are bad.
    """
    if not math.isfinite(downsample) or downsample < 1.0:
        raise ValueError(f"downsample must be a number >= 1, got {downsample}")
    path = Path(path).expanduser()
    if not path.exists():
        raise SceneError(path, "no such file or folder")
    if path.is_file():
        if path.name not in LOADERS:
            raise SceneError(path, f"not a scene: expected a folder or one of {', '.join(LOADERS)}")
        return LOADERS[path.name](path.parent, downsample)
    loader = _loader(path)
    if loader is None:
        raise SceneError(path, _why_not_a_scene(path))
    return loader(path, downsample)


def prepare_scene(
    path: str | Path, fps: float = 2.0, matcher: str | None = None, max_size: int | None = None, out: Path | None = None
) -> Path:
    """Make `path` loadable by `load_scene`: the path itself when it already is a scene.

    A video file becomes a folder of its sharp frames at `fps` (see `video.extract_frames`),
    matched sequentially unless `matcher` says otherwise. A folder of photos (in it or in its
    `images/`) without poses gets them from structure-from-motion (`sfm.run_sfm`), which writes
    `transforms.json` there, so later calls return at once; when that folder cannot be written,
    into `out` (and a later call finds it there).

    Args:
        max_size: long side of the images SfM uses and writes (None: `sfm.DEFAULT_MAX_SIZE`).
        out: where SfM results go when the photo folder is read-only (None: that is an error).
    Returns:
        the scene folder (or the path unchanged when it is neither; `load_scene` explains why).
    """
    from .video import extract_frames, is_video

    path = Path(path).expanduser()
    if is_video(path):
        path = extract_frames(path, fps)
        matcher = matcher or "sequential"
    if path.is_dir() and _loader(path) is None:
        from .sfm import DEFAULT_MAX_SIZE, image_folder, run_sfm  # pycolmap loads only when SfM may run

        if list_images(image_folder(path)):
            if out is not None and (out / "transforms.json").is_file():
                return out  # an earlier run's results for a read-only photo folder
            return run_sfm(path, matcher, max_size or DEFAULT_MAX_SIZE, out=out).parent
    return path


def _loader(folder: Path) -> Callable[[Path, float], Scene] | None:
    """The loader of the first format marker found in `folder`."""
    for marker, loader in LOADERS.items():
        if (folder / marker).exists():
            return loader
    return None


def _why_not_a_scene(folder: Path) -> str:
    """The problem with a folder that has none of the format marker files."""
    if not any(folder.iterdir()):
        return "empty folder: no images and no camera poses"
    subfolder = folder / "images"
    images = list_images(folder) + (list_images(subfolder) if subfolder.is_dir() else [])
    if images:
        return (
            f"{len(images)} images but no camera poses; run structure-from-motion first: "
            f"tensorfields colmap {folder}"
        )
    return f"no scene found: expected {', '.join(LOADERS)} or a folder of images"


def scene_summary(scene: Scene) -> str:
    """One line describing a scene, for logs."""
    splits = ", ".join(f"{name} {len(indices)}" for name, indices in scene.splits.items())
    low, high = (", ".join(f"{v:g}" for v in corner.tolist()) for corner in scene.aabb)
    colour = {(1.0, 1.0, 1.0): "white", (0.0, 0.0, 0.0): "black"}
    background = tuple(scene.background.tolist())
    parts = [
        f"{scene.kind} scene {scene.source}: {len(scene.images)} images "
        f"{scene.width}x{scene.height} ({splits})",
        f"downsample {scene.downsample:g}",
        f"box [{low}]..[{high}]",
        f"near {scene.near:g} far {scene.far:g}",
        f"background {colour.get(background, background)}",
    ]
    if scene.ndc:
        parts.append(f"NDC (focal {scene.ndc_focal:.1f}, near plane {scene.ndc_near:g})")
    return ", ".join(parts)
