"""`tensorfields render`: a turntable (or forward-facing circle) video of a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import types

__all__ = ["register", "render_command", "VIDEO_FORMATS"]

#: what `export.video.render_video` writes
VIDEO_FORMATS = (".mp4", ".gif")
#: the highest --fps
MAX_FPS = 240


def register(commands: argparse._SubParsersAction) -> None:
    render = commands.add_parser("render", help="render a turntable video of a run", description="Render a video of a run.")
    render.add_argument("run", help="run folder")
    render.add_argument(
        "--orbit",
        type=types.positive_int(types.MAX_FRAMES, "frames"),
        default=60,
        help=f"number of frames on the orbit, 1 to {types.MAX_FRAMES} (default: 60)",
    )
    render.add_argument("--out", type=types.extension(*VIDEO_FORMATS), required=True, help="video file (.mp4 or .gif)")
    render.add_argument(
        "--fps",
        type=types.positive_int(MAX_FPS, "frames per second"),
        default=30,
        help=f"frames per second of the video, 1 to {MAX_FPS} (default: 30)",
    )
    render.set_defaults(func=render_command)


def render_command(args: argparse.Namespace) -> Path:
    from ..export.video import render_video, video_cameras
    from ..runs import load_checkpoint, load_run_config, train_cameras

    scene_info = load_run_config(args.run)["scene"]
    model = load_checkpoint(args.run).model
    cameras = video_cameras(train_cameras(scene_info), args.orbit, scene_info["forward_facing"])
    out = render_video(model, cameras, Path(args.out), args.fps)
    print(f"wrote {out} ({args.orbit} frames at {scene_info['width']}x{scene_info['height']})")
    return out
