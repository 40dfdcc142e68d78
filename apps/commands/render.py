"""`tensorfields render`: a turntable (or forward-facing circle) video of a run."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "render_command"]


def register(commands: argparse._SubParsersAction) -> None:
    render = commands.add_parser("render", help="render a turntable video of a run", description="Render a video of a run.")
    render.add_argument("run", help="run folder")
    render.add_argument("--orbit", type=int, default=60, help="number of frames on the orbit (default: 60)")
    render.add_argument("--out", required=True, help="video file (.mp4 or .gif)")
    render.add_argument("--fps", type=int, default=30)
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
