"""Gaussian runs: 3DGS's densification (clones, splits and prunes keep the optimizer's state of
what survives), training, resuming, where a run's Gaussians start (SfM points, a trained run, a
splat file), and `export-splats`."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import small_config

from apps.cli import main
from apps.evaluate.metrics import psnr
from apps.export.splats import export_splats, rasterizer_agreement
from apps.runs import load_checkpoint, load_run_config, train_cameras
from apps.training import Trainer
from apps.training.strategies import GaussianDensification, GaussiansLost
from apps.training.strategies import densification as dc
from data import load_scene
from fields.gaussians import GaussianField, read_splats

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


def test_a_run_whose_field_empties_keeps_its_last_checkpoint(sphere_scene: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(dc, "PRUNE_OPACITY", 2.0)  # every Gaussian is "transparent" at the first refinement
    run = tmp_path / "run"
    argv = ["train", "--data", str(sphere_scene), "--out", str(run), "--field", "gaussians", "--iters", "100",
            "--batch-size", "256", "--checkpoint-every", "0"]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "would prune all" in error and f"the last good checkpoint is kept in {run}" in error
    saved = Trainer(small_config(sphere_scene, run, field="gaussians", iters=100, batch_size=256), load_scene(sphere_scene), resume=True)
    assert 0 < saved.state.iteration <= math.ceil(dc.REFINE_START * 100) and saved.field.num_gaussians > 0


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


@pytest.fixture(scope="module")
def sphere_vm_run(sphere_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short VM run of the sphere scene, to start Gaussians from."""
    run = tmp_path_factory.mktemp("vm_teacher") / "run"
    argv = ["train", "--data", str(sphere_scene), "--out", str(run), "--iters", "150", "--grid-init", "24", "--grid-final", "32",
            "--batch-size", "1024"]  # fmt: skip
    assert main(argv) == 0
    return run


def preset_count(trainer: Trainer) -> int:
    """The preset's number of Gaussians for the trainer's scene (what a start keeps at most)."""
    return GaussianField.scene_kwargs(trainer.scene, trainer.gpu)["num_gaussians"]


def _psnr_against(trainer: Trainer, model, views: list[int]) -> float:
    """Mean PSNR of the trainer's field against `model`'s renders of `views`."""
    cameras = trainer.cameras.to(torch.device("cpu"))
    with torch.no_grad():
        return sum(psnr(trainer.model.render_image(cameras, v)["rgb"], model.render_image(cameras, v)["rgb"]) for v in views) / len(views)


def test_gaussians_fitted_to_a_trained_run_start_out_rendering_like_it(sphere_scene: Path, sphere_vm_run: Path, tmp_path: Path) -> None:
    fitted = gaussian_trainer(sphere_scene, tmp_path / "fitted", init_from=str(sphere_vm_run))
    strategy = fitted.strategy("densification")
    assert "fitted to the 'vm' field of" in strategy.placement and strategy.reset_at == ()  # no opacity reset
    assert fitted.field.num_gaussians <= preset_count(fitted)
    teacher = load_checkpoint(sphere_vm_run).model
    views = fitted.scene.split("val").tolist()
    uniform = gaussian_trainer(sphere_scene, tmp_path / "uniform")
    assert _psnr_against(fitted, teacher, views) > 20.0
    assert _psnr_against(fitted, teacher, views) > _psnr_against(uniform, teacher, views) + 5.0


def test_a_run_starts_from_a_splat_file_as_it_is(sphere_scene: Path, tmp_path: Path) -> None:
    source = gaussian_trainer(sphere_scene, tmp_path / "source")
    source.step()
    ply = tmp_path / "scene.ply"
    written = export_splats(source.model, ply)
    started = gaussian_trainer(sphere_scene, tmp_path / "run", init_splats=str(ply))
    assert started.strategy("densification").placement.startswith(f"{len(written):,} Gaussians from {ply}")
    assert started.strategy("densification").reset_at == ()
    torch.testing.assert_close(started.field.means.detach(), written.means)
    torch.testing.assert_close(started.field.opacities().detach(), written.opacities, rtol=1e-5, atol=1e-6)
    views = started.scene.split("val").tolist()
    assert _psnr_against(started, source.model, views) > 40.0  # the same Gaussians, the same render
    record = started.step()
    assert math.isfinite(record["loss"])


def test_sfm_points_place_the_gaussians_with_their_colours(sphere_scene: Path, tmp_path: Path) -> None:
    scene = load_scene(sphere_scene)
    g = torch.Generator().manual_seed(3)
    directions = torch.nn.functional.normalize(torch.randn(300, 3, generator=g), dim=-1)
    inside = scene.aabb.float().mean(0) + 0.3 * directions * (scene.aabb[1] - scene.aabb[0]).float().min()
    outside = scene.aabb[1].float() + 1.0 + torch.rand(20, 3, generator=g)  # not in the box: left out
    colours = torch.randint(0, 256, (320, 3), generator=g, dtype=torch.uint8)
    scene = dataclasses.replace(scene, points=torch.cat([inside, outside]), point_colours=colours)
    trainer = Trainer(small_config(sphere_scene, tmp_path / "run", field="gaussians"), scene)
    field = trainer.field
    assert trainer.strategy("densification").placement.startswith(f"{field.num_gaussians:,} Gaussians placed at the scene's SfM points")
    assert field.num_gaussians == min(300, preset_count(trainer))
    distances = (field.means.detach()[:, None] - inside[None]).norm(dim=-1)  # exact (cdist is not, in float32)
    assert float(distances.min(dim=1).values.max()) < 1e-6  # each at one of the points in the box
    nearest = distances.argmin(dim=1)
    up = torch.tensor([[0.0, 0.0, 1.0]])
    with torch.no_grad():
        _, rgb = field.query(field.means.detach(), up.expand(field.num_gaussians, 3))
    # at its centre a Gaussian's colour mixes in its neighbours' (they overlap): near its own point's
    assert float((rgb - colours[nearest].float() / 255).abs().mean()) < 0.15


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--init-from", "RUN"], "--init-from starts a Gaussian field: it needs --field gaussians, not 'vm'"),
        (["--field", "gaussians", "--init-from", "RUN", "--init-splats", "x.ply"], "give one"),
        (["--field", "gaussians", "--init-splats", "missing.ply"], "missing.ply"),
    ],
)
def test_start_flags_that_do_not_fit_are_one_clear_line(extra: list[str], message: str, sphere_scene: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", "--data", str(sphere_scene), "--out", str(tmp_path / "run"), *extra]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and message in error


def test_a_splat_file_of_another_frame_is_one_clear_line(sphere_scene: Path, tmp_path: Path, capsys) -> None:
    source = gaussian_trainer(sphere_scene, tmp_path / "source")
    with torch.no_grad():
        source.field.means += 100.0  # far outside the scene's box
    ply = tmp_path / "far.ply"
    export_splats(source.model, ply)
    argv = ["train", "--data", str(sphere_scene), "--out", str(tmp_path / "run"), "--field", "gaussians", "--init-splats", str(ply)]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and str(ply) in error and "lies in the scene's box" in error


def test_import_splats_makes_a_run_that_draws_the_file(sphere_scene: Path, tmp_path: Path, capsys) -> None:
    source = gaussian_trainer(sphere_scene, tmp_path / "source")
    source.step()
    ply = tmp_path / "scene.ply"
    written = export_splats(source.model, ply)
    alone = tmp_path / "alone"  # no scene: cameras on an orbit around the Gaussians
    assert main(["import-splats", str(ply), "--out", str(alone)]) == 0
    said = capsys.readouterr().out
    model, cameras = load_checkpoint(alone).model, train_cameras(load_run_config(alone)["scene"])
    assert len(cameras) == 24 and isinstance(model.field, GaussianField)
    kept = model.field.num_gaussians  # the outermost few centres fall outside the box (floaters)
    assert f"{kept:,} Gaussians of {ply}" in said and kept >= 0.99 * len(written)
    assert kept == len(written) or f"{len(written) - kept:,} outside the box left out" in said
    small = cameras.scaled(0.05)  # 40 x 40
    for view in (0, 12):
        rgb = model.render_image(small, view)["rgb"]
        assert float((rgb - 1.0).abs().amax(-1).gt(0.1).float().mean()) > 0.05  # the Gaussians are in sight
    assert min(rasterizer_agreement(model, written, small, [0, 12])) > 20.0

    framed = tmp_path / "framed"  # in the scene's frame: its cameras, the source's render
    assert main(["import-splats", str(ply), "--out", str(framed), "--data", str(sphere_scene)]) == 0
    imported = load_checkpoint(framed).model
    scene = load_scene(sphere_scene)
    for view in scene.split("val").tolist():
        with torch.no_grad():
            assert psnr(imported.render_image(scene.cameras, view)["rgb"], source.model.render_image(scene.cameras, view)["rgb"]) > 40.0
    assert main(["eval", str(framed), "--split", "val"]) == 0
    capsys.readouterr()
    assert main(["import-splats", str(ply), "--out", str(framed)]) == 2  # holds a run: refused, as train does
    assert "holds another run" in capsys.readouterr().err


def test_export_splats_from_another_field_fits_gaussians_to_it(sphere_vm_run: Path, tmp_path: Path, capsys) -> None:
    ply = tmp_path / "vm.ply"
    argv = ["export-splats", str(sphere_vm_run), "--out", str(ply), "--from-field", "--gaussians", "3000", "--fit-steps", "100",
            "--check", "2"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("fitted ") and "Gaussians to the 'vm' field of" in lines[0]
    assert 0 < len(read_splats(ply)) <= 3000
    agreement = float(lines[-1].split(": ")[1].split(" dB")[0])  # the file drawn against the vm field's renders
    assert agreement > 16.0  # about 19.4 dB: a wrong conversion (frame, scale, colour) gives under 10
    assert main(["export-splats", str(sphere_vm_run), "--out", str(ply), "--gaussians", "10"]) == 2
    assert "need --from-field" in capsys.readouterr().err
