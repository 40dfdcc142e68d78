"""Training end to end: PSNR rises, resume continues the same run, divergence keeps the checkpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FERN, LEGO, requires_fern, requires_lego, small_config

from apps.runs import load_checkpoint
from apps.evaluate import evaluate_views
from apps.training import RunInterrupted, train_run
from apps.training.schedule import Schedule
from apps.training import TrainConfig, Trainer
from apps.training.strategies.tensorf import BUDGET_GRID, BUDGET_GRID_SECONDS, default_grid, ndc_ray_box
from data import load_scene
from render import camera_rays


@requires_lego
def test_lego_psnr_rises_well_above_start(tmp_path: Path) -> None:
    scene = load_scene(LEGO, downsample=16)
    assert (scene.width, scene.height) == (50, 50)
    config = TrainConfig(data=str(LEGO), out=str(tmp_path / "lego"), downsample=16, iters=250, batch_size=1024, grid_init=32, grid_final=64)
    trainer = Trainer(config, scene)
    views = scene.split("val")[:4]
    start = evaluate_views(trainer.model, scene, views, with_ssim=False)["psnr"]
    while not trainer.done:
        trainer.step()
    end = evaluate_views(trainer.model, scene, views, with_ssim=False)["psnr"]
    assert start < 12.0
    assert end > 21.0, f"held-out PSNR only rose from {start:.2f} to {end:.2f} dB"
    assert trainer.field.aabb[1].sub(trainer.field.aabb[0]).prod() < 27.0, "the box never shrank"


def test_train_run_writes_run_folder(sphere_scene: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    lines: list[str] = []
    metrics = train_run(small_config(sphere_scene, out), log=lines.append)
    timing = [line for line in lines if line.startswith("final evaluation: 2 of 2 held-out views at 40x30; rendered and scored in")]
    assert len(timing) == 1 and "of the training time" in timing[0]
    assert 0 < metrics["eval_seconds"] < 60
    for name in ("checkpoint.safetensors", "config.json", "metrics.json"):
        assert (out / name).is_file(), name
    assert sorted(p.suffix for p in (out / "renders").iterdir()) == [".png"] * 4  # 2 held-out views + depth
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["iterations"] == 40 and saved["num_views"] == 2
    assert saved["held_out_poses"] == "given"  # no pose refinement, nothing to map
    assert saved["psnr"] == pytest.approx(metrics["psnr"]) and saved["psnr"] > 12.0
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["iters"] == 40 and config["scene"]["width"] == 40


def test_resume_continues_interrupted_run(sphere_scene: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = small_config(sphere_scene, out, iters=30)

    def interrupt_at_12(trainer: Trainer) -> None:
        if trainer.state.iteration == 12:
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted, match="--resume"):
        train_run(config, on_step=interrupt_at_12, log=lambda _: None)
    saved = load_checkpoint(out)
    assert saved.train_state["iteration"] == 12
    assert saved.optimizer_state is not None and len(saved.optimizer_state["state"]) > 0

    seen = []
    train_run(config, resume=True, on_step=lambda t: seen.append(t.state.iteration), log=lambda _: None)
    assert seen[0] == 13 and seen[-1] == 30
    assert load_checkpoint(out).train_state["iteration"] == 30


def test_resume_restores_exact_state(sphere_scene: Path, tmp_path: Path) -> None:
    scene = load_scene(sphere_scene)
    config = small_config(sphere_scene, tmp_path / "run", iters=20)
    trainer = Trainer(config, scene)
    for _ in range(10):
        trainer.step()
    trainer.save()
    resumed = Trainer(config, scene, resume=True)
    assert resumed.state.iteration == 10
    assert resumed.field.resolution == trainer.field.resolution
    for name, value in trainer.field.state_dict().items():
        torch.testing.assert_close(resumed.field.state_dict()[name], value, rtol=0, atol=0)
    assert torch.equal(resumed.grid.occupied, trainer.grid.occupied)
    assert resumed.model.settings == trainer.model.settings


def test_nan_loss_stops_and_keeps_last_checkpoint(sphere_scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    config = small_config(sphere_scene, out, iters=30, checkpoint_every=0.0)

    def poison_at_8(trainer: Trainer) -> None:
        if trainer.state.iteration == 8:
            original = trainer.field.radiance
            monkeypatch.setattr(trainer.field, "radiance", lambda x, d: original(x, d) * float("nan"))

    with pytest.raises(RunInterrupted, match="last good checkpoint is kept") as error:
        train_run(config, on_step=poison_at_8, log=lambda _: None)
    diverged_at = int(re.search(r"at iteration (\d+)", str(error.value)).group(1))
    assert diverged_at > 8
    saved = load_checkpoint(out)
    assert saved.train_state["iteration"] == diverged_at - 1
    assert all(torch.isfinite(v).all() for v in saved.model.field.state_dict().values())


def test_schedule_fits_any_length() -> None:
    schedule = Schedule(grid_init=64, grid_final=128)
    counts = schedule.voxel_counts()
    assert len(counts) == 5 and counts[-1] == 128**3
    assert all(a < b for a, b in zip(counts, counts[1:]))
    assert schedule.lr_scale(1.0, 0.0) == pytest.approx(0.1)
    assert schedule.lr_scale(0.5, 0.5) == pytest.approx(1.0)


def test_a_contracted_cpu_run_gets_the_grid_its_budget_can_train() -> None:
    photos = type("Photos", (), {"width": 1604, "height": 1201})()
    assert default_grid(photos) == (128, 300)  # from the image size
    assert default_grid(photos, spans_space=True, budget=BUDGET_GRID_SECONDS)[1] == BUDGET_GRID
    finals = [default_grid(photos, spans_space=True, budget=b)[1] for b in (60.0, 300.0, 600.0, 1e5)]
    assert finals[0] < BUDGET_GRID < finals[1] < finals[2] < finals[3] == 300  # voxels grow with the budget, up to the image's
    assert default_grid(photos, spans_space=True, budget=600.0, gpu=True) == (128, 300)
    assert default_grid(photos, spans_space=True) == (128, 300)  # iteration-counted runs keep the image's grid


@requires_fern
def test_forward_facing_box_holds_every_ray_through_the_shrinks(tmp_path: Path) -> None:
    """A forward-facing run starts in the box of its training rays and keeps it: shrinking to the
    occupancy of a cloudy field cut off the image borders that few views see (black wedges)."""
    scene = load_scene(FERN, downsample=32)
    trainer = Trainer(small_config(FERN, tmp_path / "run", iters=30, downsample=32), scene)
    box, voxel = trainer.field.aabb.clone(), trainer.field.voxel_size.clone()
    assert any(event.startswith("forward-facing: box fitted to the training rays") for event in trainer.start_events)
    assert (box[1] - box[0] < scene.aabb[1] - scene.aabb[0] - 0.1).any(), "fitted tighter than the LLFF box"
    events = []
    while not trainer.done:
        events += trainer.step()["events"]
    assert any(event.startswith("box kept") for event in events) and not any(event.startswith("box shrunk") for event in events)
    assert torch.equal(trainer.field.aabb, box)
    views = torch.arange(len(scene.cameras.c2w))  # held-out views too
    xs = torch.tensor([0.5, scene.width - 0.5]).repeat_interleave(2).repeat(len(views))
    ys = torch.tensor([0.5, scene.height - 0.5]).repeat(2 * len(views))
    rays = camera_rays(scene.cameras, views.repeat_interleave(4), xs, ys, trainer.ndc)
    ends = torch.cat([rays.origins, rays.origins + rays.directions * rays.far[:, None]])
    assert ((ends >= box[0] - 1e-4) & (ends <= box[1] + 1e-4)).all()
    fitted = ndc_ray_box(scene.cameras, scene.split("train"), trainer.ndc)
    fitted = torch.stack([torch.maximum(fitted[0], scene.aabb[0]), torch.minimum(fitted[1], scene.aabb[1])])
    assert (box[0] <= fitted[0] + 1e-4).all() and (box[1] >= fitted[1] - 1e-4).all()
    assert (fitted[0] - box[0] <= voxel + 1e-4).all() and (box[1] - fitted[1] <= voxel + 1e-4).all()  # snapped to the grid


def test_large_held_out_views_are_scored_downscaled_at_the_end(sphere_scene: Path) -> None:
    from apps.evaluate import at_most_pixels
    from data.images import resize_image

    scene = load_scene(sphere_scene)  # 40x30
    views = scene.split("test")
    same, factor = at_most_pixels(scene, views, 40 * 30)
    assert same is scene and factor == 1.0
    small, factor = at_most_pixels(scene, views, 300)
    assert factor == pytest.approx(0.5) and (small.width, small.height) == (20, 15)
    assert small.cameras.fx[0] == pytest.approx(0.5 * float(scene.cameras.fx[0]))
    index = int(views[0])
    expected = resize_image(scene.images[index].numpy(), (20, 15))
    assert torch.equal(small.images[index], torch.from_numpy(np.array(expected)))


def test_final_evaluation_fits_its_share_of_the_training_time(sphere_scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The end-of-run evaluation measures the render rate on a small probe, then scores as many
    pixels as its time allows: smaller views first, then fewer views (at least one)."""
    from types import SimpleNamespace

    from apps.training import final_eval

    scene = load_scene(sphere_scene)  # 40x30, 2 held-out views
    views = scene.split("test")
    model = Trainer(small_config(sphere_scene, tmp_path / "run"), scene).model
    assert final_eval.plan_final_eval(model, scene, views, 0.0).pixels == 1200  # at most PROBE_PIXELS: all, whole
    monkeypatch.setattr(final_eval, "PROBE_PIXELS", 300)
    monkeypatch.setattr(final_eval, "MIN_VIEW_PIXELS", 400)
    clock = [0.0]
    scored: list[tuple[int, int]] = []

    def timed_evaluate(model, scene, indices, *args, **kwargs):  # 1 ms per pixel on a fake clock
        scored.append((len(indices), scene.width * scene.height))
        clock[0] += 1e-3 * len(indices) * scene.width * scene.height
        return {}

    monkeypatch.setattr(final_eval, "evaluate_views", timed_evaluate)
    monkeypatch.setattr(final_eval, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    unlimited = final_eval.plan_final_eval(model, scene, views, None)
    assert torch.equal(unlimited.views, views) and unlimited.pixels == 1200 and not scored
    roomy = final_eval.plan_final_eval(model, scene, views, 1e6)
    assert scored == [(1, 300)] and roomy.probe_pixels == 300 and roomy.pixels_per_second == pytest.approx(1000.0)
    assert torch.equal(roomy.views, views) and roomy.pixels == 1200  # never above the views' own size
    monkeypatch.setattr(final_eval, "PLAN_FILL", 0.5)
    smaller = final_eval.plan_final_eval(model, scene, views, 2 * (0.3 + 1.6))  # probe 0.3 s, then 1,600 pixels
    assert torch.equal(smaller.views, views) and smaller.pixels == 800
    fewer = final_eval.plan_final_eval(model, scene, views, 2 * (0.3 + 0.5))  # 500 pixels: one view at the floor
    assert fewer.views.tolist() == views[:1].tolist() and fewer.pixels == 400
    none_fit = final_eval.plan_final_eval(model, scene, views, 0.1)
    assert len(none_fit.views) == 1 and none_fit.pixels == 400
