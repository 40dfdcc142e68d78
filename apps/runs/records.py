"""The records of a run folder beside its checkpoint: `config.json` (training config and scene
info), `metrics.json`, written atomically; and the training cameras kept in the scene info."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from data import Cameras, Scene

from .checkpoint import CHECKPOINT_NAME, CheckpointError
from .validate import Invalid, as_bool, as_dict, as_int, as_number, as_str, entry

__all__ = ["scene_info", "train_cameras", "write_json", "load_run_config", "check_run_config"]


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
        "aabb": [round(v, 6) for v in scene.aabb.flatten().tolist()],
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
    """The `config.json` of a run folder (train config and scene info), checked to hold what the
    commands read: `train.data` and `train.downsample`, and the scene's size, number of training
    views, kind and training cameras (see `check_run_config`)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        if not (Path(run_dir) / CHECKPOINT_NAME).is_file():
            raise CheckpointError(f"{run_dir}: not a run folder (no {CHECKPOINT_NAME}, no config.json)")
        raise CheckpointError(f"{path}: missing (the run folder is incomplete)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: invalid JSON ({error})") from None
    try:
        check_run_config(config)
    except Invalid as error:
        raise CheckpointError(f"{path}: {error}") from None
    return config


def check_run_config(config: Any) -> None:
    """The structure of a run's config.json that the commands rely on; raises `Invalid` naming
    the key (`scene.train_cameras.c2w[3]`)."""
    if not isinstance(config, dict):
        raise Invalid("config.json", "not a JSON object (a run's config.json holds \"train\" and \"scene\")")
    train = as_dict(entry(config, "train", "train"), "train")
    as_str(entry(train, "data", "train.data"), "train.data")
    as_number(entry(train, "downsample", "train.downsample"), "train.downsample", above=0)
    scene = as_dict(entry(config, "scene", "scene"), "scene")
    for key in ("width", "height"):
        as_int(entry(scene, key, f"scene.{key}"), f"scene.{key}", minimum=1)
    num_train = as_int(entry(scene, "num_train", "scene.num_train"), "scene.num_train", minimum=1)
    as_bool(entry(scene, "forward_facing", "scene.forward_facing"), "scene.forward_facing")
    cameras = as_dict(entry(scene, "train_cameras", "scene.train_cameras"), "scene.train_cameras")
    c2w = entry(cameras, "c2w", "scene.train_cameras.c2w")
    if not isinstance(c2w, list) or len(c2w) != num_train:
        count = f"{len(c2w)} matrices" if isinstance(c2w, list) else f"{json.dumps(c2w)[:40]} is not a list of matrices"
        raise Invalid("scene.train_cameras.c2w", f"{count}, but scene.num_train is {num_train}")
    for i, matrix in enumerate(c2w):
        where = f"scene.train_cameras.c2w[{i}]"
        if not isinstance(matrix, list) or len(matrix) != 16:
            count = f"{len(matrix)} numbers" if isinstance(matrix, list) else "not a list"
            raise Invalid(where, f"{count}, but a camera-to-world matrix is 16 (4 x 4, row by row)")
        for value in matrix:
            as_number(value, where)
    for key in ("fx", "fy"):
        as_number(entry(cameras, key, f"scene.train_cameras.{key}"), f"scene.train_cameras.{key}", above=0)
    for key in ("cx", "cy"):
        as_number(entry(cameras, key, f"scene.train_cameras.{key}"), f"scene.train_cameras.{key}")
