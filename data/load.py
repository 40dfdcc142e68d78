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

__all__ = ["load_scene", "scene_summary"]

# The file that marks each format, in the order they are tried.
LOADERS: dict[str, Callable[[Path, float], Scene]] = {
    "transforms_train.json": load_blender,
    "poses_bounds.npy": load_llff,
    "transforms.json": load_nerfstudio,
}


def load_scene(path: str | Path, downsample: float = 1.0) -> Scene:
    """Load a scene folder (or its marker file), detecting the format.

    Blender (`transforms_train.json`), LLFF (`poses_bounds.npy`) and nerfstudio / instant-ngp
    (`transforms.json`) are recognised, in that order.

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
    for marker, loader in LOADERS.items():
        if (path / marker).is_file():
            return loader(path, downsample)
    raise SceneError(path, _why_not_a_scene(path))


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
