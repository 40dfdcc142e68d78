"""Random pixel batches over the training images (rays are made from them in `render`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .scene import Scene

__all__ = ["PixelBatch", "RayBatcher"]


@dataclass
class PixelBatch:
    """A batch of pixels.

    Attributes:
        camera_indices: index into the scene's cameras and images, `[B]` int64.
        x, y: pixel-centre coordinates (column + 0.5, row + 0.5), `[B]` float32 each.
        rgb: the pixels' colours in [0, 1], `[B, 3]` float32.
    """

    camera_indices: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    rgb: torch.Tensor

    def __len__(self) -> int:
        return self.camera_indices.shape[0]


class RayBatcher:
    """Samples pixels of one split in epochs, like TensoRF's `SimpleSampler`.

    Each epoch is a fresh random permutation of every pixel of every image in the split, so no
    pixel repeats within an epoch; a batch that crosses an epoch boundary takes the rest of one
    permutation and the start of the next, so every pixel is drawn exactly once per epoch.
    Images stay uint8 on the CPU; only the sampled pixels are converted and moved to `device`.

    Args:
        scene: the scene to sample.
        split: which split's images to draw from.
        batch_size: pixels per batch.
        seed: seeds a private generator when `generator` is not given.
        generator: CPU random generator for the permutations.
        device: where the batches go.
    """

    def __init__(
        self,
        scene: Scene,
        split: str = "train",
        batch_size: int = 4096,
        seed: int = 0,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.image_indices = scene.split(split).long()
        if len(self.image_indices) == 0:
            raise ValueError(f"{scene.source}: split '{split}' has no images")
        self.pixels = scene.images.reshape(-1, 3)  # [N * H * W, 3] uint8 view
        self.width, self.height = scene.width, scene.height
        self.num_pixels = len(self.image_indices) * self.width * self.height
        self.batch_size = batch_size
        self.generator = generator if generator is not None else torch.Generator().manual_seed(seed)
        self.device = torch.device(device)
        self.epoch = 0  # completed epochs
        self._order = self._permutation()
        self._cursor = 0

    def _permutation(self) -> torch.Tensor:
        """A random order of the split's pixel ids, `[num_pixels]` (int32 when it fits)."""
        dtype = torch.int32 if self.num_pixels < 2**31 else torch.int64
        return torch.randperm(self.num_pixels, generator=self.generator, dtype=dtype)

    def _take(self, count: int) -> torch.Tensor:
        """The next `count` pixel ids, `[count]` int64, starting new epochs as needed."""
        chunks = []
        while count > 0:
            if self._cursor == self.num_pixels:
                self._order, self._cursor = self._permutation(), 0
                self.epoch += 1
            chunk = self._order[self._cursor : self._cursor + count]
            self._cursor += len(chunk)
            count -= len(chunk)
            chunks.append(chunk)
        return torch.cat(chunks).long()

    def next(self) -> PixelBatch:
        """The next batch of `batch_size` pixels."""
        ids = self._take(self.batch_size)
        image_size = self.width * self.height
        cameras = self.image_indices[ids // image_size]
        pixel = ids % image_size
        rgb = self.pixels[cameras * image_size + pixel]
        return PixelBatch(
            camera_indices=cameras.to(self.device),
            x=((pixel % self.width).float() + 0.5).to(self.device),
            y=((pixel // self.width).float() + 0.5).to(self.device),
            rgb=(rgb.to(self.device).float() / 255.0),
        )

    def __iter__(self) -> "RayBatcher":
        return self

    def __next__(self) -> PixelBatch:
        return self.next()
