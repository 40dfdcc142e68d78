"""Checkpoints: one `.safetensors` file with the tensors and a JSON header; atomic writes.

A checkpoint holds a `render.Model` (field, occupancy grid, render settings) and the training
state. Layout: tensors `field.*` (field state), `grid.*` (occupancy grid), `optim.<param>.<key>`
(optimizer state, optional); metadata key "tensorfields" holds JSON with the format version,
field name and config, render settings, training state (the loop's counters and each training
strategy's state) and the optimizer's param groups. Loading never unpickles.

Compact checkpoints (`tensorfields slim`) are for rendering, not for resuming: the occupancy
grid is stored as packed bits (`grid.occupied_bits`, its running density is dropped), there is
no optimizer state, and with `half` the field's floating-point parameters are float16 (they
load back into float32). Version 2 added them; version 1 files still load.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save, save_file

from fields import field_from_config
from render import Model, OccupancyGrid, RenderSettings

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
        "train_state": checkpoint.train_state,
    }
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
    """Read a checkpoint file (or a run folder holding `checkpoint.safetensors`)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint here (train a field first: tensorfields train ...)")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({error})") from None
    if "tensorfields" not in metadata:
        raise CheckpointError(f"{path}: safetensors file without a tensorfields header")
    try:
        header = json.loads(metadata["tensorfields"])
        version = header.get("format_version", 0)
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: checkpoint format v{version} is newer than this tensorfields reads (v{FORMAT_VERSION}); upgrade tensorfields"
            )
        field = field_from_config(header["field"], header["field_config"]).to(device)
        field.load_state_dict(_section(tensors, "field."))
        grid = _load_grid(_section(tensors, "grid."), header, device)
        settings = RenderSettings.from_dict(header["render"])
    except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as error:
        raise CheckpointError(f"{path}: malformed tensorfields header or tensors ({type(error).__name__}: {error})") from None
    optimizer_state = None
    if "optimizer_groups" in header:
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in _section(tensors, "optim.").items():
            param_id, name = key.split(".", 1)
            state.setdefault(int(param_id), {})[name] = value
        optimizer_state = {"state": state, "param_groups": header["optimizer_groups"]}
    return Checkpoint(Model(field, grid, settings), header.get("train_state", {}), optimizer_state)


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
