"""Run folders written before the training strategies (commit 5472bf6, checkpoint format v2 with
one flat train_state) still render the same image and resume."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from conftest import ROOT, small_cameras, small_config

from apps.runs import load_checkpoint
from apps.training import Trainer
from data import load_scene

FIXTURE = ROOT / "tests" / "fixtures" / "v2_vm_run"


def test_old_checkpoint_renders_the_same_image() -> None:
    """`rendered_rgb.npy` is what the old code rendered from this checkpoint at `small_cameras()`."""
    model = load_checkpoint(FIXTURE).model
    cameras = small_cameras()
    rgb = torch.stack([model.render_image(cameras, index)["rgb"] for index in range(len(cameras))])
    want = torch.from_numpy(np.load(FIXTURE / "rendered_rgb.npy"))
    assert want.std() > 0.05  # the fixture shows something
    torch.testing.assert_close(rgb, want, rtol=0, atol=1e-5)


def test_old_checkpoint_resumes_with_its_counters(sphere_scene: Path, tmp_path: Path) -> None:
    """The flat train_state maps onto the strategies; the optimizer state loads into the new groups."""
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    config = small_config(sphere_scene, run, iters=156, batch_size=512, grid_init=8, grid_final=10, occupancy_resolution=16)
    trainer = Trainer(config, load_scene(sphere_scene), resume=True)
    assert trainer.state.iteration == 150
    assert trainer.strategy("tensorf").state_dict() == {"upsamples_done": 5, "shrinks_done": 5, "shrunk": True, "last_lr_reset": 0.23333333333333334}
    assert trainer.optimizer.state and [g["name"] for g in trainer.optimizer.param_groups] == ["factors", "network"]
    while not trainer.done:
        assert torch.isfinite(torch.tensor(trainer.step()["loss"]))
    assert trainer.state.iteration == 156
