"""Checkpoints: exact round trip, atomic writes, and one clear error per kind of bad file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import small_cameras, trained_model
from safetensors import safe_open
from safetensors.torch import save_file

import apps.runs.checkpoint as checkpoint_module
from apps.runs import CHECKPOINT_NAME, FORMAT_VERSION, Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from fields import VMField
from render import NDC, render_image

BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])


def make_checkpoint() -> tuple[Checkpoint, torch.optim.Adam]:
    model, optimizer = trained_model()
    train_state = {"iteration": 3, "shrunk": True, "lr_scale": 0.5, "history": [1.5, 2.25]}
    return Checkpoint(model, train_state, optimizer.state_dict()), optimizer


def test_round_trip_renders_identically(tmp_path: Path) -> None:
    original, _ = make_checkpoint()
    path = tmp_path / "run" / CHECKPOINT_NAME
    save_checkpoint(path, original)
    loaded = load_checkpoint(path)
    assert type(loaded.model.field) is VMField
    assert loaded.model.field.config() == original.model.field.config()
    assert loaded.model.settings == original.model.settings
    assert loaded.train_state == original.train_state
    assert torch.equal(loaded.model.grid.occupied, original.model.grid.occupied)
    assert torch.equal(loaded.model.grid.density_ema, original.model.grid.density_ema)
    assert torch.equal(loaded.model.grid.aabb, original.model.grid.aabb)
    for key, value in original.model.field.state_dict().items():
        assert torch.equal(loaded.model.field.state_dict()[key], value), key
    cams = small_cameras()
    for index in range(len(cams)):
        want = render_image(original.model.field, original.model.grid, cams, index, original.model.settings)
        got = render_image(loaded.model.field, loaded.model.grid, cams, index, loaded.model.settings)
        assert want["opacity"].max() > 0.1  # something is actually rendered
        for key in ("rgb", "opacity", "depth"):
            assert (got[key] - want[key]).abs().max().item() == 0.0, key
    # a run folder works as well as the file
    assert torch.equal(load_checkpoint(tmp_path / "run").model.field.density_plane[0], original.model.field.density_plane[0])


def test_optimizer_state_restores_into_fresh_adam(tmp_path: Path) -> None:
    original, optimizer = make_checkpoint()
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, original)
    loaded = load_checkpoint(path)
    restored = torch.optim.Adam(loaded.model.field.param_groups())
    restored.load_state_dict(loaded.optimizer_state)
    want, got = optimizer.state_dict(), restored.state_dict()
    assert [g["name"] for g in got["param_groups"]] == ["factors", "network"]
    for g_want, g_got in zip(want["param_groups"], got["param_groups"]):
        assert g_got["params"] == g_want["params"] and g_got["lr"] == g_want["lr"]
        assert tuple(g_got["betas"]) == (0.9, 0.99)
    assert set(got["state"]) == set(want["state"])
    for pid, state in want["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(got["state"][pid][key]), torch.as_tensor(value)), (pid, key)

    # one more identical step on both gives identical parameters
    def step(field: VMField, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad()
        field.density(torch.linspace(-0.5, 0.5, 90).view(30, 3)).sum().backward()
        opt.step()

    step(original.model.field, optimizer)
    step(loaded.model.field, restored)
    for (name, a), b in zip(original.model.field.named_parameters(), loaded.model.field.parameters()):
        assert torch.equal(a, b), name


def test_checkpoint_without_optimizer(tmp_path: Path) -> None:
    model, _ = trained_model(steps=0)
    model.settings.ndc = NDC(focal=20.0, width=16, height=12, near=1.0)
    save_checkpoint(tmp_path / "ck.safetensors", Checkpoint(model))
    loaded = load_checkpoint(tmp_path / "ck.safetensors")
    assert loaded.optimizer_state is None and loaded.train_state == {}
    assert loaded.model.settings == model.settings and isinstance(loaded.model.settings.ndc, NDC)


def test_crash_during_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = make_checkpoint()
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, first)
    before = path.read_bytes()

    def crashing_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"\x40\x00\x00\x00\x00\x00\x00\x00{\"field.aabb\": {\"dtype\": ")  # half a header
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "save_file", crashing_save_file)
    second, _ = make_checkpoint()
    second.train_state = {"iteration": 999}
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, second)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [CHECKPOINT_NAME], "a temporary file was left behind"
    assert load_checkpoint(path).train_state == first.train_state
    # a crash on the very first save leaves nothing at all
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "new" / CHECKPOINT_NAME, second)
    assert os.listdir(tmp_path / "new") == []


def test_checkpoint_file_permissions_follow_umask(tmp_path: Path) -> None:
    """Like every other output of a run (config.json, renders), the checkpoint is created with the
    user's umask, not the 0600 of a private temporary file."""
    original, _ = make_checkpoint()
    path = tmp_path / CHECKPOINT_NAME
    umask = os.umask(0o022)
    try:
        save_checkpoint(path, original)
    finally:
        os.umask(umask)
    mode = path.stat().st_mode & 0o777
    assert mode == 0o644, f"checkpoint written with mode {oct(mode)}: tempfile.mkstemp's 0600 survives os.replace"


def assert_checkpoint_error(path: Path, *words: str) -> None:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, message


def test_missing_file(tmp_path: Path) -> None:
    assert_checkpoint_error(tmp_path / "nope.safetensors", "no checkpoint")
    assert_checkpoint_error(tmp_path, "no checkpoint")  # a folder without checkpoint.safetensors


@pytest.mark.parametrize(
    "content",
    [os.urandom(4096), b"", b"\x10\x00\x00\x00\x00\x00\x00\x00this is no json"],
    ids=["random", "empty", "bad-header"],
)
def test_corrupt_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(content)
    assert_checkpoint_error(path, "not a readable safetensors checkpoint")


def test_truncated_checkpoint(tmp_path: Path) -> None:
    original, _ = make_checkpoint()
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, original)
    path.write_bytes(path.read_bytes()[:-1000])  # e.g. an interrupted copy
    assert_checkpoint_error(path, "not a readable safetensors checkpoint")


def test_safetensors_without_tensorfields_header(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    assert_checkpoint_error(path, "tensorfields header")
    save_file({"weight": torch.zeros(3)}, str(path))
    assert_checkpoint_error(path, "tensorfields header")


def test_newer_format_version(tmp_path: Path) -> None:
    original, _ = make_checkpoint()
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, original)
    with safe_open(str(path), framework="pt") as handle:
        header = json.loads(handle.metadata()["tensorfields"])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    assert header["format_version"] == FORMAT_VERSION
    header["format_version"] = FORMAT_VERSION + 1
    save_file(tensors, str(path), metadata={"tensorfields": json.dumps(header)})
    assert_checkpoint_error(path, f"v{FORMAT_VERSION + 1}", "newer")


@pytest.mark.parametrize(
    "header",
    ["{not json", json.dumps({"format_version": 1, "field": "vm"}), json.dumps({"format_version": 1, "field": "nope", "field_config": {}})],
    ids=["invalid-json", "missing-keys", "unknown-field"],
)
def test_malformed_tensorfields_header(tmp_path: Path, header: str) -> None:
    """Whatever is wrong inside the header, the user gets a CheckpointError naming the file
    (CheckpointError's contract), not a bare JSONDecodeError/KeyError/ValueError."""
    path = tmp_path / CHECKPOINT_NAME
    save_file({"field.aabb": BOX.clone()}, str(path), metadata={"tensorfields": header})
    try:
        load_checkpoint(path)
    except CheckpointError as error:
        assert str(path) in str(error)
    except Exception as error:  # noqa: BLE001 - the point of the test
        pytest.fail(f"load_checkpoint raised {type(error).__name__}({error}) instead of CheckpointError for a malformed header")
    else:
        pytest.fail("a malformed header loaded without error")
