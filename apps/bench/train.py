"""`tensorfields bench train`: train for a wall-clock budget and track held-out PSNR over time
(optionally against the same run on the pure-torch reference path)."""

from __future__ import annotations

import argparse
import json
import resource
from pathlib import Path
from typing import Any

from cuda_ext import reference_forced, status

from ..evaluate import evaluate_views, evenly_spaced
from ..training import Trainer, add_flags, config_from_args, train_run

__all__ = ["add_arguments", "bench_train", "time_to_psnr"]


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

    metrics = train_run(config, overwrite=True, on_step=evaluate_on_schedule, final_eval_views=None)
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
        "curve": curve,
        "time_to_psnr": {str(t): time_to_psnr(curve, t) for t in (25.0, 28.0, 30.0, 31.0, 32.0)},
        "iterations": metrics["iterations"],
        "iterations_per_s": round(metrics["iterations"] / metrics["train_seconds"], 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "num_parameters": metrics["num_parameters"],
        "run": str(Path(out).resolve()),
    }
