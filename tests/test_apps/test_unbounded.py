"""Unbounded scenes end to end: when contraction is chosen, a short run on the demo parts in a
textured room, and what a user does with the result (resume, render, the foreground's mesh)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small_config

from apps.export.mesh import export_mesh
from apps.runs import load_checkpoint
from apps.training import TrainConfig, Trainer, train_run
from apps.training.config import DISTORTION_WEIGHT, distortion_weight, uses_contraction
from data import build_demo_scene, load_scene
from fields import Field
from render import CONTRACTED_AABB, Contraction, Model, OccupancyGrid, RenderSettings


@pytest.fixture(scope="module")
def room_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_scene(tmp_path_factory.mktemp("room"), size=32, views=(16, 2, 2), supersample=1, room=True)


def test_contraction_is_chosen_for_photos_around_an_object(room_scene: Path, sphere_scene: Path) -> None:
    photos, render = load_scene(room_scene), load_scene(sphere_scene)
    auto = TrainConfig(data="x")
    assert photos.alpha is None and uses_contraction(auto, photos)
    assert not uses_contraction(auto, dataclasses.replace(photos, kind="blender"))
    assert not uses_contraction(auto, render)  # a render with alpha masks: bounded
    assert uses_contraction(dataclasses.replace(auto, contraction="on"), render)
    assert not uses_contraction(dataclasses.replace(auto, contraction="off"), photos)
    forward = dataclasses.replace(photos, ndc=True)
    assert not uses_contraction(auto, forward)
    with pytest.raises(ValueError, match="forward-facing"):
        uses_contraction(dataclasses.replace(auto, contraction="on"), forward)


def test_distortion_loss_is_on_for_unbounded_scenes_and_in_the_training_loss(room_scene: Path, tmp_path: Path) -> None:
    auto = TrainConfig(data="x")
    assert distortion_weight(auto, contracted=True) == DISTORTION_WEIGHT and distortion_weight(auto, contracted=False) == 0.0
    assert distortion_weight(dataclasses.replace(auto, distortion=0.0), contracted=True) == 0.0
    scene = load_scene(room_scene)
    losses = {}
    for weight in (0.0, 0.5):
        trainer = Trainer(small_config(room_scene, tmp_path / str(weight), iters=10, appearance="off", distortion=weight), scene)
        assert trainer.distortion_weight == weight
        stats = trainer.step()
        losses[weight] = stats["loss"] - 10.0 ** (-stats["psnr"] / 10.0)  # what the loss adds to the batch's error
    assert losses[0.5] > losses[0.0] + 1e-6  # the same first batch (same seed), plus the distortion term


def test_unbounded_run_models_the_room(room_scene: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    lines: list[str] = []
    config = small_config(room_scene, out, iters=60, appearance="off")
    metrics = train_run(config, log=lines.append)
    assert any(line.startswith("unbounded scene: space beyond the foreground ball") for line in lines)
    model = load_checkpoint(out).model
    contraction = model.settings.contraction
    assert contraction is not None and contraction.radius == pytest.approx(2.0, rel=1e-3)  # cameras at 4 around the parts
    assert model.field.aabb.abs().max() == 2.0  # the field fills contracted space
    # the room is there: a held-out view is far from black, which is all a bounded box would show
    scene = load_scene(room_scene)
    index = int(scene.split("val")[0])
    image = model.render_image(scene.cameras, index)
    assert image["opacity"].min() > 0.9
    truth = scene.images[index].float() / 255.0
    black = -10.0 * torch.log10((truth**2).mean())
    assert metrics["psnr"] > black + 3.0


class _Ball(Field):
    """Opaque grey inside the ball of radius `BALL` of field (contracted) space, empty outside."""

    name = "test-ball"

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("aabb", torch.tensor(CONTRACTED_AABB))

    def density(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x.norm(dim=-1) < BALL, 50.0, 0.0)

    def radiance(self, x: torch.Tensor, d: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        return torch.full_like(x, 0.5)


BALL = 0.4


def test_mesh_of_an_unbounded_model_is_its_foreground_in_world_units(tmp_path: Path) -> None:
    contraction = Contraction((1.0, 2.0, -0.5), 2.0)
    grid = OccupancyGrid(torch.tensor(CONTRACTED_AABB), 32)
    model = Model(_Ball(), grid, RenderSettings(step_size=0.02, near=0.05, far=1e10, contraction=contraction))
    mesh = export_mesh(model, tmp_path / "ball.ply", "mc", 48)
    distances = np.linalg.norm(np.asarray(mesh.vertices) - np.asarray(contraction.center), axis=1)
    spacing = 2.0 * contraction.radius / 47  # the foreground cube, 48 points a side
    assert abs(np.median(distances) - BALL * contraction.radius) < spacing
    assert np.abs(distances - BALL * contraction.radius).max() < 1.5 * spacing


def test_unbounded_run_resumes_with_its_contraction(room_scene: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_run(small_config(room_scene, out, iters=10, appearance="off"), log=lambda _: None)
    config = small_config(room_scene, out, iters=20, appearance="off")
    resumed = Trainer(config, load_scene(room_scene), resume=True)
    assert resumed.state.iteration == 10 and resumed.model.settings.contraction is not None
    assert resumed.scene.aabb.abs().max() == 2.0
    resumed.step()
