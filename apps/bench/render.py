"""`tensorfields bench render`: seconds to render one viewer frame of a run.

The viewer's orbit camera (`apps.viewer.frames.orbit_camera`) renders `--size` pixels wide from
the training cameras' distance, elevation and field of view, at a few azimuths around the object;
one warm-up frame, then the median of the timed ones. Without `--run`, a VM run on the demo scene
is trained (or reused) in runs/bench-render.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import torch

import cuda_ext
from data import build_demo_scene

from ..commands.demo import DEMO_SCENE_FOLDER
from ..runs import CHECKPOINT_NAME, load_checkpoint, load_run_config, train_cameras
from ..training import TrainConfig, train_run
from ..viewer.frames import orbit_camera, orbit_rig, render_frame

__all__ = ["add_arguments", "time_frames", "bench_render"]

#: default run folder when --run is not given
DEFAULT_RUN = Path("runs/bench-render")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..commands import types

    parser.add_argument("--run", default=None, help="run folder (default: a VM run on the demo scene, trained or reused in runs/bench-render)")
    parser.add_argument("--size", type=types.whole(8, 4096, "pixels"), default=256, help="frame width in pixels, 8 to 4096 (default: 256)")
    parser.add_argument(
        "--frames", type=types.positive_int(types.MAX_FRAMES, "frames"), default=5, help="timed frames, around the orbit (default: 5)"
    )
    parser.add_argument("--budget", type=types.seconds, default=60.0, help="seconds of training when a run is needed (default: 60)")
    parser.add_argument("--device", type=types.device, default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")

def time_frames(run_dir: str | Path, size: int, frames: int, device: str = "cpu") -> list[float]:
    """Seconds per frame of `frames` orbit frames `size` pixels wide (after one warm-up frame)."""
    model = load_checkpoint(run_dir, device).model
    rig = orbit_rig(train_cameras(load_run_config(run_dir)["scene"]))
    azimuths = [0.0] + [360.0 * i / frames for i in range(frames)]
    seconds = [render_frame(model, orbit_camera(rig, a, rig.elevation, 1.0, rig.fov, size), "RGB")[1] for a in azimuths]
    return seconds[1:]


def bench_render(args: argparse.Namespace) -> dict[str, Any]:
    """Time viewer frames of `args.run` (see the module docstring) and report the median."""
    run = Path(args.run) if args.run else DEFAULT_RUN
    if args.run is None and not (run / CHECKPOINT_NAME).is_file():
        scene = build_demo_scene(run / DEMO_SCENE_FOLDER)
        train_run(TrainConfig(data=str(scene), field="vm", out=str(run), budget=args.budget), overwrite=True)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    seconds = time_frames(run, args.size, args.frames, device)
    status = cuda_ext.status()
    result = {
        "run": str(run),
        "size": args.size,
        "frames": args.frames,
        "median_seconds": round(statistics.median(seconds), 4),
        "seconds": [round(s, 4) for s in seconds],
        "device": device,
        "native": bool(status["native"]),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result
