"""Depth supervision from SfM keypoints: which keypoints it uses, when it is on, and that the
field's depth follows them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from conftest import small_config

from apps.training import TrainConfig, Trainer
from apps.training.config import supervises_depth
from data import load_scene
from render import camera_rays


def _keypoints(scene, images: list[int], per_image: int, scale: float) -> torch.Tensor:
    """Keypoints `[K, 4]` on the sphere (radius 0.5 at the origin) of the sphere scene, at pixels
    that see it, with distances `scale` times the true ones."""
    rows = []
    g = torch.Generator().manual_seed(0)
    for image in images:
        x = torch.rand(200 * per_image, generator=g) * scene.width
        y = torch.rand(200 * per_image, generator=g) * scene.height
        rays = camera_rays(scene.cameras, torch.full((len(x),), image), x, y)
        b = (rays.origins * rays.directions).sum(-1)
        disc = b**2 - ((rays.origins**2).sum(-1) - 0.25)
        hit = disc > 0.01
        t = -b[hit] - disc[hit].sqrt()
        assert len(t) >= per_image
        rows.append(torch.stack([torch.full_like(t, image), x[hit], y[hit], scale * t], 1)[:per_image])
    return torch.cat(rows)


def test_only_training_images_keypoints_are_used(sphere_scene: Path) -> None:
    scene = load_scene(sphere_scene)
    held_out = int(scene.split("val")[0])
    train = scene.split("train").tolist()
    keypoints = _keypoints(scene, [train[0], held_out, train[1]], 5, 1.0)
    used = dataclasses.replace(scene, keypoints=keypoints).split_keypoints("train")
    assert len(used) == 10 and held_out not in used[:, 0].long().tolist()
    assert len(scene.split_keypoints("train")) == 0  # a scene without keypoints


def test_depth_supervision_is_on_where_there_are_keypoints(sphere_scene: Path) -> None:
    scene = load_scene(sphere_scene)
    with_points = dataclasses.replace(scene, keypoints=_keypoints(scene, scene.split("train").tolist()[:2], 4, 1.0))
    auto = TrainConfig(data="x")
    assert supervises_depth(auto, with_points) and not supervises_depth(auto, scene)
    assert not supervises_depth(dataclasses.replace(auto, depth_supervision="off"), with_points)
    assert not supervises_depth(auto, dataclasses.replace(with_points, ndc=True))  # NDC rays: not supported
    with pytest.raises(ValueError, match="no SfM keypoints"):
        supervises_depth(dataclasses.replace(auto, depth_supervision="on"), scene)


def _depth_error(trainer: Trainer, keypoints: torch.Tensor) -> float:
    image, x, y, target = keypoints.unbind(-1)
    rays = camera_rays(trainer.cameras, image.long(), x, y)
    with torch.no_grad():
        output = trainer.model.render_progressive(rays)
    depth = output.depth / output.opacity.clamp(min=1e-3)
    return float((torch.log(depth) - torch.log(target)).abs().median())


def test_the_depth_loss_moves_surfaces_to_the_keypoints(sphere_scene: Path, tmp_path: Path) -> None:
    """A field trained on the sphere's photos; keypoints that claim its surface is at 0.8 of its
    distance. Steps on the strategy's loss alone move the rendered depth of their rays there."""
    scene = load_scene(sphere_scene)
    keypoints = _keypoints(scene, scene.split("train").tolist(), 40, 0.8)
    trainer = Trainer(small_config(sphere_scene, tmp_path / "run", iters=60), dataclasses.replace(scene, keypoints=keypoints))
    strategy = trainer.strategy("depth")
    assert strategy is not None  # auto: the scene has keypoints
    trainer.strategies.remove(strategy)  # photometric training first
    while not trainer.done:
        trainer.step()
    before = _depth_error(trainer, keypoints)
    assert before > 0.15  # the sphere where the photos put it: log(0.8) away from the keypoints
    strategy.on_start(trainer, resumed=False)
    trainer.grid.occupied.fill_(True)  # the cells in front of the sphere were carved away as empty
    for group in trainer.optimizer.param_groups:
        group["lr"] = group["initial_lr"]  # undecayed, as early in a run
    for _ in range(60):
        trainer.optimizer.zero_grad(set_to_none=True)
        strategy.loss(trainer, None, None).backward()
        trainer.optimizer.step()
    assert _depth_error(trainer, keypoints) < 0.5 * before


def test_a_run_with_keypoints_adds_their_loss_to_every_step(sphere_scene: Path, tmp_path: Path) -> None:
    scene = load_scene(sphere_scene)
    scene = dataclasses.replace(scene, keypoints=_keypoints(scene, scene.split("train").tolist(), 20, 1.0))
    extra = {}
    for mode in ("off", "on"):
        trainer = Trainer(small_config(sphere_scene, tmp_path / mode, iters=5, depth_supervision=mode), scene)
        stats = trainer.step()
        extra[mode] = stats["loss"] - 10.0 ** (-stats["psnr"] / 10.0)  # what the loss adds to the batch's error
    assert extra["on"] > extra["off"] + 1e-4  # the same first batch (same seed), plus the depth term
