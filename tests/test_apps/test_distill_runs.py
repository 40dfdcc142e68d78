"""`tensorfields distill`: a trained run converted into every registered field from its renders
alone; the student is a normal run folder; bad input is one line; Ctrl-C keeps a student that
`--resume` continues."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from apps.cli import main
from apps.distill import run as distill_module
from apps.distill import teacher as teacher_module
from apps.distill.cameras import POSITION_JITTER, RADIUS_JITTER, sample_cameras
from apps.distill.run import distill_run
from apps.distill.teacher import TEACHER_VIEWS, load_teacher, sampled_views
from apps.evaluate.metrics import psnr
from apps.runs import RunFolderError, load_checkpoint, save_checkpoint
from apps.runs import checkpoint as checkpoint_module
from apps.training import RunInterrupted, Trainer
from data import load_scene
from fields import FIELDS
from render import Model
from render.paths import focus_point

VIEWS = 16  # teacher views a test distillation renders (40x30 each)


@pytest.fixture(scope="module")
def teacher_run(sphere_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short VM run of the sphere scene: the teacher."""
    run = tmp_path_factory.mktemp("teacher") / "run"
    argv = ["train", "--data", str(sphere_scene), "--out", str(run), "--iters", "150", "--grid-init", "24", "--grid-final", "32",
            "--batch-size", "1024"]  # fmt: skip
    assert main(argv) == 0
    return run


def psnr_against_teacher(model: Model, teacher: Model, cameras) -> float:
    """Mean PSNR of `model`'s renders against `teacher`'s at `cameras`."""
    with torch.no_grad():
        return sum(psnr(model.render_image(cameras, i)["rgb"], teacher.render_image(cameras, i)["rgb"]) for i in range(len(cameras))) / len(cameras)


def test_cameras_are_jittered_training_poses_and_poses_on_the_orbit(sphere_scene: Path) -> None:
    reference = load_scene(sphere_scene).cameras
    cameras = sample_cameras(reference, 20, forward_facing=False, generator=torch.Generator().manual_seed(0))
    assert len(cameras) == 20 and (cameras.width, cameras.height) == (reference.width, reference.height)
    assert torch.equal(cameras.fx, reference.fx[:1].expand(20))
    center = focus_point(reference.c2w)
    radius = float((reference.c2w[:, :3, 3] - center).norm(dim=-1).median())
    jittered, orbit = cameras.c2w[:10], cameras.c2w[10:]
    nearest = torch.cdist(jittered[:, :3, 3], reference.c2w[:, :3, 3]).min(dim=1).values
    assert float(nearest.max()) <= POSITION_JITTER * radius + 1e-4
    distance = (orbit[:, :3, 3] - center).norm(dim=-1)
    assert bool(((distance - radius).abs() <= RADIUS_JITTER * radius + 1e-4).all())
    looking = F.normalize(center - orbit[:, :3, 3], dim=-1)
    assert bool(((orbit[:, :3, 2] * looking).sum(-1) > 0.999).all())  # every orbit camera looks at the focus
    assert float(torch.cdist(orbit[:, :3, 3], reference.c2w[:, :3, 3]).min(dim=1).values.max()) > 0.0
    forward = sample_cameras(reference, 6, forward_facing=True, generator=torch.Generator().manual_seed(0))
    assert float(torch.cdist(forward.c2w[:, :3, 3], reference.c2w[:, :3, 3]).min(dim=1).values.max()) <= POSITION_JITTER * radius + 1e-4


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_field_learns_the_teacher_from_its_renders(name: str, teacher_run: Path, tmp_path: Path) -> None:
    teacher = load_teacher(teacher_run)
    probe = sampled_views(teacher, 4, seed=7).cameras  # cameras no student trained on
    out = tmp_path / name
    metrics = distill_run(teacher_run, name, out, iters=120, views=VIEWS, log=lambda line: None)
    student = load_checkpoint(out).model
    scene = load_scene(teacher.train["data"])
    untrained = Model(FIELDS[name].from_scene(scene), student.grid, student.settings)
    start, end = psnr_against_teacher(untrained, teacher.model, probe), psnr_against_teacher(student, teacher.model, probe)
    assert type(student.field) is FIELDS[name]
    assert end > 22.0 and end > start + 8.0, (start, end)
    assert metrics["teacher"] == str(teacher_run) and metrics["teacher_field"] == "vm" and metrics["held_out"] == "images"
    assert metrics["distill_seconds"] >= metrics["train_seconds"] > 0 and metrics["teacher_views"] == VIEWS
    assert json.loads((out / "metrics.json").read_text())["teacher_render_seconds"] == metrics["teacher_render_seconds"]


def test_a_student_is_a_normal_run_folder(teacher_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cp"
    views = len(load_scene(load_teacher(teacher_run).train["data"]).split("train"))  # as many cameras as the teacher's, but elsewhere
    assert main(["distill", str(teacher_run), "--to", "cp", "--out", str(out), "--iters", "60", "--views", str(views)]) == 0
    assert main(["eval", str(out), "--json", str(tmp_path / "eval.json")]) == 0
    assert "refined" not in capsys.readouterr().out  # sampled cameras are not refined poses: held-out poses stay as given
    metrics = json.loads((out / "metrics.json").read_text())
    assert json.loads((tmp_path / "eval.json").read_text())["psnr"] == pytest.approx(metrics["psnr"], abs=0.05)
    recorded = [json.loads((run / "config.json").read_text())["scene"]["aabb"] for run in (teacher_run, out)]
    assert recorded[0] == recorded[1]  # the teacher's scene box, so grid schedules keep the scene's voxel size
    assert main(["export-mesh", str(out), "--out", str(tmp_path / "mesh.ply"), "--resolution", "32"]) == 0
    assert (tmp_path / "mesh.ply").stat().st_size > 0
    assert main(["slim", str(out), "--rank", "8", "--out", str(tmp_path / "slim")]) == 0
    assert load_checkpoint(tmp_path / "slim").model.field.ranks == 8


def test_a_teacher_whose_images_are_gone_still_distills(teacher_run: Path, tmp_path: Path) -> None:
    moved = tmp_path / "teacher"
    shutil.copytree(teacher_run, moved)
    config = json.loads((moved / "config.json").read_text())
    config["train"]["data"] = str(tmp_path / "deleted")
    (moved / "config.json").write_text(json.dumps(config))
    lines: list[str] = []
    metrics = distill_run(moved, "vm", tmp_path / "student", iters=40, views=VIEWS, log=lines.append)
    assert metrics["held_out"] == "teacher renders" and metrics["num_views"] == teacher_module.HELD_OUT_VIEWS
    assert any("cannot be read" in line for line in lines) and math.isfinite(metrics["psnr"])


def test_bad_input_is_one_line(teacher_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def error_of(*argv: str) -> str:
        assert main(["distill", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "Traceback" not in err, err
        return err

    (tmp_path / "empty").mkdir()
    assert "no checkpoint" in error_of(str(tmp_path / "empty"), "--to", "cp", "--out", str(tmp_path / "a"))
    assert "no such run folder" in error_of(str(tmp_path / "missing"), "--to", "cp", "--out", str(tmp_path / "a"))
    with pytest.raises(SystemExit):  # argparse: the usage, then one line
        main(["distill", str(teacher_run), "--to", "nerf", "--out", str(tmp_path / "a")])
    assert "--to: unknown field 'nerf' (known: cp, " in capsys.readouterr().err.strip().splitlines()[-1]
    newer = tmp_path / "newer"
    shutil.copytree(teacher_run, newer)
    monkeypatch.setattr(checkpoint_module, "FORMAT_VERSION", checkpoint_module.FORMAT_VERSION + 1)
    save_checkpoint(newer / "checkpoint.safetensors", load_checkpoint(newer))
    monkeypatch.undo()
    assert "newer than this tensorfields reads" in error_of(str(newer), "--to", "cp", "--out", str(tmp_path / "a"))
    with pytest.raises(RunFolderError, match="holds another run"):
        distill_run(teacher_run, "cp", teacher_run, iters=1, views=1)
    assert (teacher_run / "checkpoint.safetensors").is_file() and not (teacher_run / TEACHER_VIEWS).exists()


def test_ctrl_c_keeps_a_student_that_resume_continues(teacher_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, step = tmp_path / "student", Trainer.step

    def interrupted(trainer: Trainer) -> dict:
        if trainer.state.iteration == 30:
            raise KeyboardInterrupt
        return step(trainer)

    monkeypatch.setattr(Trainer, "step", interrupted)
    with pytest.raises(RunInterrupted, match="continue with --resume"):
        distill_run(teacher_run, "trivec", out, iters=60, views=VIEWS, log=lambda line: None)
    monkeypatch.undo()
    assert load_checkpoint(out).model.field.name == "trivec"

    def no_rendering(*args: object) -> None:
        raise AssertionError("a resumed distillation renders its training views again")

    monkeypatch.setattr(distill_module, "sampled_views", no_rendering)  # the held-out views are the scene's images
    lines: list[str] = []
    metrics = distill_run(teacher_run, "trivec", out, iters=60, views=VIEWS, resume=True, log=lines.append)
    assert any("resumed at iteration 30" in line for line in lines) and metrics["iterations"] == 60

