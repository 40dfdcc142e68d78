"""SfM point clouds as PLY files: nerfstudio's `sparse_pc.ply`.

nerfstudio's `ns-process-data` writes the COLMAP points next to `transforms.json`, in its frame,
as a binary PLY with one `vertex` element of `x, y, z` (float) and `red, green, blue` (uchar), and
names it in the file's `ply_file_path`; `tensorfields colmap` writes the same file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .scene import SceneError

__all__ = ["POINTS_FILE", "read_points", "write_points"]

POINTS_FILE = "sparse_pc.ply"
_COORDINATES = ("x", "y", "z")
_COLOURS = ("red", "green", "blue")


def write_points(path: Path, points: np.ndarray, colours: np.ndarray) -> None:
    """Write a binary PLY of `points [P, 3]` (stored as float32) and their RGB `colours [P, 3]`
    (uint8), atomically (a temporary file, renamed)."""
    from plyfile import PlyData, PlyElement  # imported only when points are written

    vertices = np.empty(len(points), dtype=[(name, "f4") for name in _COORDINATES] + [(name, "u1") for name in _COLOURS])
    for i, name in enumerate(_COORDINATES):
        vertices[name] = points[:, i]
    for i, name in enumerate(_COLOURS):
        vertices[name] = colours[:, i]
    partial = path.with_name(path.name + ".partial")
    PlyData([PlyElement.describe(vertices, "vertex")], text=False).write(str(partial))
    partial.replace(path)


def read_points(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The points of a PLY file's `vertex` element (binary or text).

    Returns:
        `[P, 3]` float32 `x, y, z`, and `[P, 3]` uint8 `red, green, blue` (None when the file
        does not have all three; float colours are taken as [0, 1] and scaled to 0..255).
    Raises:
        SceneError: naming the file: missing or unreadable, no vertex element, no `x, y, z`, or
            coordinates that are not finite.
    """
    from plyfile import PlyData  # imported only when a scene has points

    try:
        ply = PlyData.read(str(path))
    except FileNotFoundError:
        raise SceneError(path, "point cloud file not found (named by 'ply_file_path')") from None
    except Exception as error:  # plyfile raises several kinds for a damaged or foreign file
        why = " ".join(str(error).split()) or type(error).__name__
        raise SceneError(path, f"cannot read the point cloud as a PLY file ({why})") from None
    if "vertex" not in [element.name for element in ply.elements]:
        raise SceneError(path, "PLY file has no vertex element, so it holds no points")
    vertex = ply["vertex"]
    present = {prop.name for prop in vertex.properties}
    missing = [name for name in _COORDINATES if name not in present]
    if missing:
        raise SceneError(path, f"PLY vertices have no {', '.join(missing)} (points need x, y, z)")
    points = np.stack([np.asarray(vertex[name], dtype=np.float64) for name in _COORDINATES], 1).reshape(-1, 3)
    if not np.isfinite(points).all():
        raise SceneError(path, "PLY point coordinates must be finite numbers")
    if not all(name in present for name in _COLOURS):
        return torch.from_numpy(points.astype(np.float32)), None
    colours = np.stack([np.asarray(vertex[name]) for name in _COLOURS], 1).reshape(-1, 3)
    if np.issubdtype(colours.dtype, np.floating):
        colours = np.nan_to_num(colours, nan=0.0) * 255.0
    colours = np.clip(np.rint(colours), 0, 255).astype(np.uint8)
    return torch.from_numpy(points.astype(np.float32)), torch.from_numpy(colours)
