"""Gaussian runs: 3DGS's densification (clones, splits and prunes keep the optimizer's state of
what survives), training, resuming, and `export-splats`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import small_config

from apps.cli import main
from apps.training import Trainer
from apps.training.strategies import GaussianDensification, GaussiansLost
from apps.training.strategies import densification as dc
from data import load_scene
from fields.gaussians import read_splats

FIXTURE_VM_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "v2_vm_run"


def gaussian_trainer(scene_path: Path, out: Path, **overrides) -> Trainer:
    return Trainer(small_config(scene_path, out, field="gaussians", **overrides), load_scene(scene_path))


def test_refinement_clones_splits_prunes_and_keeps_the_moments(sphere_scene: Path, tmp_path: Path, monkeypatch) -> None:
    trainer = gaussian_trainer(sphere_scene, tmp_path / "run")
    strategy = trainer.strategy("densification")
    assert isinstance(strategy, GaussianDensification)
    trainer.step()
    field = trainer.field
    count = field.num_gaussians
    with torch.no_grad():
        centre, half = field.aabb.mean(0), (field.aabb[1] - field.aabb[0]) / 2
        field.means.copy_(centre + (field.means - centre).clamp(-0.9 * half, 0.9 * half))  # none has left the box
        field.opacity_logits[:3] = -10.0  # transparent: pruned
        large = 0.04 * float((field.aabb[1] - field.aabb[0]).norm())  # above SPLIT_SCALE, below PRUNE_SCALE
        field.log_scales[3] = math.log(large)  # large: split when grown
        field.log_scales[4] = math.log(1e-3)  # small: cloned when grown
    moments = {name: trainer.optimizer.state[getattr(field, name)]["exp_avg"].clone() for name in field.PER_GAUSSIAN}
    strategy.grad_sum = torch.zeros(count)
    strategy.grad_count = torch.ones(count)
    strategy.grad_sum[[3, 4]] = 1.0  # the two with the largest gradients
    monkeypatch.setattr(dc, "GROW_FRACTION", 2 / (count - 3))  # of the unpruned
    means_before = field.means.detach().clone()
    event = strategy._refine(trainer)
    field = trainer.field
    assert event.startswith("densified: 1 cloned, 1 split, 3 pruned") and field.num_gaussians == count - 3 - 1 + 1 + 2
    kept = [i for i in range(count) if i not in (0, 1, 2, 3)]
    for name in field.PER_GAUSSIAN:
        exp_avg = trainer.optimizer.state[getattr(field, name)]["exp_avg"]
        torch.testing.assert_close(exp_avg[: len(kept)], moments[name][kept])  # survivors keep theirs
        torch.testing.assert_close(exp_avg[len(kept)], moments[name][4])  # the clone copies its parent's
    torch.testing.assert_close(field.means[len(kept)], means_before[4])
    children = field.scales()[-2:].detach()
    parent = math.sqrt(large**2 + field.min_scale**2)
    torch.testing.assert_close(children, torch.full_like(children, parent / dc.SPLIT_SHRINK), rtol=1e-4, atol=1e-6)
    assert bool(((field.means[-2:] - means_before[3]).norm(dim=-1) > 0).all())  # drawn around the parent


def test_a_field_that_empties_stops_with_a_clear_error(sphere_scene: Path, tmp_path: Path) -> None:
    trainer = gaussian_trainer(sphere_scene, tmp_path / "run")
    trainer.step()
    with torch.no_grad():
        trainer.field.opacity_logits.fill_(-20.0)
    with pytest.raises(GaussiansLost, match="would prune all .* Gaussians"):
        trainer.strategy("densification")._refine(trainer)


def test_a_gaussian_run_trains_densifies_resumes_and_exports(sphere_scene: Path, tmp_path: Path, capsys) -> None:
    trainer = gaussian_trainer(sphere_scene, tmp_path / "run", iters=150)
    events, psnrs = [], []
    while not trainer.done:
        record = trainer.step()
        psnrs.append(record["psnr"])
        events += record["events"]
    assert any(event.startswith("densified") for event in events)
    assert any(event.startswith("opacities reset") for event in events)
    assert sum(psnrs[-10:]) / 10 > sum(psnrs[:10]) / 10 + 1.5  # batches of 512 rays: averaged over 10
    trainer.save()
    resumed = Trainer(small_config(sphere_scene, tmp_path / "run", field="gaussians", iters=160), load_scene(sphere_scene), resume=True)
    assert resumed.field.num_gaussians == trainer.field.num_gaussians
    assert resumed.strategy("densification").refines_done == trainer.strategy("densification").refines_done
    resumed.step()
    resumed.save()
    ply = tmp_path / "scene.ply"
    assert main(["export-splats", str(tmp_path / "run"), "--out", str(ply), "--check", "1"]) == 0
    assert len(read_splats(ply)) == resumed.field.num_gaussians
    agreement = capsys.readouterr().out.splitlines()[-1]
    assert agreement.startswith("splat rasterizer against the field on training views [0]:") and "dB PSNR" in agreement
    report = tmp_path / "splats.json"
    assert main(["bench", "splats", str(tmp_path / "run"), "--eval-views", "1", "--rank", "1", "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["gaussians"] == resumed.field.num_gaussians and result["rank"] == 1
    assert result["psnr_round_trip_vs_field"] > 60.0  # export, import, render: the same field
    assert result["psnr_rasterized_vs_field"] > 10.0 and result["psnr_slimmed"] > 5.0


def test_export_splats_of_another_field_is_one_clear_line(tmp_path: Path, capsys) -> None:
    assert main(["export-splats", str(FIXTURE_VM_RUN), "--out", str(tmp_path / "x.ply")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "holds a 'vm' field" in error and str(FIXTURE_VM_RUN) in error
    assert not (tmp_path / "x.ply").exists()
