"""Slimmable ranks (SlimmeRF): masked rendering equals truncation, compact checkpoints, TRaIn,
and the `slim` / `eval --ranks` commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import make_grid_field as make_field
from conftest import points_inside, small_config, trained_model, unit_dirs
from conftest import small_cameras as cameras

from apps.runs import CHECKPOINT_NAME, Checkpoint, checkpoint_nbytes, load_checkpoint, save_checkpoint
from apps.cli import main
from apps.training.strategies import RankIncrementation
from apps.training import Trainer
from apps.training.strategies import LOW_RANK_STEP_FACTOR
from data import load_scene
from fields import VMField
from fields.slimming import TRAIN_EPSILON, active_components


def test_active_components_follow_slimmerf_groups() -> None:
    """Density groups as wide as the rank keep r; appearance groups 3x as wide keep 3r."""
    assert [active_components(r, 16, 16) for r in (1, 4, 16)] == [1, 4, 16]
    assert [active_components(r, 48, 16) for r in (1, 4, 16)] == [3, 12, 48]
    assert [active_components(r, 4, 16) for r in (1, 5, 16)] == [1, 2, 4]  # NDC's narrow groups


@pytest.mark.parametrize("kind", ["vm", "cp"])
def test_slimmed_field_renders_as_the_masked_one(kind: str, tmp_path: Path) -> None:
    field = make_field(kind)
    x, d = points_inside(500), unit_dirs(500)
    for rank in range(1, field.ranks):
        field.set_active_rank(rank)
        sigma, rgb = field.query(x, d)
        slimmed = field.slim(rank)
        assert slimmed.ranks == rank and slimmed.num_parameters() < make_field(kind).num_parameters()
        sigma_slim, rgb_slim = slimmed.query(x, d)
        assert torch.allclose(sigma, sigma_slim, atol=1e-5, rtol=0) and torch.allclose(rgb, rgb_slim, atol=1e-5, rtol=0)
    field.set_active_rank(field.ranks)
    assert not torch.allclose(field.density(x), sigma), "lower ranks should change the density"


def test_training_epsilon_keeps_gradients_of_inactive_components() -> None:
    field = make_field("vm")
    field.set_active_rank(1)
    field.rank_epsilon = TRAIN_EPSILON
    field.density(points_inside(200)).sum().backward()
    line = field.density_line[2]  # 4 components, 1 active
    active, inactive = line.grad[0, :1].abs().max(), line.grad[0, 1:].abs().max()
    assert inactive > 0 and inactive < 1e-4 * active


def test_rank_out_of_range_is_refused() -> None:
    field = make_field("cp")
    for rank in (0, field.ranks + 1):
        with pytest.raises(ValueError, match=f"ranks 1 to {field.ranks}"):
            field.set_active_rank(rank)
        with pytest.raises(ValueError, match=f"ranks 1 to {field.ranks}"):
            field.slim(rank)


def test_slimmed_compact_checkpoint_renders_the_masked_image(tmp_path: Path) -> None:
    model, _ = trained_model()
    cams = cameras()
    model.field.set_active_rank(2)
    masked = model.render_image(cams, 0)["rgb"]
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, Checkpoint(model.with_field(model.field.slim(2))), compact=True)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded.model.grid.occupied, model.grid.occupied) and torch.equal(loaded.model.grid.aabb, model.grid.aabb)
    slimmed = loaded.model.render_image(cams, 0)["rgb"]
    assert (masked - slimmed).abs().max() < 1e-5


def test_checkpoint_sizes_shrink_with_rank_and_precision() -> None:
    field = VMField(torch.tensor([[-1.0] * 3, [1.0] * 3]), [40, 40, 40], density_components=16, appearance_components=48)
    model, _ = trained_model()
    sizes = {rank: checkpoint_nbytes(Checkpoint(model.with_field(field.slim(rank)))) for rank in (1, 4, 16)}
    per_rank = 4 * 3 * ((40 * 40 + 40) * (1 + 3) + 27 * 3)  # float32 planes + lines of 1 + 3 components, basis columns
    assert sizes[1] < sizes[4] < sizes[16]
    assert sizes[16] - sizes[4] == pytest.approx(12 * per_rank, abs=200)  # 12 of 16 ranks dropped (headers differ a little)
    half = checkpoint_nbytes(Checkpoint(model.with_field(field)), half=True)
    assert half == pytest.approx(sizes[16] / 2, rel=0.03)
    full = checkpoint_nbytes(Checkpoint(model.with_field(field)), compact=False)
    assert full > sizes[16]  # the training checkpoint also keeps the grid's running density


def test_half_checkpoint_loads_close_to_the_original(tmp_path: Path) -> None:
    model, _ = trained_model()
    field = model.field
    save_checkpoint(tmp_path / CHECKPOINT_NAME, Checkpoint(model), compact=True, half=True)
    loaded = load_checkpoint(tmp_path)
    assert all(p.dtype == torch.float32 for p in loaded.model.field.parameters())
    x = points_inside(300, field.aabb)
    assert torch.allclose(loaded.model.field.density(x), field.density(x), rtol=2e-2, atol=1e-2)


# --- TRaIn -----------------------------------------------------------------------------------


def test_rank_incrementation_fires_on_a_spiky_loss_and_not_on_a_flat_one() -> None:
    schedule = RankIncrementation(upsilon=0.4, eta=0)
    spiky = [0.10, 0.09, 0.20, 0.19, 0.05, 0.05]  # +55% at step 2, -74% at step 4 (relative to the new loss)
    flat = [0.10, 0.095, 0.09, 0.1, 0.085, 0.09]

    def increments(losses: list[float], schedule: RankIncrementation) -> list[int]:
        fired, last, previous = [], 0, None
        for step, loss in enumerate(losses, start=1):
            if schedule.due(previous, loss, step, last):
                fired.append(step)
                last = step
            previous = loss
        return fired

    assert increments(spiky, schedule) == [3, 5]
    assert increments(flat, schedule) == []
    assert increments(spiky, RankIncrementation(upsilon=0.4, eta=3)) == [5]  # step 3 is within eta of the start
    assert increments(spiky, RankIncrementation(upsilon=2.0, eta=0)) == [5]


def test_rank_incrementation_defaults_and_bad_values() -> None:
    assert RankIncrementation.for_scene(False) == RankIncrementation(0.4, 0)
    assert RankIncrementation.for_scene(True) == RankIncrementation(0.1, 100)
    assert RankIncrementation.for_scene(True, upsilon=0.2) == RankIncrementation(0.2, 100)
    with pytest.raises(ValueError, match="--upsilon"):
        RankIncrementation(0.0, 0)
    with pytest.raises(ValueError, match="--eta"):
        RankIncrementation(0.4, -1)


def test_slimmable_training_grows_the_rank_and_resumes(sphere_scene: Path, tmp_path: Path) -> None:
    scene = load_scene(sphere_scene)
    config = small_config(sphere_scene, tmp_path / "run", iters=30, slimmable=True, upsilon=0.01)
    trainer = Trainer(config, scene)
    assert trainer.field.active_rank == 1 and trainer.field.rank_epsilon == TRAIN_EPSILON
    events = [event for _ in range(12) for event in trainer.step()["events"] if event.startswith("rank")]
    assert events and events[0].startswith("rank 2 of 16 (TRaIn")
    reached = trainer.field.active_rank
    assert reached == 1 + len(events)
    trainer.save()
    resumed = Trainer(config, scene, resume=True)
    assert resumed.field.active_rank == reached and resumed.field.rank_epsilon == TRAIN_EPSILON
    assert resumed.strategy("train").last_rank_increment == trainer.strategy("train").last_rank_increment


def test_slimmable_run_short_of_full_rank_is_truncated(sphere_scene: Path, tmp_path: Path) -> None:
    scene = load_scene(sphere_scene)
    trainer = Trainer(small_config(sphere_scene, tmp_path / "run", iters=3, slimmable=True, upsilon=100.0), scene)
    for _ in range(3):
        trainer.step()
    normal_step = float(trainer.field.voxel_size.mean()) * trainer.config.step_ratio
    assert trainer.model.settings.step_size == pytest.approx(LOW_RANK_STEP_FACTOR * normal_step)
    assert trainer.checkpoint().model.settings.step_size == pytest.approx(normal_step)
    assert trainer.finish() == ["TRaIn reached rank 1 of 16: the field is truncated to it"]
    assert trainer.field.ranks == 1 and trainer.finish() == []
    assert trainer.model.settings.step_size == pytest.approx(normal_step)  # what the checkpoint renders with


# --- commands --------------------------------------------------------------------------------


def test_slim_and_eval_ranks_commands(sphere_scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    common = ["--grid-init", "24", "--grid-final", "32", "--batch-size", "512"]
    assert main(["train", "--data", str(sphere_scene), "--out", str(run), "--iters", "40", "--slimmable", "--upsilon", "0.02", *common]) == 0
    ranks = load_checkpoint(run).model.field.ranks
    assert ranks > 1
    report = tmp_path / "ranks.json"
    assert main(["eval", str(run), "--ranks", f"1,{ranks}", "--split", "val", "--json", str(report)]) == 0
    rows = json.loads(report.read_text())["ranks"]
    assert [row["rank"] for row in rows] == [1, ranks]
    assert rows[0]["nbytes"] < rows[1]["nbytes"] and all(0 < row["ssim"] <= 1 and row["psnr"] > 5 for row in rows)
    assert "rank    PSNR" in capsys.readouterr().out

    slim = tmp_path / "slim"
    assert main(["slim", str(run), "--rank", "1", "--out", str(slim), "--half"]) == 0
    assert "rank 1 of" in capsys.readouterr().out
    assert (slim / CHECKPOINT_NAME).stat().st_size < (run / CHECKPOINT_NAME).stat().st_size / 3
    assert json.loads((slim / "config.json").read_text())["slim"]["rank"] == 1
    slim_report = tmp_path / "slim.json"
    assert main(["eval", str(slim), "--split", "val", "--json", str(slim_report)]) == 0
    assert json.loads(slim_report.read_text())["psnr"] == pytest.approx(rows[0]["psnr"], abs=0.1)  # float16 costs little

    # a folder holding a run is not replaced without --overwrite (nor is the training run)
    capsys.readouterr()
    for out in (slim, run.parent / "run-copy"):
        if out != slim:
            shutil.copytree(run, out)
        before = (out / CHECKPOINT_NAME).read_bytes()
        assert main(["slim", str(run), "--rank", "2", "--out", str(out)]) == 2
        assert "holds another run" in capsys.readouterr().err and (out / CHECKPOINT_NAME).read_bytes() == before
    assert main(["slim", str(run), "--rank", "2", "--out", str(slim), "--overwrite"]) == 0
    assert "removed the previous run's" in capsys.readouterr().out
    assert json.loads((slim / "config.json").read_text())["slim"]["rank"] == 2


@pytest.mark.parametrize(
    "argv_tail,message",
    [
        (["eval", "RUN", "--ranks", "1,99"], "rank 99 is above this field's"),
        (["slim", "RUN", "--rank", "1", "--out", "RUN"], "--out must be a new run folder"),
    ],
)
def test_slim_errors_are_one_line(
    argv_tail: list[str], message: str, sphere_scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", str(sphere_scene), "--out", str(run), "--iters", "2", "--grid-init", "16", "--grid-final", "16"]) == 0
    capsys.readouterr()
    argv = [str(run) if a == "RUN" else str(tmp_path / "other") if a == "OTHER" else a for a in argv_tail]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_full_rank_shrinks_the_box_and_restores_the_step(sphere_scene: Path, tmp_path: Path) -> None:
    scene = load_scene(sphere_scene)
    trainer = Trainer(small_config(sphere_scene, tmp_path / "run", iters=100, slimmable=True, upsilon=1e-9), scene)
    for _ in range(40):
        events = trainer.step()["events"]
        if trainer.field.active_rank == trainer.field.ranks:
            break
    assert events[0] == "rank 16 of 16 (TRaIn: batch loss changed " + events[0].split("changed ")[1]
    assert any(event.startswith(("box shrunk", "box unchanged")) for event in events[1:]), events
    assert trainer.model.settings.step_size == pytest.approx(float(trainer.field.voxel_size.mean()) * trainer.config.step_ratio)
