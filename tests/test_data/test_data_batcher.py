"""RayBatcher: epoch coverage, colours, shapes and determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from data import Cameras, PixelBatch, RayBatcher, Scene

N, H, W = 3, 5, 7


def small_scene() -> Scene:
    """Three random 7x5 images; images 0 and 2 train, image 1 validates."""
    images = torch.randint(0, 256, (N, H, W, 3), dtype=torch.uint8)
    c2w = torch.eye(4).repeat(N, 1, 1)
    cameras = Cameras(c2w=c2w, fx=5.0, fy=5.0, cx=3.5, cy=2.5, width=W, height=H)
    return Scene(
        images=images,
        cameras=cameras,
        aabb=torch.tensor([[-1.0] * 3, [1.0] * 3]),
        near=0.1,
        far=5.0,
        background=torch.zeros(3),
        splits={"train": torch.tensor([0, 2]), "val": torch.tensor([1])},
        source=Path("memory"),
        kind="test",
    )


def drain(batcher: RayBatcher, pixels: int) -> PixelBatch:
    """Concatenate batches until at least `pixels` pixels, then cut to exactly that many."""
    batches = [batcher.next() for _ in range(-(-pixels // batcher.batch_size))]
    fields = ("camera_indices", "x", "y", "rgb")
    return PixelBatch(*(torch.cat([getattr(b, k) for b in batches])[:pixels] for k in fields))


@pytest.mark.parametrize("batch_size", [4, 14, 200])
def test_every_pixel_once_per_epoch(batch_size: int) -> None:
    scene = small_scene()
    batcher = RayBatcher(scene, batch_size=batch_size, seed=3)
    per_epoch = 2 * H * W
    assert batcher.num_pixels == per_epoch
    everything = drain(batcher, 3 * per_epoch)
    expected = sorted((c, y, x) for c in (0, 2) for y in range(H) for x in range(W))
    for epoch in range(3):
        part = slice(epoch * per_epoch, (epoch + 1) * per_epoch)
        keys = zip(
            everything.camera_indices[part].tolist(),
            (everything.y[part] - 0.5).long().tolist(),
            (everything.x[part] - 0.5).long().tolist(),
        )
        assert sorted(keys) == expected
    assert batcher.epoch >= 2


def test_colours_match_sampled_pixels() -> None:
    scene = small_scene()
    batch = RayBatcher(scene, split="val", batch_size=50, seed=1).next()
    assert (batch.camera_indices == 1).all()
    rows, cols = (batch.y - 0.5).long(), (batch.x - 0.5).long()
    expected = scene.images[batch.camera_indices, rows, cols].float() / 255
    torch.testing.assert_close(batch.rgb, expected)


def test_shapes_and_dtypes() -> None:
    batch = RayBatcher(small_scene(), batch_size=16).next()
    assert len(batch) == 16
    assert batch.camera_indices.shape == (16,) and batch.camera_indices.dtype == torch.int64
    assert batch.x.shape == batch.y.shape == (16,)
    assert batch.x.dtype == batch.y.dtype == batch.rgb.dtype == torch.float32
    assert batch.rgb.shape == (16, 3) and 0 <= batch.rgb.min() and batch.rgb.max() <= 1
    assert ((batch.x - 0.5) % 1 == 0).all() and (batch.x < W).all() and (batch.y < H).all()


def test_seeded_batches_repeat() -> None:
    scene = small_scene()
    first = RayBatcher(scene, batch_size=8, seed=7)
    second = RayBatcher(scene, batch_size=8, generator=torch.Generator().manual_seed(7))
    for _ in range(12):
        a, b = next(first), next(second)
        assert torch.equal(a.camera_indices, b.camera_indices) and torch.equal(a.x, b.x)


def test_rejects_bad_arguments() -> None:
    scene = small_scene()
    with pytest.raises(ValueError, match="batch_size"):
        RayBatcher(scene, batch_size=0)
    scene.splits["test"] = torch.tensor([], dtype=torch.long)
    with pytest.raises(ValueError, match="no images"):
        RayBatcher(scene, split="test")
