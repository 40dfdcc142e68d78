"""Implementations of the `train`, `colmap`, `eval` and `render` subcommands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data import load_scene, prepare_scene
from data.sfm import run_sfm

from .checkpoint import load_checkpoint
from .evaluate import evaluate_views
from .run import load_run_config, train_run
from .slim import evaluate_ranks, parse_ranks, rank_table, slimmable_field
from .trainer import TrainConfig, train_cameras
from .video import render_video, video_cameras

__all__ = ["train_config", "train_command", "colmap_command", "eval_command", "render_command"]


def train_config(args: argparse.Namespace, **overrides) -> TrainConfig:
    """A TrainConfig from the shared training flags (see `cli._add_train_arguments`)."""
    values = dict(
        data=args.data,
        field=args.field,
        downsample=args.downsample,
        batch_size=args.batch_size,
        grid_init=args.grid_init,
        grid_final=args.grid_final,
        decoder=args.decoder,
        cone_angle=args.cone_angle,
        slimmable=args.slimmable,
        upsilon=args.upsilon,
        eta=args.eta,
        seed=args.seed,
        device=args.device,
    )
    values.update(overrides)
    return TrainConfig(**values)


def train_command(args: argparse.Namespace) -> None:
    """Train on `--data`; photos or a video get their camera poses from SfM first (`prepare_scene`)."""
    data = str(prepare_scene(args.data, fps=args.fps))
    train_run(train_config(args, data=data, out=args.out, iters=args.iters, budget=args.budget), resume=args.resume)


def colmap_command(args: argparse.Namespace) -> Path:
    return run_sfm(Path(args.path).expanduser(), args.matcher, args.max_size, args.threads)


def eval_command(args: argparse.Namespace) -> dict:
    run_config = load_run_config(args.run)
    checkpoint = load_checkpoint(args.run)
    data = args.data or run_config["train"]["data"]
    downsample = args.downsample if args.downsample is not None else run_config["train"]["downsample"]
    ranks = parse_ranks(args.ranks) if args.ranks else None
    if ranks:
        slimmable_field(checkpoint, args.run, ranks)  # check before loading the scene
    scene = load_scene(data, downsample)
    split = scene.split_name(args.split)
    if ranks:
        rows = evaluate_ranks(checkpoint, scene, scene.split(split), ranks)
        print(f"{args.run}: {split} views at {scene.width}x{scene.height}, the field slimmed to each rank\n{rank_table(rows)}")
        if args.json:
            Path(args.json).write_text(json.dumps({"ranks": rows, "split": split, "data": str(data)}, indent=2) + "\n")
        return {"ranks": rows}
    renders = Path(args.renders) if args.renders else None
    result = evaluate_views(checkpoint.field, checkpoint.grid, checkpoint.settings, scene, scene.split(split), renders)
    width, height = result["resolution"]
    print(f"{args.run}: PSNR {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f}  ({result['num_views']} {split} views at {width}x{height})")
    if args.json:
        Path(args.json).write_text(json.dumps({**result, "split": split, "data": str(data)}, indent=2) + "\n")
    return result


def render_command(args: argparse.Namespace) -> Path:
    run_config = load_run_config(args.run)
    checkpoint = load_checkpoint(args.run)
    scene_info = run_config["scene"]
    cameras = video_cameras(train_cameras(scene_info), args.orbit, scene_info["forward_facing"])
    out = render_video(checkpoint.field, checkpoint.grid, checkpoint.settings, cameras, Path(args.out), args.fps)
    print(f"wrote {out} ({args.orbit} frames at {scene_info['width']}x{scene_info['height']})")
    return out
