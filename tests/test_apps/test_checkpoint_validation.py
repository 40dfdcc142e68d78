"""A checkpoint (and its run's config.json) is checked before it is used: each kind of damage,
made by editing a valid run's file, is refused by `load_checkpoint`, `Trainer(resume=True)` and
`tensorfields eval` with one line naming the file and the tensor or header key."""

from __future__ import annotations

import json
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import ROOT, make_grid_field, make_trivec_field, small_config, trained_model
from safetensors import safe_open
from safetensors.torch import save_file

from apps.cli import main
from apps.runs import CHECKPOINT_NAME, FORMAT_VERSION, Checkpoint, CheckpointError, load_checkpoint, load_run_config, save_checkpoint
from apps.runs.validate import MAX_GRID_RESOLUTION, MAX_STEPS_PER_RAY, MAX_TENSOR_ELEMENTS
from apps.training import Trainer
from data import load_scene
from fields import FIELDS

Tensors = dict[str, torch.Tensor]
Header = dict[str, Any]


@pytest.fixture(scope="module")
def run(sphere_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder written by a short training run: checkpoint with Adam's state, config.json."""
    out = tmp_path_factory.mktemp("valid") / "run"
    trainer = Trainer(run_config(sphere_scene, out), load_scene(sphere_scene))
    for _ in range(3):
        trainer.step()
    trainer.save()
    return out


def run_config(scene: Path, out: Path) -> Any:
    return small_config(scene, out, iters=3, batch_size=256, grid_init=8, grid_final=10, occupancy_resolution=16)


def read(path: Path) -> tuple[Tensors, Header]:
    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, json.loads(handle.metadata()["tensorfields"])


def write(path: Path, tensors: Tensors, header: Header) -> None:
    save_file({key: value.contiguous() for key, value in tensors.items()}, str(path), metadata={"tensorfields": json.dumps(header)})


def broken_run(run: Path, folder: Path, edit: Callable[[Tensors, Header], None]) -> Path:
    """A copy of `run` whose checkpoint went through `edit(tensors, header)` (in place)."""
    copy = folder / "broken"
    shutil.copytree(run, copy)
    tensors, header = read(copy / CHECKPOINT_NAME)
    edit(tensors, header)
    write(copy / CHECKPOINT_NAME, tensors, header)
    return copy


def make_compact(tensors: Tensors, header: Header) -> None:
    """What `tensorfields slim` writes: packed occupancy bits, no running density, no Adam state."""
    occupied = tensors.pop("grid.occupied")
    del tensors["grid.density_ema"]
    for key in [key for key in tensors if key.startswith("optim.")]:
        del tensors[key]
    del header["optimizer_groups"]
    tensors["grid.occupied_bits"] = torch.from_numpy(np.packbits(occupied.flatten().numpy()))
    header["grid_resolution"] = list(occupied.shape)


# --- the kinds of damage: (edit, the tensor or key named, words of the message) ----------------
def moment_of_wrong_shape(t: Tensors, h: Header) -> None:
    t["optim.0.exp_avg"] = torch.zeros(5)


def step_not_scalar(t: Tensors, h: Header) -> None:
    t["optim.0.step"] = torch.zeros(2)


def moment_in_float64(t: Tensors, h: Header) -> None:
    t["optim.1.exp_avg_sq"] = t["optim.1.exp_avg_sq"].double()


def moment_missing(t: Tensors, h: Header) -> None:
    del t["optim.2.exp_avg_sq"]


def state_of_unknown_parameter(t: Tensors, h: Header) -> None:
    t["optim.99.step"] = torch.tensor(3.0)


def negative_second_moment(t: Tensors, h: Header) -> None:
    t["optim.3.exp_avg_sq"] = -t["optim.3.exp_avg_sq"] - 1.0


def group_one_parameter_short(t: Tensors, h: Header) -> None:
    h["optimizer_groups"][1]["params"] = h["optimizer_groups"][1]["params"][:-1]


def group_learning_rate_string(t: Tensors, h: Header) -> None:
    h["optimizer_groups"][0]["lr"] = "fast"


def field_tensor_missing(t: Tensors, h: Header) -> None:
    del t["field.density_line.1"]


def field_tensor_unexpected(t: Tensors, h: Header) -> None:
    t["field.extra"] = torch.zeros(3)


def stray_tensor(t: Tensors, h: Header) -> None:
    t["notes"] = torch.zeros(1)


def factor_of_wrong_shape(t: Tensors, h: Header) -> None:
    t["field.app_plane.0"] = t["field.app_plane.0"][:, :, :-1]


def factor_in_float64(t: Tensors, h: Header) -> None:
    t["field.basis.weight"] = t["field.basis.weight"].double()


def nan_in_factor(t: Tensors, h: Header) -> None:
    t["field.density_plane.0"].view(-1)[:3] = float("nan")


def inf_in_density(t: Tensors, h: Header) -> None:
    t["grid.density_ema"][:2] = float("inf")


def absurd_resolution(t: Tensors, h: Header) -> None:
    h["field_config"]["resolution"] = [3000, 3000, 3000]


def absurd_occupancy_grid(t: Tensors, h: Header) -> None:
    t["grid.occupied"] = torch.zeros(2 * MAX_GRID_RESOLUTION, 2, 2, dtype=torch.bool)
    t["grid.density_ema"] = torch.zeros(8 * MAX_GRID_RESOLUTION)


def absurd_compact_occupancy_grid(t: Tensors, h: Header) -> None:
    make_compact(t, h)
    h["grid_resolution"] = [3000, 3000, 3000]


def compact_bits_short(t: Tensors, h: Header) -> None:
    make_compact(t, h)
    t["grid.occupied_bits"] = t["grid.occupied_bits"][:-1]


def density_not_per_cell(t: Tensors, h: Header) -> None:
    t["grid.density_ema"] = t["grid.density_ema"][:-1]


def inverted_grid_box(t: Tensors, h: Header) -> None:
    t["grid.aabb"] = t["grid.aabb"].flip(0)


def inverted_field_box(t: Tensors, h: Header) -> None:
    t["field.aabb"] = t["field.aabb"].flip(0)


def newer_format(t: Tensors, h: Header) -> None:
    h["format_version"] = FORMAT_VERSION + 1


def format_as_string(t: Tensors, h: Header) -> None:
    h["format_version"] = str(FORMAT_VERSION)


def unknown_field(t: Tensors, h: Header) -> None:
    h["field"] = "nope"


def field_config_of_wrong_type(t: Tensors, h: Header) -> None:
    h["field_config"]["resolution"] = "large"


def iteration_as_string(t: Tensors, h: Header) -> None:
    h["train_state"]["iteration"] = "12"


def strategy_counter_as_list(t: Tensors, h: Header) -> None:
    h["train_state"]["strategies"]["tensorf"]["upsamples_done"] = [5]


def strategies_not_an_object(t: Tensors, h: Header) -> None:
    h["train_state"]["strategies"] = ["tensorf"]


def unknown_render_setting(t: Tensors, h: Header) -> None:
    h["render"]["samples"] = 64


def tiny_render_step(t: Tensors, h: Header) -> None:
    h["render"]["step_size"] = 1e-9


CASES = [
    pytest.param(moment_of_wrong_shape, "optim.0.exp_avg", ["shape [5]", "field.density_plane.0"], id="adam-moment-shape"),
    pytest.param(step_not_scalar, "optim.0.step", ["scalar"], id="adam-step-not-scalar"),
    pytest.param(moment_in_float64, "optim.1.exp_avg_sq", ["float64", "float32"], id="adam-moment-dtype"),
    pytest.param(moment_missing, "optim.2.exp_avg_sq", ["missing"], id="adam-moment-missing"),
    pytest.param(state_of_unknown_parameter, "optim.99.step", ["no group"], id="adam-unknown-parameter"),
    pytest.param(negative_second_moment, "optim.3.exp_avg_sq", ["negative"], id="adam-negative-second-moment"),
    pytest.param(group_one_parameter_short, "optimizer_groups[1].params", ["'network'"], id="optimizer-group-size"),
    pytest.param(group_learning_rate_string, "optimizer_groups[0].lr", ["not a finite number"], id="optimizer-lr-string"),
    pytest.param(field_tensor_missing, "field.density_line.1", ["missing"], id="field-tensor-missing"),
    pytest.param(field_tensor_unexpected, "field.extra", ["unexpected"], id="field-tensor-unexpected"),
    pytest.param(stray_tensor, "notes", ["unexpected"], id="stray-tensor"),
    pytest.param(factor_of_wrong_shape, "field.app_plane.0", ["shape", "field_config implies"], id="factor-shape"),
    pytest.param(factor_in_float64, "field.basis.weight", ["float64"], id="factor-dtype"),
    pytest.param(nan_in_factor, "field.density_plane.0", ["3 of", "not finite"], id="factor-nan"),
    pytest.param(inf_in_density, "grid.density_ema", ["2 of", "not finite"], id="grid-density-inf"),
    pytest.param(absurd_resolution, "field_config", [f"{MAX_TENSOR_ELEMENTS:,}", "app_plane"], id="absurd-resolution"),
    pytest.param(absurd_occupancy_grid, "grid.occupied", [f"{MAX_GRID_RESOLUTION} per axis"], id="absurd-occupancy-grid"),
    pytest.param(absurd_compact_occupancy_grid, "grid_resolution", ["[3000, 3000, 3000]", f"{MAX_GRID_RESOLUTION}"], id="absurd-compact-grid"),
    pytest.param(compact_bits_short, "grid.occupied_bits", ["shape"], id="compact-bits-short"),
    pytest.param(density_not_per_cell, "grid.density_ema", ["one value per cell"], id="grid-density-shape"),
    pytest.param(inverted_grid_box, "grid.aabb", ["min < max"], id="inverted-grid-aabb"),
    pytest.param(inverted_field_box, "field.aabb", ["min < max"], id="inverted-field-aabb"),
    pytest.param(newer_format, "format_version", ["newer", "upgrade"], id="newer-format"),
    pytest.param(format_as_string, "format_version", ["not a format version"], id="format-version-string"),
    pytest.param(unknown_field, "field", ["unknown field 'nope'"], id="unknown-field"),
    pytest.param(field_config_of_wrong_type, "field_config", ["vm field"], id="field-config-type"),
    pytest.param(iteration_as_string, "train_state.iteration", ['"12" is not an integer'], id="train-state-iteration-string"),
    pytest.param(strategy_counter_as_list, "train_state.strategies.tensorf.upsamples_done", ["not an integer"], id="strategy-state-type"),
    pytest.param(strategies_not_an_object, "train_state.strategies", ["not a JSON object"], id="strategies-not-object"),
    pytest.param(unknown_render_setting, "render.samples", ["unknown render setting"], id="render-unknown-setting"),
    pytest.param(tiny_render_step, "render.step_size", [f"{MAX_STEPS_PER_RAY:,}"], id="render-tiny-step"),
]


def assert_one_line(message: str, path: Path, where: str, words: list[str]) -> None:
    """`<path>: <where>: <problem>` on one line, the path once."""
    assert "\n" not in message, message
    assert message.startswith(f"{path}: {where}: "), message
    assert message.count(str(path)) == 1, message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("edit, where, words", CASES)
def test_load_checkpoint_refuses(run: Path, tmp_path: Path, edit: Callable, where: str, words: list[str]) -> None:
    path = broken_run(run, tmp_path, edit) / CHECKPOINT_NAME
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert_one_line(str(info.value), path, where, words)


@pytest.mark.parametrize("edit, where, words", CASES)
def test_eval_refuses_in_one_line(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, edit: Callable, where: str, words: list[str]) -> None:
    broken = broken_run(run, tmp_path, edit)
    capsys.readouterr()
    assert main(["eval", str(broken)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tensorfields eval: error: "), lines
    assert_one_line(lines[0].removeprefix("tensorfields eval: error: "), broken / CHECKPOINT_NAME, where, words)


def test_resume_refuses_a_moment_of_the_wrong_shape(run: Path, sphere_scene: Path, tmp_path: Path) -> None:
    """The fused Adam step would write past a 5-element moment of a larger parameter."""
    broken = broken_run(run, tmp_path, moment_of_wrong_shape)
    with pytest.raises(CheckpointError) as info:
        Trainer(run_config(sphere_scene, broken), load_scene(sphere_scene), resume=True)
    assert_one_line(str(info.value), broken / CHECKPOINT_NAME, "optim.0.exp_avg", ["shape [5]"])


def test_absurd_resolution_fails_fast_without_allocating(run: Path, tmp_path: Path) -> None:
    """A 3000^3 VM would be about 7 GB; the header is refused before anything is allocated."""
    path = broken_run(run, tmp_path, absurd_resolution) / CHECKPOINT_NAME
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="field_config"):
        load_checkpoint(path)
    assert time.perf_counter() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 200 * 1024


def test_newer_format_says_so_once(run: Path, tmp_path: Path) -> None:
    path = broken_run(run, tmp_path, newer_format) / CHECKPOINT_NAME
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.count(str(path)) == 1, message
    problem = message.removeprefix(f"{path}: ")
    assert problem.count("newer") == 1 and "malformed" not in problem, message


# --- config.json ---------------------------------------------------------------------------------
def without_scene(config: dict) -> None:
    del config["scene"]


def c2w_of_15_numbers(config: dict) -> None:
    config["scene"]["train_cameras"]["c2w"][0] = config["scene"]["train_cameras"]["c2w"][0][:15]


def data_not_a_string(config: dict) -> None:
    config["train"]["data"] = ["scene"]


def width_as_string(config: dict) -> None:
    config["scene"]["width"] = "40"


def fewer_cameras_than_views(config: dict) -> None:
    config["scene"]["train_cameras"]["c2w"].pop()


CONFIG_CASES = [
    pytest.param(without_scene, "scene", ["missing"], id="no-scene"),
    pytest.param(c2w_of_15_numbers, "scene.train_cameras.c2w[0]", ["15 numbers", "16"], id="c2w-15-numbers"),
    pytest.param(data_not_a_string, "train.data", ["not a string"], id="data-not-string"),
    pytest.param(width_as_string, "scene.width", ["not an integer"], id="width-string"),
    pytest.param(fewer_cameras_than_views, "scene.train_cameras.c2w", ["num_train"], id="cameras-views-mismatch"),
]


@pytest.mark.parametrize("edit, where, words", CONFIG_CASES)
def test_run_config_refused(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, edit: Callable, where: str, words: list[str]) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    config = json.loads((broken / "config.json").read_text())
    edit(config)
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        load_run_config(broken)
    assert_one_line(str(info.value), broken / "config.json", where, words)
    capsys.readouterr()
    assert main(["eval", str(broken)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0] == f"tensorfields eval: error: {info.value}", lines


def test_run_config_not_an_object(run: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        load_run_config(broken)


# --- what must still load ------------------------------------------------------------------------
def test_valid_run_and_its_compact_forms_load(run: Path, tmp_path: Path) -> None:
    loaded = load_checkpoint(run)
    assert loaded.optimizer_state is not None and loaded.optimizer_state["state"]
    assert load_run_config(run)["scene"]["num_train"] > 0
    for half in (False, True):
        path = tmp_path / f"compact-{half}.safetensors"
        save_checkpoint(path, Checkpoint(loaded.model), compact=True, half=half)
        again = load_checkpoint(path)
        assert torch.equal(again.model.grid.occupied, loaded.model.grid.occupied)


def test_the_old_fixture_loads() -> None:
    checkpoint = load_checkpoint(ROOT / "tests" / "fixtures" / "v2_vm_run")
    assert checkpoint.train_state["iteration"] > 0 and checkpoint.optimizer_state is not None


@pytest.mark.parametrize("kind", ["vm", "cp", "trivec"])
def test_every_field_with_adam_state_round_trips(kind: str, tmp_path: Path) -> None:
    """Each registered field, with Adam's state over its param groups, passes the checks."""
    model, _ = trained_model(steps=0)
    field = make_trivec_field() if kind == "trivec" else make_grid_field(kind)
    assert type(field).state_shapes(field.config()) == {k: tuple(v.shape) for k, v in field.state_dict().items()}
    optimizer = torch.optim.Adam(field.param_groups(), betas=(0.9, 0.99))
    optimizer.zero_grad()
    field.density(torch.rand(64, 3) - 0.5).sum().backward()
    optimizer.step()
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, Checkpoint(model.with_field(field), {"iteration": 1}, optimizer.state_dict()))
    loaded = load_checkpoint(path)
    assert type(loaded.model.field) is FIELDS[kind]
    assert set(loaded.optimizer_state["state"]) == set(optimizer.state_dict()["state"])


def test_crowded_trivec_centres_are_refused_before_the_table_is_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every centre moved onto one spot would list all tensors in every cell there: a table of
    cells x tensors entries. Such a checkpoint is refused, naming the bound, not allocated."""
    import fields.strivec.index as index

    model, _ = trained_model(steps=0)
    field = make_trivec_field()
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, Checkpoint(model.with_field(field)))
    tensors, header = read(path)
    for i in range(len(field.scales)):
        tensors[f"field.scales.{i}.centers"] = torch.zeros(field.scales[i].num_tensors, 3)
    write(path, tensors, header)
    limit = max(scale.table.numel() for scale in field.scales)
    monkeypatch.setattr(index, "MAX_TABLE_ENTRIES", limit)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert "field: does not load" in message and "crowded on one spot" in message and f"more than {limit:,} entries" in message
