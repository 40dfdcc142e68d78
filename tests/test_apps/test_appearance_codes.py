"""Appearance codes in the apps: `--appearance` auto/on/off (apps/training/config.py), training
rays coloured by their image's code (trainer.py), checkpoints with codes, held-out views with the
mean code or a code fitted on the left half (apps/evaluate/appearance.py), `eval --appearance`,
and the colour jitter of `bench train --jitter-appearance`."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import coded_model, small_cameras, small_config, trained_model

from apps.bench.train import jitter_appearance
from apps.cli import main
from apps.commands.eval import APPEARANCE_CHOICES
from apps.evaluate import APPEARANCE_MODES, fit_code
from apps.evaluate.appearance import check_appearance_mode, left_half_rays
from apps.runs import CHECKPOINT_NAME, Checkpoint, load_checkpoint, save_checkpoint
from apps.training import TrainConfig, train_run
from apps.training.config import uses_appearance_codes
from data import load_scene
from fields.appearance import codes_of


@pytest.mark.parametrize(
    ("kind", "alpha", "setting", "decoder", "expected"),
    [
        ("colmap", False, "auto", None, True),
        ("nerfstudio", False, "auto", None, True),  # photo folders and videos after SfM
        ("nerfstudio", True, "auto", None, False),  # rendered scenes with alpha (demo, sphere)
        ("blender", True, "auto", None, False),
        ("llff", False, "auto", None, False),
        ("colmap", False, "auto", "sh", False),
        ("blender", True, "on", None, True),
        ("colmap", False, "off", None, False),
    ],
)
def test_auto_picks_codes_by_the_kind_of_scene(kind: str, alpha: bool, setting: str, decoder: str | None, expected: bool) -> None:
    scene = SimpleNamespace(kind=kind, alpha=torch.zeros(1) if alpha else None)
    config = TrainConfig(data="x", appearance=setting, decoder=decoder)
    assert uses_appearance_codes(config, scene) is expected


def test_appearance_on_with_the_sh_decoder_is_one_line(sphere_scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--data", str(sphere_scene), "--out", str(tmp_path / "run"), "--appearance", "on", "--decoder", "sh"]
    assert main(args) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "--appearance on" in message and "--decoder sh" in message
    assert not (tmp_path / "run").exists()


def test_a_run_with_codes_trains_them_saves_them_and_evaluates_both_ways(sphere_scene: Path, tmp_path: Path) -> None:
    """Codes per training image, moved by training, in the checkpoint; metrics.json says the
    mean code coloured the held-out views; eval fits codes on the left halves when asked."""
    run = tmp_path / "run"
    metrics = train_run(small_config(sphere_scene, run, iters=30, appearance="on"), log=lambda _: None)
    assert metrics["appearance"] == "mean code"
    codes = codes_of(load_checkpoint(run).model.field)
    assert codes is not None and codes.weight.shape[0] == len(load_scene(sphere_scene).split("train"))
    assert codes.weight.abs().sum() > 0
    report = tmp_path / "eval.json"
    assert main(["eval", str(run), "--appearance", "fit-left-half", "--json", str(report)]) == 0
    assert json.loads(report.read_text())["appearance"] == "fitted on the left half, scored on the right half"


def test_a_checkpoint_with_codes_and_their_adam_state_round_trips(tmp_path: Path) -> None:
    model = coded_model()
    optimizer = torch.optim.Adam(model.field.param_groups(), betas=(0.9, 0.99))
    rays = left_half_rays(small_cameras(), 0)[1]
    rays.code = torch.arange(len(rays)) % 3
    model(rays).rgb.sum().backward()
    optimizer.step()
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, Checkpoint(model, {"iteration": 1}, optimizer.state_dict()))
    loaded = load_checkpoint(path)
    assert torch.equal(codes_of(loaded.model.field).weight, model.field.codes.weight)
    assert set(loaded.optimizer_state["state"]) == set(optimizer.state_dict()["state"])


def test_views_render_with_the_mean_code_without_camera_indices() -> None:
    model = coded_model()
    cameras = small_cameras()
    plain = model.render_image(cameras, 1)["rgb"]
    torch.testing.assert_close(plain, model.render_image(cameras, 1, code=model.field.codes.mean().detach())["rgb"])
    other = model.render_image(cameras, 1, code=model.field.codes.weight[2].detach())["rgb"]
    assert (plain - other).abs().max() > 1e-3


def test_fitting_on_the_left_half_recovers_a_view_of_another_appearance() -> None:
    """A view rendered with one image's code is what the mean code renders wrong; the code fitted
    on its left half (field frozen) brings the left half's error down."""
    model = coded_model()
    cameras = small_cameras()
    image = model.render_image(cameras, 0, code=model.field.codes.weight[1].detach())["rgb"]
    pixels, _ = left_half_rays(cameras, 0)
    before = {name: p.detach().clone() for name, p in model.field.named_parameters()}

    def left_error(code: torch.Tensor | None) -> float:
        rgb = model.render_image(cameras, 0, code=code)["rgb"].reshape(-1, 3)[pixels]
        return float(torch.mean((rgb - image.reshape(-1, 3)[pixels]) ** 2))

    fitted = fit_code(model, cameras, 0, image)
    assert left_error(fitted) < 0.5 * left_error(None)
    assert all(torch.equal(p, before[name]) and p.requires_grad for name, p in model.field.named_parameters())


def test_fitting_needs_codes_and_the_modes_match_the_flag() -> None:
    model, _ = trained_model(steps=0)
    with pytest.raises(ValueError) as info:
        check_appearance_mode(model, "fit-left-half")
    assert "--appearance fit-left-half" in str(info.value) and "\n" not in str(info.value)
    check_appearance_mode(model, "mean")
    assert APPEARANCE_CHOICES == list(APPEARANCE_MODES)


def test_the_colour_jitter_changes_training_images_only(sphere_scene: Path) -> None:
    scene = load_scene(sphere_scene)
    jittered = jitter_appearance(scene, seed=0)
    train, held_out = scene.split("train"), scene.split("test")
    assert torch.equal(jittered.images[held_out], scene.images[held_out])
    assert not torch.equal(jittered.images[train], scene.images[train])
    assert torch.equal(jitter_appearance(scene, seed=0).images, jittered.images)
    background = scene.alpha[train] == 0  # the sphere's transparent surroundings stay as they were
    assert torch.equal(jittered.images[train][background], scene.images[train][background])
