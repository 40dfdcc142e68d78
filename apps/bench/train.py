"""`tensorfields bench train`: train for a wall-clock budget and track held-out PSNR over time
(optionally against the same run on the pure-torch reference path, or on training images whose
colours are jittered per image, for appearance codes)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
from pathlib import Path
from typing import Any

import torch

from cuda_ext import reference_forced, status
from data import Scene, load_scene

from ..evaluate import evaluate_views, evenly_spaced
from ..training import Trainer, add_flags, config_from_args, train_run

__all__ = ["add_arguments", "bench_train", "time_to_psnr", "jitter_appearance", "APPEARANCE_JITTER"]

#: kornia `ColorJitter` ranges of `--jitter-appearance`: exposure x0.7..1.3, saturation x0.8..1.2,
#: hue (a white-balance tint) within 0.03 of a turn
APPEARANCE_JITTER = {"brightness": 0.3, "saturation": 0.2, "hue": 0.03}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..commands import types

    add_flags(parser)
    parser.add_argument("--budget", type=types.seconds, required=True, help=f"seconds of training, at most {types.MAX_SECONDS:,}")
    parser.add_argument("--out", default=None, help="run folder (default: runs/bench-<field>)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--eval-every", type=types.seconds, default=15.0, help="seconds of training between evaluations (default: 15)")
    parser.add_argument(
        "--eval-views",
        type=types.positive_int(100_000, "views"),
        default=10,
        help="held-out views per intermediate evaluation (default: 10)",
    )
    parser.add_argument("--compare-reference", action="store_true", help="repeat the run on the pure-torch reference path and compare it/s")
    parser.add_argument(
        "--jitter-appearance",
        type=types.non_negative_int(2**32 - 1),
        default=None,
        metavar="SEED",
        help="change each training image's brightness, saturation and hue at random (kornia's ColorJitter, this "
        "seed; the object only where the scene has alpha); held-out images stay as they are",
    )


def time_to_psnr(curve: list[list[float]], target: float) -> float | None:
    """First training time (s) at which the curve `[[seconds, psnr], ...]` reaches `target`."""
    return next((seconds for seconds, value in curve if value >= target), None)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_train(args: argparse.Namespace) -> dict[str, Any]:
    """Train `args.field` on `args.data` for `args.budget` seconds of training time.

    Every `args.eval_every` seconds of training (evaluation time is not counted) the field is
    scored on `args.eval_views` evenly spaced held-out views; at the end on the whole split.
    With `args.compare_reference` the same run is repeated on the pure-torch reference path
    (run folder suffixed `-reference`), and the iteration rates are compared.
    """
    out = args.out or f"runs/bench-{args.field}"
    result = _budget_run(args, out)
    if args.compare_reference:
        print("the same run on the pure-torch reference path:", flush=True)
        with reference_forced():
            reference = _budget_run(args, f"{out}-reference")
        result["reference"] = {k: reference[k] for k in ("final_psnr", "final_ssim", "curve", "iterations", "iterations_per_s")}
        result["speedup_vs_reference"] = round(result["iterations_per_s"] / reference["iterations_per_s"], 2)
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


def jitter_appearance(scene: Scene, seed: int) -> Scene:
    """`scene` with every training image's colours changed at random, as photos change with
    exposure and white balance: kornia's `ColorJitter` with `APPEARANCE_JITTER`, its draws fixed
    by `seed`. Where the scene has alpha, only the object changes (`a J(rgb) + (1 - a) rgb`): a
    synthetic background is no part of what the camera saw. Held-out images stay as they are."""
    import kornia.augmentation

    jitter = kornia.augmentation.ColorJitter(**APPEARANCE_JITTER, p=1.0)
    images = scene.images.clone()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for index in scene.split("train").tolist():
            rgb = images[index].permute(2, 0, 1)[None].float() / 255.0
            changed = jitter(rgb)
            if scene.alpha is not None:
                alpha = scene.alpha[index].float()[None, None] / 255.0
                changed = alpha * changed + (1.0 - alpha) * rgb
            images[index] = (changed[0].permute(1, 2, 0).clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
    return dataclasses.replace(scene, images=images)


def _budget_run(args: argparse.Namespace, out: str) -> dict[str, Any]:
    """One budget run of `bench_train` into `out`; its results (see `bench_train`)."""
    every = float("inf") if args.checkpoint_every is None else args.checkpoint_every  # no saves in the timing unless asked
    config = config_from_args(args, out=out, budget=args.budget, checkpoint_every=every)
    curve: list[list[float]] = []
    next_eval = [args.eval_every]

    def evaluate_on_schedule(trainer: Trainer) -> None:
        if trainer.state.train_seconds < next_eval[0]:
            return
        views = evenly_spaced(trainer.scene.split("test"), args.eval_views)
        result = evaluate_views(trainer.model, trainer.scene, views, with_ssim=False)
        curve.append([round(trainer.state.train_seconds, 2), round(result["psnr"], 3)])
        print(f"  t={trainer.state.train_seconds:6.1f}s  it={trainer.state.iteration:5d}  held-out PSNR {result['psnr']:.2f} dB", flush=True)
        next_eval[0] = trainer.state.train_seconds + args.eval_every

    scene = None
    if args.jitter_appearance is not None:
        scene = jitter_appearance(load_scene(config.data, config.downsample), args.jitter_appearance)
    metrics = train_run(config, overwrite=True, scene=scene, on_step=evaluate_on_schedule, final_eval_views=None)
    curve.append([round(metrics["train_seconds"], 2), round(metrics["psnr"], 3)])
    return {
        "field": args.field,
        "data": args.data,
        "downsample": args.downsample,
        "budget_s": args.budget,
        "native": status()["native"],
        "final_psnr": metrics["psnr"],
        "final_ssim": metrics["ssim"],
        "num_views": metrics["num_views"],
        "appearance": metrics["appearance"],
        "jitter_appearance": None if args.jitter_appearance is None else {"seed": args.jitter_appearance, **APPEARANCE_JITTER},
        "curve": curve,
        "time_to_psnr": {str(t): time_to_psnr(curve, t) for t in (25.0, 28.0, 30.0, 31.0, 32.0)},
        "iterations": metrics["iterations"],
        "iterations_per_s": round(metrics["iterations"] / metrics["train_seconds"], 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "num_parameters": metrics["num_parameters"],
        "run": str(Path(out).resolve()),
    }
