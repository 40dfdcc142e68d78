"""Depth supervision from structure-from-motion keypoints (DS-NeRF's idea): every SfM point a
training photo observes is a pixel whose surface distance is known.

A capture of a dozen photos around an object is fitted, not reconstructed, by photometric loss
alone: the field paints each view on whatever lies nearest to it (a sphere far out, or the
cameras' near planes) and held-out views come out wrong. Rays through the keypoints pin the
surfaces where SfM triangulated them. Each step renders `KEYPOINT_RAYS` of them and adds
`DEPTH_WEIGHT` times the mean of `render.losses.depth_error`: the weights' spread around the
keypoint's distance in log space (a wall 20 radii away weighs as much as the object in front of
it), which also empties the space in front of it, and a term that makes the ray opaque there.
Keypoints of held-out images are never used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from data import Scene
from fields.appearance import codes_of
from render import camera_rays
from render.losses import depth_error

from ..config import TrainConfig
from .base import Strategy

if TYPE_CHECKING:
    from data import PixelBatch
    from render import RenderOutput

    from ..trainer import Trainer

__all__ = ["DepthSupervision", "KEYPOINT_RAYS", "DEPTH_WEIGHT"]

#: keypoint rays rendered per step (beside the batch's pixel rays)
KEYPOINT_RAYS = 256
#: weight of the depth loss against the batch's colour MSE
DEPTH_WEIGHT = 0.1


class DepthSupervision(Strategy):
    """Adds the keypoint depth loss (module docstring) to every step."""

    name = "depth"

    def __init__(self, config: TrainConfig, scene: Scene) -> None:
        self.keypoints = scene.split_keypoints("train")
        self.generator = torch.Generator().manual_seed(config.seed)

    def on_start(self, trainer: Trainer, resumed: bool) -> list[str]:
        self.keypoints = self.keypoints.to(trainer.device)
        images = int(self.keypoints[:, 0].unique().numel())
        return [f"depth supervision: {len(self.keypoints):,} SfM keypoints of {images} training images, {KEYPOINT_RAYS} rays a step"]

    def loss(self, trainer: Trainer, batch: PixelBatch, output: RenderOutput) -> torch.Tensor:
        pick = torch.randint(len(self.keypoints), (KEYPOINT_RAYS,), generator=self.generator).to(trainer.device)
        image, x, y, target = self.keypoints[pick].unbind(-1)
        image = image.long()
        code = trainer.code_of_image[image] if codes_of(trainer.field) is not None else None
        rays = camera_rays(trainer.training_cameras(), image, x, y, trainer.ndc, code)
        output = trainer.model(rays, jitter=True, generator=trainer.generator, with_samples=True)
        return DEPTH_WEIGHT * depth_error(output.samples, target).mean()
