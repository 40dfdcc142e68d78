"""`tensorfields eval`: PSNR / SSIM of a run on held-out views, or per rank with `--ranks`; a run
with appearance codes renders them with the mean code or, with `--appearance fit-left-half`, with
a code fitted to each view's left half, scored on its right half (NeRF-W's protocol)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from . import types

if TYPE_CHECKING:
    from data import Scene

__all__ = ["register", "eval_command", "APPEARANCE_CHOICES"]

#: `evaluate.APPEARANCE_MODES`'s keys (named here so the parser needs no torch)
APPEARANCE_CHOICES = ["mean", "fit-left-half"]


def register(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("eval", help="PSNR/SSIM of a trained run on held-out views", description="Evaluate a run.")
    evaluate.add_argument("run", help="run folder")
    evaluate.add_argument("--data", default=None, help="scene folder (default: the one the run trained on)")
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test"], help="views to score (default: test, or val)")
    evaluate.add_argument(
        "--downsample", type=types.downsample, default=None, help=f"image downsampling, 1 to {types.MAX_DOWNSAMPLE} (default: the run's)"
    )
    evaluate.add_argument("--json", default=None, help="also write the results to this JSON file")
    evaluate.add_argument("--renders", default=None, help="write the rendered views into this folder")
    evaluate.add_argument(
        "--ranks",
        type=types.rank_list,
        default=None,
        help="score the field slimmed to each of these ranks, e.g. 1,2,4,8,16 (PSNR, SSIM, checkpoint size)",
    )
    evaluate.add_argument(
        "--appearance",
        default="mean",
        choices=APPEARANCE_CHOICES,
        help="runs with appearance codes: colour held-out views with the training images' mean code (default), or "
        "fit a code on each view's left half with the field frozen and score the right half (NeRF-W's protocol)",
    )
    evaluate.set_defaults(func=eval_command)


def eval_command(args: argparse.Namespace) -> dict:
    from data import load_scene

    from ..evaluate import evaluate_ranks, evaluate_views, into_refined_frame, parse_ranks, rank_table, slimmable_field
    from ..evaluate.appearance import check_appearance_mode
    from ..evaluate.poses import REFINED_FRAME
    from ..runs import load_checkpoint, load_run_config, train_cameras

    run_config = load_run_config(args.run)
    checkpoint = load_checkpoint(args.run)
    data = args.data or run_config["train"]["data"]
    downsample = args.downsample if args.downsample is not None else run_config["train"]["downsample"]
    ranks = parse_ranks(args.ranks) if args.ranks else None
    check_appearance_mode(checkpoint.model, args.appearance)  # before loading the scene
    if ranks:
        try:
            slimmable_field(checkpoint, args.run, ranks)  # check before loading the scene
        except ValueError as error:
            raise ValueError(f"--ranks {args.ranks}: {error}") from None
    scene = load_scene(data, downsample)
    mapped = into_refined_frame(scene, train_cameras(run_config["scene"])) if _refined_poses(run_config["train"], scene) else None
    if mapped is not None:
        scene = mapped
        print(f"held-out poses {REFINED_FRAME}")
    split = scene.split_name(args.split)
    if ranks:
        rows = evaluate_ranks(checkpoint, scene, scene.split(split), ranks)
        print(f"{args.run}: {split} views at {scene.width}x{scene.height}, the field slimmed to each rank\n{rank_table(rows)}")
        if args.json:
            Path(args.json).write_text(json.dumps({"ranks": rows, "split": split, "data": str(data)}, indent=2) + "\n")
        return {"ranks": rows}
    renders = Path(args.renders) if args.renders else None
    result = evaluate_views(checkpoint.model, scene, scene.split(split), renders, appearance=args.appearance)
    width, height = result["resolution"]
    colour = "" if result["appearance"] == "none" else f", appearance: {result['appearance']}"
    print(
        f"{args.run}: PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f}  "
        f"({result['num_views']} {split} views at {width}x{height}{colour})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({**result, "split": split, "data": str(data), "held_out_poses": "given" if mapped is None else REFINED_FRAME}, indent=2) + "\n")
    return result


def _refined_poses(train: dict, scene: Scene) -> bool:
    """Whether the run refined its training poses (a distilled run's training cameras are
    sampled around its teacher's, not refined, so its held-out poses stay as given)."""
    from ..training.config import TrainConfig, refines_poses

    return refines_poses(TrainConfig(data=str(train["data"]), refine_poses=str(train.get("refine_poses", "off"))), scene)
