"""Structural changes keep the optimizer's state for what survives (`apps.training.optim`), and
strategy state goes through checkpoints so `--resume` continues the same run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import UNIT_BOX, make_trivec_field, small_config, trivec_blob, unit_dirs

from apps.training import Trainer
from apps.training.optim import make_optimizer, replace_field, restructure
from data import load_scene
from fields import VMField


def stepped(field: torch.nn.Module, steps: int = 3) -> torch.optim.Adam:
    """An optimizer over `field` after a few steps on a made-up loss (every parameter has state)."""
    optimizer = make_optimizer(field)
    x, d = torch.rand(512, 3) * 1.6 - 0.8, unit_dirs(512)
    for _ in range(steps):
        optimizer.zero_grad()
        sigma, rgb = field.query(x, d)
        (sigma.mean() + rgb.mean()).backward()
        optimizer.step()
    return optimizer


def test_pruning_keeps_the_moments_of_the_surviving_tensors() -> None:
    field = make_trivec_field()
    optimizer = stepped(field)
    scale = field.scales[0]
    before_centers = scale.centers.clone()
    before = {key: optimizer.state[scale.density_lines][key].clone() for key in ("exp_avg", "exp_avg_sq")}
    step = optimizer.state[scale.density_lines]["step"].clone()
    occupied = trivec_blob() & (torch.arange(16)[:, None, None] < 8)  # the x < 0 half of the blob
    field, optimizer, removed = restructure(field, optimizer, lambda f: f.prune(occupied, UNIT_BOX))
    assert removed > 0
    scale = field.scales[0]
    kept = [int((before_centers == c).all(dim=1).nonzero()) for c in scale.centers]  # old row of each survivor
    state = optimizer.state[scale.density_lines]
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(state[key], before[key][kept]), key
    assert torch.equal(state["step"], step)
    assert {id(p) for group in optimizer.param_groups for p in group["params"]} == {id(p) for p in field.parameters()}


def test_shrinking_keeps_the_moments_of_the_cropped_factors() -> None:
    field = VMField(UNIT_BOX, [9, 9, 9], density_components=2, appearance_components=3)
    optimizer = stepped(field)
    line = field.density_line[0]  # along z (paired with the XY plane), 9 grid points over [-1, 1]
    before = optimizer.state[line]["exp_avg"].clone()
    field, optimizer, _ = restructure(field, optimizer, lambda f: f.shrink(torch.tensor([[-1.0, -1.0, -0.5], [1.0, 1.0, 0.5]])))
    assert torch.equal(optimizer.state[field.density_line[0]]["exp_avg"], before[:, :, 2:7])  # grid points -0.5 .. 0.5
    assert optimizer.state[field.density_plane[0]]["exp_avg"].shape == field.density_plane[0].shape


def test_without_keep_state_the_changed_parameters_start_afresh() -> None:
    field = VMField(UNIT_BOX, [9, 9, 9], density_components=2, appearance_components=3)
    optimizer = stepped(field)
    field, optimizer, _ = restructure(field, optimizer, lambda f: f.upsample([12, 12, 12]), keep_state=False)
    assert not optimizer.state
    assert [group["lr"] for group in optimizer.param_groups] == [group["lr"] for group in make_optimizer(field).param_groups]


def test_replacing_the_field_keeps_the_state_of_the_parameters_named() -> None:
    coarse = VMField(UNIT_BOX, [9, 9, 9], density_components=2, appearance_components=3, appearance_dim=12)
    optimizer = stepped(coarse)
    placed = make_trivec_field()
    placed.decoder.load_state_dict(coarse.decoder.state_dict())
    new_optimizer = replace_field(coarse, placed, optimizer, keep=lambda name: name.startswith("decoder."))
    for (name, old), new in zip(coarse.decoder.named_parameters(), placed.decoder.parameters()):
        assert torch.equal(new_optimizer.state[new]["exp_avg"], optimizer.state[old]["exp_avg"]), name
    assert all(p not in new_optimizer.state for p in placed.factor_parameters())


def test_strategy_state_and_moments_survive_resume(sphere_scene: Path, tmp_path: Path) -> None:
    scene = load_scene(sphere_scene)
    config = small_config(sphere_scene, tmp_path / "run", iters=40, slimmable=True, upsilon=0.05)
    trainer = Trainer(config, scene)
    events = [event for _ in range(30) for event in trainer.step()["events"]]
    assert any(event.startswith(("box shrunk", "box unchanged")) for event in events)
    assert trainer.optimizer.state, "the optimizer lost its state"
    trainer.save()
    resumed = Trainer(config, scene, resume=True)
    for strategy in trainer.strategies:
        assert resumed.strategy(strategy.name).state_dict() == strategy.state_dict(), strategy.name
    for (name, param), resumed_param in zip(trainer.field.named_parameters(), resumed.field.parameters()):
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(resumed.optimizer.state[resumed_param][key], trainer.optimizer.state[param][key], rtol=0, atol=0)
    assert [g["lr"] for g in resumed.optimizer.param_groups] == [g["lr"] for g in trainer.optimizer.param_groups]


def test_unknown_field_is_a_clear_error(sphere_scene: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown field 'nerf' \\(known: cp, gaussians, hashgrid, trivec, vm\\)"):
        Trainer(small_config(sphere_scene, tmp_path / "run", field="nerf"), load_scene(sphere_scene))
