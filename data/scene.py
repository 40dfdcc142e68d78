"""The scene container every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .cameras import Cameras

__all__ = ["Scene", "SceneError"]


class SceneError(ValueError):
    """Bad input data. The message names the offending file and the problem in one line."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass
class Scene:
    """Images with their cameras, the scene box and the splits.

    Attributes:
        images: `[N, H, W, 3]` uint8, already composited on `background` when the source had alpha.
        cameras: `N` cameras (OpenCV camera-to-world, pixel intrinsics).
        aabb: the box the field should live in, `[2, 3]` (min, max) in world units (NDC units when
            `ndc` is set).
        near, far: ray distance bounds (used for unbounded/forward-facing scenes; for NDC rays
            near/far are 0/1 in NDC space).
        background: colour of empty space, `[3]` float in [0, 1].
        splits: index tensors per split name ("train", "val", "test"); a missing split is absent.
        ndc: forward-facing scene: rays are converted to normalized device coordinates.
        ndc_focal: focal length (pixels) and near plane used for the NDC conversion.
        alpha: optional `[N, H, W]` uint8 masks from RGBA sources.
        source: the folder the scene was loaded from; kind: which loader read it.
        downsample: the factor images were downsampled by relative to the files on disk.
        keypoints: optional `[K, 4]` float32 rows (image index, x, y, distance): pixels where
            structure from motion observed a point (pixel-centre coordinates of the loaded
            images) and that point's distance along the pixel's ray, world units.
        points: optional `[P, 3]` float32 structure-from-motion points (to initialize Gaussian
            fields), in the world frame of `cameras` (also in NDC scenes, whose `aabb` is in NDC
            units); not per image, so they stay as they are when images are subset.
        point_colours: `[P, 3]` uint8 RGB of `points`; None when the scene has no points or its
            point file has no colours.
    """

    images: torch.Tensor
    cameras: Cameras
    aabb: torch.Tensor
    near: float
    far: float
    background: torch.Tensor
    splits: dict[str, torch.Tensor]
    source: Path
    kind: str
    downsample: float = 1.0
    ndc: bool = False
    ndc_focal: float = 0.0
    ndc_near: float = 1.0
    alpha: torch.Tensor | None = None
    names: list[str] = field(default_factory=list)
    keypoints: torch.Tensor | None = None
    points: torch.Tensor | None = None
    point_colours: torch.Tensor | None = None

    @property
    def height(self) -> int:
        return self.images.shape[1]

    @property
    def width(self) -> int:
        return self.images.shape[2]

    def split(self, name: str) -> torch.Tensor:
        """Indices of a split; "val" falls back to "test" and vice versa when one is missing."""
        return self.splits[self.split_name(name)]

    def split_keypoints(self, name: str) -> torch.Tensor:
        """The rows of `keypoints` that belong to the images of split `name`, `[K, 4]`; empty
        when the scene has none."""
        if self.keypoints is None:
            return torch.zeros(0, 4)
        chosen = torch.zeros(len(self.images), dtype=torch.bool)
        chosen[self.split(name)] = True
        return self.keypoints[chosen[self.keypoints[:, 0].long()]]

    def split_name(self, name: str) -> str:
        """The split that `split(name)` returns: `name`, or its val/test stand-in."""
        if name in self.splits:
            return name
        fallback = {"val": "test", "test": "val"}.get(name)
        if fallback in self.splits:
            return fallback
        raise KeyError(f"{self.source}: scene has no '{name}' split (has {sorted(self.splits)})")
