"""`tensorfields demo`: build the embedded demo scene, train a field on it, score it, render a
turntable video and export a coloured mesh. Needs no network and no data beside the checkout.

The scene is built into `<out>/scene`, so the run folder holds everything the printed commands
use (deleting it removes all the demo wrote) and a second demo in the same folder reuses it;
building takes a few seconds, so a shared cache would save little.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import types

__all__ = ["register", "demo", "DEMO_SCENE_FOLDER"]

#: the demo scene's folder inside the run folder
DEMO_SCENE_FOLDER = "scene"


def register(commands: argparse._SubParsersAction) -> None:
    demo_parser = commands.add_parser("demo", help="train, evaluate and render the demo scene", description="The demo.")
    demo_parser.add_argument("--out", type=types.run_folder, default="runs/demo", help="run folder (default: runs/demo)")
    demo_parser.add_argument(
        "--budget", type=types.seconds, default=60.0, help=f"seconds of training, at most {types.MAX_SECONDS:,} (default: 60)"
    )
    demo_parser.set_defaults(func=demo)


def demo(args: argparse.Namespace) -> None:
    from data import build_demo_scene

    from ..training import TrainConfig, train_run
    from .export_mesh import export_mesh_command
    from .render import render_command

    started = time.perf_counter()
    out = Path(args.out)
    scene_path = out / DEMO_SCENE_FOLDER
    print(f"demo: building the demo scene in {scene_path}")
    build_demo_scene(scene_path)
    print(f"demo: scene ready after {time.perf_counter() - started:.1f} s; training TensoRF-VM for {args.budget:.0f} s")
    train_run(TrainConfig(data=str(scene_path), field="vm", out=str(out), budget=args.budget), overwrite=True)
    render_command(argparse.Namespace(run=str(out), orbit=60, out=str(out / "orbit.mp4"), fps=30))
    mesh = out / "mesh.glb"
    export_mesh_command(
        argparse.Namespace(run=str(out), out=str(mesh), method="mc", resolution=192, level=None, faces=0, orbit=0, device=None)
    )
    print(f"demo: done in {time.perf_counter() - started:.0f} s")
    print("\nnext:")
    print(f"  tensorfields view {out}                      # explore it in the browser")
    print(f"  tensorfields eval {out}                      # PSNR/SSIM on all held-out views")
    print(f"  tensorfields render {out} --orbit 120 --out orbit.mp4")
    print(f"  tensorfields export-mesh {out} --out mesh.ply --resolution 256   # or .obj / .glb; {mesh} is done")
    print(f"  tensorfields train --data {scene_path} --budget 240 --out runs/demo-long   # longer run")
