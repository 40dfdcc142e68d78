"""`tensorfields bench render`: how soon the viewer answers a camera change.

The viewer's orbit camera (`apps.viewer.frames.orbit_camera`) moves to a few azimuths around the
object at the training cameras' distance, elevation and field of view; after one warm-up frame,
for each camera change the progressive render (`frames.progressive_frames`) is timed to its
first, coarse frame (`frames.COARSE_WIDTH` wide, scaled up) and to its last, `--size` pixels
wide. Beside it, the viewer before progressive rendering: one plain frame per change, at its
default 128 px and at `--size`. Medians are reported. Without `--run`, a VM run on the demo scene
is trained (or reused) in runs/bench-render.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import cuda_ext
from data import build_demo_scene

from ..commands.demo import DEMO_SCENE_FOLDER
from ..runs import CHECKPOINT_NAME, load_checkpoint, load_run_config, train_cameras
from ..training import TrainConfig, train_run
from ..viewer.frames import COARSE_WIDTH, orbit_camera, orbit_rig, progressive_frames, render_frame

__all__ = ["add_arguments", "time_frames", "time_progressive", "bench_render", "PLAIN_WIDTH"]

#: the frame width the viewer rendered on every camera change before progressive rendering
PLAIN_WIDTH = 128

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
    """Seconds per frame of `frames` plain orbit frames `size` pixels wide (after one warm-up frame)."""
    model, rig = _model_and_rig(run_dir, device)
    azimuths = [0.0] + [360.0 * i / frames for i in range(frames)]
    seconds = [render_frame(model, orbit_camera(rig, a, rig.elevation, 1.0, rig.fov, size), "RGB")[1] for a in azimuths]
    return seconds[1:]


def time_progressive(run_dir: str | Path, size: int, frames: int, device: str = "cpu") -> tuple[list[float], list[float]]:
    """For `frames` camera changes around the orbit: seconds to the progressive render's first
    (coarse) frame and to its last, `size` pixels wide (after one warm-up render)."""
    model, rig = _model_and_rig(run_dir, device)
    first, last = [], []
    for azimuth in [0.0] + [360.0 * i / frames + 7.0 for i in range(frames)]:
        started = time.perf_counter()
        marks = []
        for _ in progressive_frames(model, lambda w: orbit_camera(rig, azimuth, rig.elevation, 1.0, rig.fov, w), size, "RGB"):
            marks.append(time.perf_counter() - started)
        first.append(marks[0])
        last.append(marks[-1])
    return first[1:], last[1:]


def _model_and_rig(run_dir: str | Path, device: str) -> tuple[Any, Any]:
    model = load_checkpoint(run_dir, device).model
    model.eval()
    return model, orbit_rig(train_cameras(load_run_config(run_dir)["scene"]), bounded=model.settings.ndc is not None)


def bench_render(args: argparse.Namespace) -> dict[str, Any]:
    """Time viewer frames of `args.run` (see the module docstring) and report the median."""
    run = Path(args.run) if args.run else DEFAULT_RUN
    if args.run is None and not (run / CHECKPOINT_NAME).is_file():
        scene = build_demo_scene(run / DEMO_SCENE_FOLDER)
        train_run(TrainConfig(data=str(scene), field="vm", out=str(run), budget=args.budget), overwrite=True)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    first, full = time_progressive(run, args.size, args.frames, device)
    plain = time_frames(run, args.size, args.frames, device)
    plain_default = time_frames(run, PLAIN_WIDTH, args.frames, device)
    status = cuda_ext.status()
    median = lambda values: round(statistics.median(values), 4)  # noqa: E731
    result = {
        "run": str(run),
        "size": args.size,
        "frames": args.frames,
        "first_frame_seconds": median(first),
        "full_frame_seconds": median(full),
        "coarse_width": COARSE_WIDTH,
        "previous_viewer": {f"frame_{PLAIN_WIDTH}_seconds": median(plain_default), f"frame_{args.size}_seconds": median(plain)},
        "first_frame_speedup_vs_previous_128": round(median(plain_default) / median(first), 2),
        "full_frame_ratio_vs_previous": round(median(full) / median(plain), 3),
        "full_frame_seconds_each": [round(s, 4) for s in full],
        "device": device,
        "native": bool(status["native"]),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result
