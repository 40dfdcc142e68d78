"""`tensorfields demo`: build the embedded demo scene, train a field on it, score it, render a
turntable video and export a coloured mesh. Needs no network and no data beside the checkout.

The run is a fixed number of iterations from a fixed seed (`DEMO_TRAINING`), so it reaches the
same quality on every machine; `--budget` only caps its training seconds, and a cap that cuts
it short is said in one line. A field too faint for the mesh's default level (a capped or poor
run) gets its mesh at a level below its most opaque step, or none, with a one-line warning: the
demo always ends with the commands to try next.

The scene is built into `<out>/scene`, so the run folder holds everything the printed commands
use (deleting it removes all the demo wrote) and a second demo in the same folder reuses it;
building takes a few seconds, so a shared cache would save little.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..training.config import TrainConfig
from . import types
from .train import MAX_ITERS

if TYPE_CHECKING:
    from ..training import Trainer

__all__ = ["register", "demo", "train_capped", "demo_mesh", "DEMO_SCENE_FOLDER", "DEMO_TRAINING", "DEFAULT_CAP"]

#: the demo scene's folder inside the run folder
DEMO_SCENE_FOLDER = "scene"
#: the demo's training run (`demo` fills in data, out and --iters): TensoRF-VM with spherical-harmonic
#: colours (the scene is Lambertian), a grid growing from 32 to 64 voxels a side and a 64^3
#: occupancy grid: 30.6 dB held out after 900 iterations, 18 ms each on 2 cores. The defaults
#: cost more for less: the MLP decoder 29 ms per iteration and 30.2 dB; with `default_grid`'s
#: 55 -> 128 voxels and a 128^3 occupancy grid (whose full updates dominated the first few hundred
#: iterations) 78 ms, 29.7 dB after 773
DEMO_TRAINING = TrainConfig(
    data=DEMO_SCENE_FOLDER,
    out="runs/demo",
    field="vm",
    decoder="sh",
    iters=900,
    grid_init=32,
    grid_final=64,
    occupancy_resolution=64,
    seed=0,
)
#: default --budget: seconds of training after which the demo stops short of its iterations
DEFAULT_CAP = 600.0
#: the orbit video's frames and frame rate (a two-second turntable), and the mesh's marching-cubes
#: points along its box's longest side
ORBIT_FRAMES, ORBIT_FPS, MESH_RESOLUTION = 60, 30, 192
#: the mesh file inside the run folder
MESH_NAME = "mesh.glb"


def register(commands: argparse._SubParsersAction) -> None:
    demo_parser = commands.add_parser("demo", help="train, evaluate and render the demo scene", description="The demo.")
    demo_parser.add_argument("--out", type=types.run_folder, default="runs/demo", help="run folder (default: runs/demo)")
    demo_parser.add_argument(
        "--iters",
        type=types.positive_int(MAX_ITERS, "iterations"),
        default=DEMO_TRAINING.iters,
        help=f"training iterations, 1 to {MAX_ITERS:,} (default: {DEMO_TRAINING.iters})",
    )
    demo_parser.add_argument(
        "--budget",
        type=types.seconds,
        default=DEFAULT_CAP,
        help=f"stop training after this many seconds even if iterations remain, at most {types.MAX_SECONDS:,} "
        f"(default: {DEFAULT_CAP:.0f})",
    )
    demo_parser.set_defaults(func=demo)


def demo(args: argparse.Namespace) -> None:
    from data import build_demo_scene

    from .render import render_command

    started = time.perf_counter()
    out = Path(args.out)
    scene_path = out / DEMO_SCENE_FOLDER
    print(f"demo: building the demo scene in {scene_path}")
    build_demo_scene(scene_path)
    config = dataclasses.replace(DEMO_TRAINING, data=str(scene_path), out=str(out), iters=args.iters)
    print(
        f"demo: scene ready after {time.perf_counter() - started:.1f} s; training TensoRF-VM for {config.iters:,} iterations "
        f"(at most {args.budget:g} s, --budget)"
    )
    train_capped(config, args.budget)
    render_command(argparse.Namespace(run=str(out), orbit=ORBIT_FRAMES, out=str(out / "orbit.mp4"), fps=ORBIT_FPS))
    mesh = demo_mesh(out)
    print(f"demo: done in {time.perf_counter() - started:.0f} s")
    _print_next(out, scene_path, mesh)


def train_capped(config: TrainConfig, cap: float) -> dict[str, Any]:
    """Train `config` (`training.train_run`, replacing the run in `config.out`), stopping after
    `cap` seconds of training; a stop short of `config.iters` is said in one line. Returns the
    metrics."""
    from tqdm import tqdm

    from ..training import train_run

    def stop_at_cap(trainer: Trainer) -> None:
        if trainer.state.train_seconds >= cap and not trainer.done:
            trainer.stop()
            tqdm.write(cap_message(cap, trainer.state.iteration, config.iters))

    return train_run(config, overwrite=True, on_step=stop_at_cap)


def cap_message(cap: float, done: int, planned: int) -> str:
    """The line saying that the `cap`-second --budget stopped training after `done` of `planned` iterations."""
    return (
        f"demo: --budget {cap:g} s stopped training after {done:,} of {planned:,} iterations; "
        "the held-out PSNR will be lower than a full run's (about 30 dB)"
    )


def demo_mesh(run: Path) -> Path | None:
    """Export the run's mesh to `run`/`MESH_NAME` at the default level; for a field too faint for
    it (a capped or poor run), at half the opacity of its most opaque render step. Without any
    surface, one warning line and no mesh. Returns the mesh's path, None when there is none."""
    from ..export.mesh import DEFAULT_LEVELS, NoSurfaceError

    mesh = run / MESH_NAME
    try:
        _export_mesh(run, mesh, level=None)
        return mesh
    except NoSurfaceError as error:
        if not error.most_opaque:
            print(f"demo: no mesh: {error}")
            return None
        level = error.most_opaque / 2
        print(
            f"demo: the field is faint (its most opaque render step reaches opacity {error.most_opaque:.3g}, below the "
            f"default level {DEFAULT_LEVELS['mc']:g}); exporting the mesh at --level {level:.3g}"
        )
    try:
        _export_mesh(run, mesh, level)
    except NoSurfaceError as error:
        print(f"demo: no mesh: {error}")
        return None
    return mesh


def _export_mesh(run: Path, mesh: Path, level: float | None) -> None:
    """`tensorfields export-mesh run --out mesh --resolution MESH_RESOLUTION [--level level]`."""
    from .export_mesh import export_mesh_command

    export_mesh_command(
        argparse.Namespace(run=str(run), out=str(mesh), method="mc", resolution=MESH_RESOLUTION, level=level, faces=0, orbit=0, device=None)
    )


def _print_next(out: Path, scene_path: Path, mesh: Path | None) -> None:
    """The commands to try next."""
    written = "" if mesh is None else f"; {mesh} is done"
    print("\nnext:")
    print(f"  tensorfields view {out}                      # explore it in the browser")
    print(f"  tensorfields eval {out}                      # PSNR/SSIM on all held-out views")
    print(f"  tensorfields render {out} --orbit 120 --out orbit.mp4")
    print(f"  tensorfields export-mesh {out} --out mesh.ply --resolution 256   # or .obj / .glb{written}")
    print(f"  tensorfields train --data {scene_path} --budget 240 --out runs/demo-long   # longer run")
