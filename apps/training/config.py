"""`TrainConfig`, everything that defines a training run, and its command-line flags.

A config field that users set from the command line carries `flag(help)` metadata; `add_flags`
declares those flags from the dataclass and `config_from_args` reads them back, so a new
training option is one field here (and whatever uses it), not a flag in one file and a mapping
in another.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["TrainConfig", "flag", "add_flags", "config_from_args"]


def flag(help: str, choices: list[str] | None = None, required: bool = False) -> dict[str, Any]:
    """Metadata that makes a `TrainConfig` field a command-line flag (`--name-with-dashes`)."""
    return {"help": help, "choices": choices, "required": required}


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as the run's config.json).

    iters: length of the run in iterations, unless `budget` (seconds of training) is given.
    batch_size: rays per iteration; 0 picks 4096 on a GPU (TensoRF) and 1024 on the CPU, where
        four small steps cost what one large one does and make more progress.
    grid_init, grid_final: factor grid resolution per axis; 0 picks them from the image size.
    step_ratio: ray-marching step as a fraction of the field's voxel size.
    cone_angle: cone stepping for large scenes (see `RenderSettings`); 0 keeps fixed steps.
    slimmable: train with SlimmeRF's rank incrementation (`strategies.RankIncrementation`) so that
        the field renders well at every rank; upsilon, eta: its thresholds (None: SlimmeRF's
        defaults for the kind of scene).
    """

    data: str = dataclasses.field(
        metadata=flag("scene folder (Blender, LLFF, transforms.json, COLMAP) or, for train, photos or a video", required=True)
    )
    field: str = dataclasses.field(default="vm", metadata=flag("representation: vm, cp or trivec (Strivec) (default: vm)"))
    out: str = "runs/run"
    downsample: float = dataclasses.field(default=1.0, metadata=flag("divide image size by this (default: 1)"))
    iters: int = 30000
    budget: float | None = None
    batch_size: int = dataclasses.field(
        default=0, metadata=flag("rays per iteration (default: 4096 on a GPU as TensoRF, 1024 on the CPU)")
    )
    step_ratio: float = 0.5
    grid_init: int = dataclasses.field(default=0, metadata=flag("initial grid resolution per axis (default: from image size)"))
    grid_final: int = dataclasses.field(default=0, metadata=flag("final grid resolution per axis (default: from image size)"))
    occupancy_resolution: int = 128
    occupancy_every: int = 16
    occupancy_warmup: int = 16
    occupancy_threshold: float = 1e-3
    cone_angle: float = dataclasses.field(
        default=0.0, metadata=flag("cone stepping: steps grow as distance x this (default: 0, fixed steps)")
    )
    slimmable: bool = dataclasses.field(
        default=False,
        metadata=flag(
            "train with SlimmeRF's rank incrementation so the field renders well at every rank (see slim, eval --ranks)"
        ),
    )
    upsilon: float | None = dataclasses.field(
        default=None,
        metadata=flag(
            "--slimmable: add a rank when the batch loss changes by more than this fraction between steps "
            "(default: 0.4, or 0.1 on forward-facing scenes)"
        ),
    )
    eta: int | None = dataclasses.field(
        default=None, metadata=flag("--slimmable: least steps between two rank increments (default: 0, or 100 forward-facing)")
    )
    decoder: str | None = dataclasses.field(
        default=None, metadata=flag("appearance decoder (default: TensoRF's MLP)", choices=["mlp", "sh"])
    )
    checkpoint_every: float = 60.0
    seed: int = dataclasses.field(default=0, metadata=flag("random seed (default: 0)"))
    device: str | None = dataclasses.field(default=None, metadata=flag("cpu or cuda (default: cuda when available)"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _flag_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(TrainConfig) if "help" in f.metadata]


def _base_type(annotation: Any) -> type:
    """`float | None` -> float; `int` -> int."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Declare every flagged `TrainConfig` field on `parser` (`--batch-size` for batch_size)."""
    hints = typing.get_type_hints(TrainConfig)
    for f in _flag_fields():
        name = "--" + f.name.replace("_", "-")
        kind = _base_type(hints[f.name])
        if kind is bool:
            parser.add_argument(name, action="store_true", help=f.metadata["help"])
            continue
        options: dict[str, Any] = {"type": kind, "help": f.metadata["help"]}
        if f.metadata["choices"]:
            options["choices"] = f.metadata["choices"]
        if f.metadata["required"]:
            options["required"] = True
        else:
            options["default"] = f.default
        parser.add_argument(name, **options)


def config_from_args(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """A TrainConfig from the flags `add_flags` declared, then `overrides`."""
    values = {f.name: getattr(args, f.name) for f in _flag_fields() if hasattr(args, f.name)}
    return TrainConfig(**{**values, **overrides})
