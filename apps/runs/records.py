"""The records of a run folder beside its checkpoint: `config.json` (training config and scene
info), `metrics.json`, written atomically; and the training cameras kept in the scene info."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from data import Cameras, Scene

from .checkpoint import CHECKPOINT_NAME, CheckpointError

__all__ = ["scene_info", "train_cameras", "write_json", "load_run_config"]


def scene_info(scene: Scene) -> dict[str, Any]:
    """What a run records about its scene (enough for `eval` to reload it)."""
    train = scene.split("train")
    cameras = scene.cameras[train]
    return {
        "source": str(scene.source),
        "kind": scene.kind,
        "downsample": scene.downsample,
        "width": scene.width,
        "height": scene.height,
        "num_train": int(len(train)),
        "forward_facing": scene.ndc,
        "train_cameras": {
            "c2w": [[round(v, 6) for v in m.flatten().tolist()] for m in cameras.c2w],
            "fx": cameras.fx[0].item(),
            "fy": cameras.fy[0].item(),
            "cx": cameras.cx[0].item(),
            "cy": cameras.cy[0].item(),
        },
    }


def train_cameras(info: dict[str, Any]) -> Cameras:
    """The training cameras recorded by `scene_info`."""
    record = info["train_cameras"]
    c2w = torch.tensor(record["c2w"], dtype=torch.float32).view(-1, 4, 4)
    return Cameras(c2w, record["fx"], record["fy"], record["cx"], record["cy"], info["width"], info["height"])


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The `config.json` of a run folder (train config and scene info)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        if not (Path(run_dir) / CHECKPOINT_NAME).is_file():
            raise CheckpointError(f"{run_dir}: not a run folder (no {CHECKPOINT_NAME}, no config.json)")
        raise CheckpointError(f"{path}: missing (the run folder is incomplete)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: invalid JSON ({error})") from None
