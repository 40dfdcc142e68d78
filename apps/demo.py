"""`tensorfields demo`: train a field on the demo scene, score it, render a turntable video."""

from __future__ import annotations

import argparse
from pathlib import Path

from data import SceneError

from .commands import render_command
from .run import train_run
from .trainer import TrainConfig

__all__ = ["demo", "demo_scene_path"]

_REPO_ROOT = Path(__file__).resolve().parents[1]


def demo_scene_path() -> Path:
    """The demo scene: NeRF-Synthetic lego from the reference data beside the checkout."""
    for candidate in (_REPO_ROOT.parent / "shared" / "data" / "lego", Path.cwd().parent / "shared" / "data" / "lego"):
        if (candidate / "transforms_train.json").is_file():
            return candidate
    raise SceneError(
        _REPO_ROOT.parent / "shared" / "data" / "lego",
        "demo scene not found (the demo trains on the reference lego scene for now); "
        "train on your own scene with: tensorfields train --data PATH --out runs/NAME",
    )


def demo(args: argparse.Namespace) -> None:
    out = Path(args.out)
    scene_path = demo_scene_path()
    print(f"demo: training TensoRF-VM on {scene_path} at 100x100 for {args.budget:.0f} s")
    config = TrainConfig(data=str(scene_path), field="vm", out=str(out), downsample=8, budget=args.budget)
    train_run(config)
    render_command(argparse.Namespace(run=str(out), orbit=60, out=str(out / "orbit.mp4"), fps=30))
    print("\nnext:")
    print(f"  tensorfields eval {out}                      # PSNR/SSIM on all held-out views")
    print(f"  tensorfields render {out} --orbit 120 --out orbit.mp4")
    print(f"  tensorfields train --data {scene_path} --downsample 8 --budget 240 --out runs/lego   # longer run")
