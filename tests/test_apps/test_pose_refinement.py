"""Joint pose refinement (`apps.training.strategies.PoseRefinement`): the exponential map, the
schedule, recovery of a known perturbation, resume, and the poses written back."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from apps.bench.train import add_arguments, perturb_poses, refine_poses
from apps.evaluate import fit_poses, into_refined_frame, pose_errors
from apps.evaluate.poses import Similarity
from apps.runs import load_checkpoint, load_run_config, train_cameras
from apps.training import TrainConfig, Trainer
from apps.training.config import refines_poses
from apps.training.strategies import PoseRefinement
from apps.training.strategies.poses import FIELD_BLUR, camera_radius, schedule_value
from data import build_demo_scene, load_scene
from data.cameras import se3_exp

#: a demo scene small enough to train in seconds
DEMO = dict(size=32, views=(24, 2, 1), supersample=1)


@pytest.fixture(scope="module")
def demo_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_scene(tmp_path_factory.mktemp("demo") / "scene", seed=0, **DEMO)


def small_config(data: Path, out: Path, **overrides) -> TrainConfig:
    values = dict(data=str(data), out=str(out), iters=40, grid_init=24, grid_final=32, occupancy_resolution=32, refine_poses="on")
    return TrainConfig(**{**values, **overrides})


def test_se3_exp_matches_the_matrix_exponential() -> None:
    xi = torch.tensor([[0.3, -0.2, 0.5, 1.0, 2.0, -0.5], [1e-5, 0.0, -2e-5, 0.1, 0.0, 0.3], [0.0] * 6], dtype=torch.float64)
    for row, moved in zip(xi, se3_exp(xi)):
        twist = torch.zeros(4, 4, dtype=torch.float64)
        w = row[:3]
        twist[:3, :3] = torch.tensor([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]], dtype=torch.float64)
        twist[:3, 3] = row[3:]
        torch.testing.assert_close(moved, torch.linalg.matrix_exp(twist))
    delta = torch.zeros(2, 6, requires_grad=True)
    se3_exp(delta).sum().backward()
    assert torch.isfinite(delta.grad).all()


def test_schedule_interpolates_and_ends_at_zero() -> None:
    assert schedule_value(FIELD_BLUR, 0.0) == pytest.approx(0.1)
    assert schedule_value(FIELD_BLUR, 0.05) == pytest.approx(0.075)
    assert schedule_value(FIELD_BLUR, 0.3) == schedule_value(FIELD_BLUR, 0.9) == 0.0


def test_auto_refines_sfm_poses_only(demo_scene: Path, tmp_path: Path) -> None:
    scene = load_scene(demo_scene)  # rendered, with alpha: its poses are exact
    config = small_config(demo_scene, tmp_path, refine_poses="auto")
    assert not refines_poses(config, scene)
    photos = type(scene)(**{**scene.__dict__, "alpha": None, "kind": "colmap"})
    assert refines_poses(config, photos)
    assert not refines_poses(small_config(demo_scene, tmp_path, refine_poses="off"), photos)
    assert not refines_poses(TrainConfig(data=str(demo_scene)), photos)  # off by default, for now


def test_bench_refines_poses_when_it_perturbs_them() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--data", "scene", "--budget", "10"]
    assert refine_poses(parser.parse_args(base + ["--perturb-poses", "3,0.03"])) == "on"
    assert refine_poses(parser.parse_args(base + ["--perturb-poses", "3,0.03", "--refine-poses", "off"])) == "off"
    assert refine_poses(parser.parse_args(base)) == "off"


def test_refinement_recovers_a_known_perturbation(demo_scene: Path, tmp_path: Path) -> None:
    """A field trained on the true poses for half the run, then the run resumed on training
    cameras rotated by 2 degrees and moved by 2% of the scene radius with refinement on: the
    rotation error drops below 80% of that and the translation error drops too
    (after the similarity alignment). (From scratch the same takes minutes on a CPU: the pose
    gradients need the pure-torch lookups.)"""
    scene = load_scene(demo_scene)
    truth = scene.cameras.c2w.clone()
    perturbed = perturb_poses(scene, 2.0, 0.02)
    train = scene.split("train")
    radius = camera_radius(scene)
    config = small_config(demo_scene, tmp_path / "run", iters=200, grid_init=32, grid_final=48)
    first = Trainer(replace(config, refine_poses="off"), scene)
    while first.state.iteration < 100:
        first.step()
    first.save()
    trainer = Trainer(config, perturbed, resume=True)
    while not trainer.done:
        trainer.step()
    with torch.no_grad():
        refined = trainer.training_cameras().c2w[train].double().numpy()
    before = pose_errors(perturbed.cameras.c2w[train].double().numpy(), truth[train].double().numpy(), radius)
    after = pose_errors(refined, truth[train].double().numpy(), radius)
    assert before["rotation_deg"] == pytest.approx(2.0, abs=0.3)
    assert after["rotation_deg"] < 0.8 * before["rotation_deg"]
    assert after["translation_fraction"] < 0.95 * before["translation_fraction"]


def test_test_time_fit_recovers_a_held_out_pose(demo_scene: Path, tmp_path: Path) -> None:
    """BARF's test-time fit: a held-out camera rotated by 2 degrees is fitted back to its image
    by the frozen field (the rotation error halves at least), and the field is left as it was."""
    scene = load_scene(demo_scene)
    trainer = Trainer(small_config(demo_scene, tmp_path / "run", iters=150, refine_poses="off"), scene)
    while not trainer.done:
        trainer.step()
    view = int(scene.split("test")[0])
    truth = scene.cameras.c2w[view].clone()
    tilt = torch.tensor([[0.6, -0.8, 0.0, 0.0, 0.0, 0.0]]) * torch.deg2rad(torch.tensor(2.0))
    c2w = scene.cameras.c2w.clone()
    c2w[view] = truth @ se3_exp(tilt)[0]
    held_out = replace(scene, cameras=replace(scene.cameras, c2w=c2w))
    parameters = [p.detach().clone() for p in trainer.model.field.parameters()]
    fitted = fit_poses(trainer.model, held_out, torch.tensor([view]))
    assert degrees_between(c2w[view], truth) == pytest.approx(2.0, abs=1e-3)
    assert degrees_between(fitted.cameras.c2w[view], truth) < 1.0
    for saved, now in zip(parameters, trainer.model.field.parameters()):
        torch.testing.assert_close(now.detach(), saved)


def test_held_out_cameras_follow_the_refined_frame(demo_scene: Path) -> None:
    """Training cameras refined into a frame rotated, scaled and shifted from the given one: the
    held-out cameras are carried into it by the same similarity; unmoved cameras leave the scene be."""
    scene = load_scene(demo_scene)
    train, test = scene.split("train"), scene.split("test")
    angle = torch.deg2rad(torch.tensor(10.0))
    rotation = se3_exp(torch.tensor([[0.0, 0.0, float(angle), 0.0, 0.0, 0.0]]))[0, :3, :3].double().numpy()
    frame = Similarity(1.3, rotation, torch.tensor([0.2, -0.1, 0.3]).double().numpy())
    moved = frame.invert(scene.cameras.c2w.double().numpy())  # the given frame's poses in the refined one
    refined = replace(scene.cameras[train], c2w=torch.from_numpy(moved[train.numpy()]).float())
    mapped = into_refined_frame(scene, refined)
    assert mapped is not None
    torch.testing.assert_close(mapped.cameras.c2w[test].double(), torch.from_numpy(moved[test.numpy()]), atol=1e-4, rtol=0)
    torch.testing.assert_close(mapped.cameras.c2w[train], scene.cameras.c2w[train])
    assert into_refined_frame(scene, scene.cameras[train]) is None


def degrees_between(a: torch.Tensor, b: torch.Tensor) -> float:
    """The angle between the rotations of camera-to-world matrices `a` and `b` `[4, 4]`, degrees."""
    cosine = ((a[:3, :3].T @ b[:3, :3]).trace() - 1.0) / 2.0
    return float(torch.rad2deg(torch.acos(cosine.clamp(-1.0, 1.0))))


def test_resume_keeps_the_pose_corrections(demo_scene: Path, tmp_path: Path) -> None:
    scene = perturb_poses(load_scene(demo_scene), 2.0, 0.02)
    config = small_config(demo_scene, tmp_path / "run", iters=20)
    trainer = Trainer(config, scene)
    for _ in range(12):
        trainer.step()
    trainer.save()
    strategy = trainer.strategy("poses")
    assert isinstance(strategy, PoseRefinement) and strategy.delta.abs().max() > 0
    resumed = Trainer(config, scene, resume=True)
    again = resumed.strategy("poses")
    torch.testing.assert_close(again.delta.detach(), strategy.delta.detach())
    saved, loaded = strategy.optimizer.state[strategy.delta], again.optimizer.state[again.delta]
    for key in ("exp_avg", "exp_avg_sq", "step"):
        torch.testing.assert_close(loaded[key].float(), saved[key].float())
    # the checkpoint keeps them as tensors, not in the JSON header
    state = load_checkpoint(tmp_path / "run").train_state["strategies"]["poses"]
    assert isinstance(state["delta"], torch.Tensor) and state["delta"].shape == (len(scene.split("train")), 6)


def test_refined_poses_are_written_back(demo_scene: Path, tmp_path: Path) -> None:
    """transforms.json beside the checkpoint holds the refined training cameras (OpenGL), loads
    as a scene, and config.json's training cameras (the viewer's and render's) are the refined ones."""
    scene = perturb_poses(load_scene(demo_scene), 2.0, 0.02)
    out = tmp_path / "run"
    trainer = Trainer(small_config(demo_scene, out, iters=10), scene)
    for _ in range(10):
        trainer.step()
    trainer.save()
    train = scene.split("train")
    with torch.no_grad():
        refined = trainer.training_cameras().c2w[train].cpu()
    assert (refined - scene.cameras.c2w[train]).abs().max() > 1e-5
    recorded = train_cameras(load_run_config(out)["scene"]).c2w
    torch.testing.assert_close(recorded, refined, atol=1e-5, rtol=0)
    written = json.loads((out / "transforms.json").read_text())
    assert len(written["frames"]) == len(train)
    reloaded = load_scene(out)
    torch.testing.assert_close(reloaded.cameras.c2w, refined, atol=1e-5, rtol=0)
    torch.testing.assert_close(reloaded.cameras.fx, scene.cameras.fx[train])
    assert torch.equal(reloaded.images, scene.images[train])
