"""The `tensorfields` command line: one console script, a subcommand per job (log messages go to stderr)."""

from __future__ import annotations

import argparse
import logging
import sys

from data import SceneError

from .checkpoint import CheckpointError
from .run import RunInterrupted

__all__ = ["main", "build_parser"]


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", required=True, help="scene folder (Blender, LLFF, transforms.json, COLMAP) or, for train, photos or a video"
    )
    parser.add_argument("--field", default="vm", help="representation: vm, cp or trivec (Strivec) (default: vm)")
    parser.add_argument(
        "--slimmable",
        action="store_true",
        help="train with SlimmeRF's rank incrementation so the field renders well at every rank (see slim, eval --ranks)",
    )
    parser.add_argument(
        "--upsilon",
        type=float,
        default=None,
        help="--slimmable: add a rank when the batch loss changes by more than this fraction between steps "
        "(default: 0.4, or 0.1 on forward-facing scenes)",
    )
    parser.add_argument(
        "--eta", type=int, default=None, help="--slimmable: least steps between two rank increments (default: 0, or 100 forward-facing)"
    )
    parser.add_argument("--downsample", type=float, default=1.0, help="divide image size by this (default: 1)")
    parser.add_argument(
        "--batch-size", type=int, default=0, help="rays per iteration (default: 4096 on a GPU as TensoRF, 1024 on the CPU)"
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--grid-init", type=int, default=0, help="initial grid resolution per axis (default: from image size)")
    parser.add_argument("--grid-final", type=int, default=0, help="final grid resolution per axis (default: from image size)")
    parser.add_argument("--decoder", choices=["mlp", "sh"], default=None, help="appearance decoder (default: TensoRF's MLP)")
    parser.add_argument(
        "--cone-angle", type=float, default=0.0, help="cone stepping: steps grow as distance x this (default: 0, fixed steps)"
    )
    parser.add_argument("--seed", type=int, default=0)


def _add_export_mesh(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export-mesh",
        help="export a run's surface as a coloured mesh (.ply, .obj, .glb)",
        description=(
            "Export a run's surface as a triangle mesh with vertex colours. mc: marching cubes on the density sampled "
            "over the occupied box; vertices no training camera sees are removed; vertex colours are rendered by the "
            "field along each vertex normal. tsdf: depth and colour rendered from the training cameras (or an orbit) "
            "fused in an Open3D TSDF volume; better for real captures; vertex colours are the views' fused colours. "
            "Small floating clusters are removed."
        ),
    )
    export.add_argument("run", help="run folder")
    export.add_argument("--out", required=True, help="mesh file: .ply, .obj or .glb (vertex colours kept in all three)")
    export.add_argument("--method", choices=["mc", "tsdf"], default="mc", help="marching cubes or TSDF fusion (default: mc)")
    export.add_argument(
        "--resolution", type=int, default=256, help="grid points (mc) or voxels (tsdf) along the occupied box's longest side (default: 256)"
    )
    export.add_argument(
        "--level",
        type=float,
        default=None,
        help="mc: the surface is where one render step becomes this opaque, alpha = 1 - exp(-density * step_size), "
        "i.e. density = -ln(1 - level) / step_size (default: 0.01, where the renderer starts to see a surface; "
        "briefly trained fields have soft edges that higher levels cut into); "
        "tsdf: the least pixel opacity whose depth is fused (default: 0.5)",
    )
    export.add_argument("--faces", type=int, default=0, help="decimate to about this many triangles (default: 0, keep all)")
    export.add_argument("--orbit", type=int, default=0, help="tsdf: fuse this many orbit views instead of the training views")
    export.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tensorfields", description="Factorized tensor radiance fields: train, evaluate, render.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a field on a scene", description="Train a field on a scene folder.")
    _add_train_arguments(train)
    train.add_argument("--out", required=True, help="run folder for checkpoint, config, metrics and renders")
    train.add_argument("--iters", type=int, default=30000, help="training iterations (default: 30000, as TensoRF)")
    train.add_argument("--budget", type=float, default=None, help="train for this many seconds instead of --iters")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    train.add_argument("--fps", type=float, default=2.0, help="when --data is a video: frames per second to extract (default: 2)")

    colmap = commands.add_parser(
        "colmap",
        help="estimate camera poses of a folder of photos (pycolmap SfM)",
        description="Structure-from-motion with pycolmap on the CPU: writes PATH/transforms.json and PATH/colmap/.",
    )
    colmap.add_argument("path", help="folder of JPG/PNG photos (or with them in images/)")
    colmap.add_argument(
        "--matcher", choices=["exhaustive", "sequential"], default=None, help="feature matching (default: exhaustive up to 60 images)"
    )
    colmap.add_argument("--max-size", type=int, default=1600, help="long side in pixels of the images SfM and training use (default: 1600)")
    colmap.add_argument(
        "--threads", type=int, default=1, help="CPU threads (default: 1, reproducible; more is faster but runs may differ)"
    )

    evaluate = commands.add_parser("eval", help="PSNR/SSIM of a trained run on held-out views", description="Evaluate a run.")
    evaluate.add_argument("run", help="run folder")
    evaluate.add_argument("--data", default=None, help="scene folder (default: the one the run trained on)")
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test"], help="views to score (default: test, or val)")
    evaluate.add_argument("--downsample", type=float, default=None, help="image downsampling (default: the run's)")
    evaluate.add_argument("--json", default=None, help="also write the results to this JSON file")
    evaluate.add_argument("--renders", default=None, help="write the rendered views into this folder")
    evaluate.add_argument(
        "--ranks", default=None, help="score the field slimmed to each of these ranks, e.g. 1,2,4,8,16 (PSNR, SSIM, checkpoint size)"
    )

    slim = commands.add_parser(
        "slim",
        help="truncate a rank-ordered run to a lower rank (a smaller checkpoint)",
        description="Write a run folder whose field keeps only the first RANK components of every group (SlimmeRF "
        "test-time slimming). The checkpoint is compact: render-only (no optimizer state, packed occupancy grid).",
    )
    slim.add_argument("run", help="run folder of a vm, cp or trivec field (best trained with --slimmable)")
    slim.add_argument("--rank", type=int, required=True, help="rank to keep")
    slim.add_argument("--out", required=True, help="new run folder")
    slim.add_argument("--half", action="store_true", help="store the field's parameters as float16 (half the size)")

    render = commands.add_parser("render", help="render a turntable video of a run", description="Render a video of a run.")
    render.add_argument("run", help="run folder")
    render.add_argument("--orbit", type=int, default=60, help="number of frames on the orbit (default: 60)")
    render.add_argument("--out", required=True, help="video file (.mp4 or .gif)")
    render.add_argument("--fps", type=int, default=30)

    _add_export_mesh(commands)

    bench = commands.add_parser("bench", help="benchmarks", description="Benchmarks.")
    bench_commands = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    bench_train = bench_commands.add_parser("train", help="train for a wall-clock budget, tracking held-out PSNR")
    _add_train_arguments(bench_train)
    bench_train.add_argument("--budget", type=float, required=True, help="seconds of training")
    bench_train.add_argument("--out", default=None, help="run folder (default: runs/bench-<field>)")
    bench_train.add_argument("--json", default=None, help="write the results to this JSON file")
    bench_train.add_argument("--eval-every", type=float, default=15.0, help="seconds of training between evaluations")
    bench_train.add_argument("--eval-views", type=int, default=10, help="held-out views per intermediate evaluation")
    bench_train.add_argument(
        "--compare-reference", action="store_true", help="repeat the run on the pure-torch reference path and compare it/s"
    )

    bench_march = bench_commands.add_parser(
        "march", help="samples/s of marching + compositing, native vs reference (and nerfacc on a GPU)"
    )
    bench_march.add_argument("--rays", type=int, default=8192, help="rays per pass (default: 8192)")
    bench_march.add_argument("--resolution", type=int, default=128, help="occupancy grid cells per axis (default: 128)")
    bench_march.add_argument("--repeats", type=int, default=5, help="timed passes per path (default: 5)")
    bench_march.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    bench_march.add_argument("--json", default=None, help="write the results to this JSON file")

    bench_mesh = bench_commands.add_parser(
        "mesh", help="Chamfer / F-score of the marching-cubes mesh of a VM run on the demo scene, export time and memory"
    )
    bench_mesh.add_argument("--out", default="runs/bench-mesh", help="run folder, reused when it has a checkpoint (default: runs/bench-mesh)")
    bench_mesh.add_argument("--budget", type=float, default=60.0, help="seconds of training when a run is needed (default: 60)")
    bench_mesh.add_argument("--resolution", type=int, default=256, help="marching-cubes points on the longest side (default: 256)")
    bench_mesh.add_argument("--threshold", type=float, default=0.01, help="F-score threshold as a fraction of the scene size (default: 0.01)")
    bench_mesh.add_argument("--json", default=None, help="write the results to this JSON file")

    bench_slim = bench_commands.add_parser(
        "slim", help="PSNR and size at each rank of a field trained with and without --slimmable (same budget)"
    )
    bench_slim.add_argument("--data", required=True, help="scene folder, e.g. ../shared/data/lego")
    bench_slim.add_argument("--downsample", type=float, default=8.0, help="divide image size by this (default: 8)")
    bench_slim.add_argument("--field", default="vm", help="rank-ordered field: vm, cp or trivec (default: vm)")
    bench_slim.add_argument("--budget", type=float, default=120.0, help="seconds of training per run (default: 120)")
    bench_slim.add_argument("--ranks", default="1,2,4,8,16", help="ranks to score (default: 1,2,4,8,16)")
    bench_slim.add_argument("--eval-views", type=int, default=0, help="held-out views to score (default: 0, all)")
    bench_slim.add_argument("--upsilon", type=float, default=None, help="TRaIn threshold (default: SlimmeRF's)")
    bench_slim.add_argument("--eta", type=int, default=None, help="TRaIn least steps between increments (default: SlimmeRF's)")
    bench_slim.add_argument(
        "--out", default="runs/bench-slim", help="folder of the two runs, reused when they exist (default: runs/bench-slim)"
    )
    bench_slim.add_argument("--json", default=None, help="write the results to this JSON file")

    bench_factors = bench_commands.add_parser("factors", help="VM/CP factor sampling forward + backward, native vs grid_sample")
    bench_factors.add_argument("--repeats", type=int, default=5, help="timed runs per configuration (default: 5)")
    bench_factors.add_argument("--json", default=None, help="write the results to this JSON file")
    bench_render = bench_commands.add_parser(
        "render", help="seconds to render one viewer frame (orbit camera) of a run, median after a warm-up"
    )
    bench_render.add_argument(
        "--run", default=None, help="run folder (default: a VM run on the demo scene, trained or reused in runs/bench-render)"
    )
    bench_render.add_argument("--size", type=int, default=256, help="frame width in pixels (default: 256)")
    bench_render.add_argument("--frames", type=int, default=5, help="timed frames, around the orbit (default: 5)")
    bench_render.add_argument("--budget", type=float, default=60.0, help="seconds of training when a run is needed (default: 60)")
    bench_render.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    bench_render.add_argument("--json", default=None, help="write the results to this JSON file")

    view = commands.add_parser(
        "view", help="explore a run in the browser (Gradio)", description="Serve an interactive viewer of a run folder."
    )
    view.add_argument("run", help="run folder")
    view.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    view.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    view.add_argument("--share", action="store_true", help="also serve through a public gradio.live link (default: off)")
    view.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")

    demo = commands.add_parser("demo", help="train, evaluate and render the demo scene", description="The demo.")
    demo.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    demo.add_argument("--budget", type=float, default=60.0, help="seconds of training (default: 60)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "train":
            from .commands import train_command

            train_command(args)
        elif args.command == "colmap":
            from .commands import colmap_command

            colmap_command(args)
        elif args.command == "eval":
            from .commands import eval_command

            eval_command(args)
        elif args.command == "slim":
            from .slim import slim_command

            slim_command(args)
        elif args.command == "render":
            from .commands import render_command

            render_command(args)
        elif args.command == "export-mesh":
            from .mesh_export import export_mesh_command

            export_mesh_command(args)
        elif args.command == "bench" and args.bench == "mesh":
            from .mesh_metrics import bench_mesh

            bench_mesh(args)
        elif args.command == "bench" and args.bench == "slim":
            from .bench_slim import bench_slim

            bench_slim(args)
        elif args.command == "bench" and args.bench == "factors":
            from .bench_factors import bench_factors

            bench_factors(args)
        elif args.command == "bench" and args.bench == "render":
            from .bench_render import bench_render

            bench_render(args)
        elif args.command == "bench" and args.bench == "march":
            from .bench_march import bench_march

            bench_march(args)
        elif args.command == "bench":
            from .bench import bench_train

            bench_train(args)
        elif args.command == "view":
            from .viewer import view_command

            view_command(args)
        elif args.command == "demo":
            from .demo import demo

            demo(args)
    except (SceneError, CheckpointError, RunInterrupted, ValueError) as error:
        print(f"tensorfields {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
