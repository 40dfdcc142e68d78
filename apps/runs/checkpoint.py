"""Checkpoints: one `.safetensors` file with the tensors and a JSON header; atomic writes.

A checkpoint holds a `render.Model` (field, occupancy grid, render settings) and the training
state. Layout: tensors `field.*` (field state), `grid.*` (occupancy grid), `optim.<param>.<key>`
(optimizer state, optional), `state.<strategy>.<key>` (tensors of a training strategy's state,
such as pose refinement's corrections: the JSON holds `{"tensor": "state.<strategy>.<key>"}` in
their place); metadata key "tensorfields" holds JSON with the format version,
field name and config, render settings, training state (the loop's counters and each training
strategy's state) and the optimizer's param groups. Loading never unpickles.

Compact checkpoints (`tensorfields slim`) are for rendering, not for resuming: the occupancy
grid is stored as packed bits (`grid.occupied_bits`, its running density is dropped), there is
no optimizer state, and with `half` the field's floating-point parameters are float16 (they
load back into float32). Version 2 added them; version 1 files still load.

Loading checks a file before building anything from it (`apps.runs.validate`: the header's
values and limits, every tensor's name, shape and dtype, then the values) and refuses a bad one
with a single-line `CheckpointError` naming the file and the tensor or header key.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save, save_file

from fields import field_class
from render import Model, OccupancyGrid, RenderSettings

from .validate import (
    Invalid,
    TensorInfo,
    as_dict,
    as_str,
    check_field_layout,
    check_grid_layout,
    check_names,
    check_optimizer_layout,
    check_render,
    check_train_state,
    check_values,
    entry,
)

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_nbytes",
    "CHECKPOINT_NAME",
]

FORMAT_VERSION = 2
CHECKPOINT_NAME = "checkpoint.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


@dataclass
class Checkpoint:
    """What a checkpoint restores. `optimizer_state` is a torch optimizer state dict or None."""

    model: Model
    train_state: dict[str, Any] = dataclass_field(default_factory=dict)
    optimizer_state: dict[str, Any] | None = None


def _serialize(checkpoint: Checkpoint, compact: bool, half: bool) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a checkpoint file (see the module docstring)."""
    model = checkpoint.model
    parameters = {name for name, _ in model.field.named_parameters()}
    tensors = {}
    for name, value in model.field.state_dict().items():
        if half and name in parameters and value.is_floating_point():
            value = value.half()
        tensors[f"field.{name}"] = value
    header: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "field": model.field.name,
        "field_config": model.field.config(),
        "render": model.settings.to_dict(),
    }
    header["train_state"], state_tensors = _split_state_tensors(checkpoint.train_state)
    tensors.update(state_tensors)
    if compact:
        occupied = model.grid.occupied.cpu()
        tensors["grid.aabb"] = model.grid.aabb
        tensors["grid.occupied_bits"] = torch.from_numpy(np.packbits(occupied.flatten().numpy()))
        header["grid_resolution"] = list(occupied.shape)
    else:
        tensors.update({f"grid.{k}": v for k, v in model.grid.state_dict().items()})
        if checkpoint.optimizer_state is not None:
            header["optimizer_groups"] = checkpoint.optimizer_state["param_groups"]
            for param_id, state in checkpoint.optimizer_state["state"].items():
                for key, value in state.items():
                    tensors[f"optim.{param_id}.{key}"] = torch.as_tensor(value)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return tensors, {"tensorfields": json.dumps(header)}


def _split_state_tensors(train_state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """`train_state` with each tensor of a strategy's state replaced by `{"tensor": name}`, and
    those tensors by name (`state.<strategy>.<key>`)."""
    strategies = train_state.get("strategies")
    if not isinstance(strategies, dict):
        return train_state, {}
    tensors: dict[str, torch.Tensor] = {}
    split: dict[str, Any] = {}
    for strategy, state in strategies.items():
        split[strategy] = {}
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                name = f"state.{strategy}.{key}"
                tensors[name] = value
                value = {"tensor": name}
            split[strategy][key] = value
    return {**train_state, "strategies": split}, tensors


def _join_state_tensors(train_state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The inverse of `_split_state_tensors`: each `{"tensor": name}` of a strategy's state replaced
    by the file's tensor `name` (`Invalid` when the file lacks it)."""
    strategies = train_state.get("strategies")
    if not isinstance(strategies, dict):
        return train_state
    joined: dict[str, Any] = {}
    for strategy, state in strategies.items():
        joined[strategy] = dict(state)
        for key, value in state.items():
            if isinstance(value, dict) and set(value) == {"tensor"}:
                if value["tensor"] not in tensors:
                    raise Invalid(f"train_state.strategies.{strategy}.{key}", f"names tensor {value['tensor']!r}, which the file does not hold")
                joined[strategy][key] = tensors[value["tensor"]]
    return {**train_state, "strategies": joined}


def checkpoint_nbytes(checkpoint: Checkpoint, compact: bool = True, half: bool = False) -> int:
    """Size in bytes of the file `save_checkpoint(..., compact, half)` would write."""
    return len(save(*_serialize(checkpoint, compact, half)))


def save_checkpoint(path: str | Path, checkpoint: Checkpoint, compact: bool = False, half: bool = False) -> None:
    """Write `checkpoint` to `path` atomically (temporary file in the same folder, then rename).

    `compact` writes a render-only checkpoint (packed occupancy, no optimizer state); `half`
    also stores the field's parameters as float16.
    """
    path = Path(path)
    tensors, metadata = _serialize(checkpoint, compact, half)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp_name, metadata=metadata)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        with open(tmp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """Read a checkpoint file (or a run folder holding `checkpoint.safetensors`).

    Nothing is built from the file before it is checked (`apps.runs.validate`): the header's
    values; the size of the field its config describes (bounded) and every `field.*` tensor's
    name, shape and dtype against that field's state; the occupancy grid's tensors; Adam's
    tensors against the parameters they belong to; then that the values are finite. A file that
    fails is refused with a `CheckpointError` of one line: `<path>: <tensor or key>: <problem>`.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint here (train a field first: tensorfields train ...)")
    try:
        opened = safe_open(str(path), framework="pt", device=str(device))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(_one_line(f"{path}: not a readable safetensors checkpoint ({error})")) from None
    with opened as handle:
        metadata = handle.metadata() or {}
        if "tensorfields" not in metadata:
            raise CheckpointError(f"{path}: safetensors file without a tensorfields header")
        try:
            return _load(handle, metadata["tensorfields"], device)
        except Invalid as error:
            raise CheckpointError(_one_line(f"{path}: {error}")) from None


def _load(handle: Any, text: str, device: torch.device | str) -> Checkpoint:
    """The checkpoint of an open file whose header JSON is `text`; raises `Invalid`."""
    try:
        header = json.loads(text)
    except ValueError as error:
        raise Invalid("tensorfields header", f"not valid JSON ({error})") from None
    header = as_dict(header, "tensorfields header")
    version = header.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise Invalid("format_version", f"{json.dumps(version)} is not a format version (an integer, 0 to {FORMAT_VERSION})")
    if version > FORMAT_VERSION:
        raise Invalid("format_version", f"v{version} is newer than this tensorfields reads (v{FORMAT_VERSION}); upgrade tensorfields")
    name = as_str(entry(header, "field", "field"), "field")
    config = as_dict(entry(header, "field_config", "field_config"), "field_config")
    check_render(entry(header, "render", "render"))
    train_state = header.get("train_state", {})
    check_train_state(train_state)
    try:
        cls = field_class(name)
    except ValueError as error:
        raise Invalid("field", str(error)) from None
    layout = {key: TensorInfo(*_describe(handle.get_slice(key))) for key in handle.keys()}
    check_names(layout)
    shapes = _built(lambda: cls.state_shapes(config), "field_config", f"not the config of a {name} field")
    check_field_layout(layout, shapes, name)
    check_grid_layout(layout, header)
    field = _built(lambda: cls.from_config(config), "field_config", f"not the config of a {name} field")
    names = {id(p): n for n, p in field.named_parameters()}
    groups = [(g.get("name", str(i)), [(names[id(p)], p) for p in g["params"]]) for i, g in enumerate(field.param_groups())]
    check_optimizer_layout(layout, header.get("optimizer_groups"), groups, name)
    try:
        tensors = {key: handle.get_tensor(key) for key in layout}
    except (SafetensorError, OSError, ValueError) as error:
        raise Invalid("tensors", f"not readable ({error})") from None
    check_values(tensors, float(header["render"]["step_size"]))
    field = field.to(device)
    _built(lambda: field.load_state_dict(_section(tensors, "field.")), "field", "does not load")
    grid = _built(lambda: _load_grid(_section(tensors, "grid."), header, device), "grid", "does not load")
    settings = _built(lambda: RenderSettings.from_dict(header["render"]), "render", "not render settings")
    train_state = _join_state_tensors(train_state, _section(tensors, ""))
    optimizer_state = None
    if "optimizer_groups" in header:
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in _section(tensors, "optim.").items():
            param_id, key_name = key.split(".", 1)
            state.setdefault(int(param_id), {})[key_name] = value
        optimizer_state = {"state": state, "param_groups": header["optimizer_groups"]}
    return Checkpoint(Model(field, grid, settings), train_state, optimizer_state)


def _describe(tensor_slice: Any) -> tuple[str, tuple[int, ...]]:
    """(dtype code, shape) of a safetensors slice, from the file's header (no data is read)."""
    return str(tensor_slice.get_dtype()), tuple(int(n) for n in tensor_slice.get_shape())


def _built(build: Callable[[], Any], where: str, problem: str) -> Any:
    """`build()`, its errors (checked values that a constructor still refuses) as `Invalid`."""
    try:
        return build()
    except (ValueError, TypeError, LookupError, ArithmeticError, AttributeError, RuntimeError) as error:
        raise Invalid(where, f"{problem} ({type(error).__name__}: {error})") from None


def _one_line(message: str) -> str:
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def _load_grid(state: dict[str, torch.Tensor], header: dict[str, Any], device: torch.device | str) -> OccupancyGrid:
    """The occupancy grid of a full (`occupied`, `density_ema`) or compact (`occupied_bits`) checkpoint."""
    if "occupied_bits" in state:
        resolution = [int(r) for r in header["grid_resolution"]]
        bits = np.unpackbits(state["occupied_bits"].cpu().numpy(), count=int(np.prod(resolution)))
        grid = OccupancyGrid(state["aabb"], resolution)
        grid.occupied.copy_(torch.from_numpy(bits.astype(bool)).view(resolution))
        return grid.to(device)
    grid = OccupancyGrid(state["aabb"], list(state["occupied"].shape)).to(device)
    grid.load_state_dict(state)
    return grid


def _section(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
