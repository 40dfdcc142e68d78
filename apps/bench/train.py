"""`tensorfields bench train`: train for a wall-clock budget and track held-out PSNR over time
(optionally against the same run on the pure-torch reference path, on training images whose
colours are jittered per image, for appearance codes, or from perturbed training poses, for pose
refinement)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cuda_ext import reference_forced, status
from data import Scene, load_scene
from data.cameras import se3_exp

from ..evaluate import align_poses, evaluate_views, evenly_spaced, fit_poses, into_estimate, pose_errors
from ..evaluate.poses import POSE_FIT_STEPS
from ..training import Trainer, add_flags, config_from_args, train_run
from ..training.strategies.poses import camera_radius

__all__ = ["add_arguments", "bench_train", "time_to_psnr", "jitter_appearance", "perturb_poses", "refine_poses", "APPEARANCE_JITTER", "PERTURB_SEED"]

#: the random draws of `--perturb-poses`
PERTURB_SEED = 0

#: kornia `ColorJitter` ranges of `--jitter-appearance`: exposure x0.7..1.3, saturation x0.8..1.2,
#: hue (a white-balance tint) within 0.03 of a turn
APPEARANCE_JITTER = {"brightness": 0.3, "saturation": 0.2, "hue": 0.03}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..commands import types

    add_flags(parser)
    parser.set_defaults(refine_poses="auto")  # here: on with --perturb-poses, otherwise off
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
    parser.add_argument(
        "--perturb-poses",
        type=types.perturbation,
        default=None,
        metavar="ROT_DEG,TRANS_FRAC",
        help="rotate every training camera by ROT_DEG degrees about a random axis through its centre and move it by "
        "TRANS_FRAC of the scene radius in a random direction (seed 0), train with pose refinement (on unless "
        "--refine-poses off) and report the pose errors after a similarity alignment to the true poses, before and "
        "after, held-out PSNR with the true held-out poses mapped through that alignment, and on --eval-views of them "
        "after a test-time fit of each pose to its image (both as BARF)",
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


def perturb_poses(scene: Scene, degrees: float, fraction: float, seed: int = PERTURB_SEED) -> Scene:
    """`scene` with every training camera rotated by `degrees` about a random axis through its
    centre and moved by `fraction` of `camera_radius` in a random direction (draws fixed by
    `seed`); held-out cameras stay as they are."""
    rng = np.random.default_rng(seed)
    train = scene.split("train")
    axes = rng.normal(size=(len(train), 3))
    shifts = rng.normal(size=(len(train), 3))
    omega = torch.from_numpy(axes / np.linalg.norm(axes, axis=1, keepdims=True) * np.radians(degrees)).float()
    shift = torch.from_numpy(shifts / np.linalg.norm(shifts, axis=1, keepdims=True) * fraction * camera_radius(scene)).float()
    c2w = scene.cameras.c2w.clone()
    c2w[train] = c2w[train] @ se3_exp(torch.cat([omega, torch.zeros_like(omega)], dim=1))
    c2w[train, :3, 3] += shift
    return dataclasses.replace(scene, cameras=dataclasses.replace(scene.cameras, c2w=c2w))


def _held_out_cameras(trainer: Trainer, truth: torch.Tensor | None) -> Scene:
    """The scene to score held-out views on: as it is, or with `truth` `[N, 4, 4]` (the true
    poses of every view, when the training poses were perturbed) mapped into the frame of the
    training cameras as refined so far (the alignment of refined to true training poses)."""
    scene = trainer.scene
    if truth is None:
        return scene
    train, test = scene.split("train"), scene.split("test")
    with torch.no_grad():
        refined = trainer.training_cameras().c2w[train.to(trainer.device)].cpu().double().numpy()
    similarity = align_poses(refined, truth[train].double().numpy())
    cameras = into_estimate(dataclasses.replace(scene.cameras, c2w=truth.clone()), test, similarity)
    return dataclasses.replace(scene, cameras=cameras)


def _pose_report(args: argparse.Namespace, trainer: Trainer, given: Scene, truth: torch.Tensor) -> dict[str, Any]:
    """Pose errors of the given (perturbed) and the refined training cameras against `truth`."""
    train = given.split("train")
    radius = camera_radius(dataclasses.replace(given, cameras=dataclasses.replace(given.cameras, c2w=truth)))
    true = truth[train].double().numpy()
    with torch.no_grad():
        refined = trainer.training_cameras().c2w[train.to(trainer.device)].cpu().double().numpy()
    degrees, fraction = args.perturb_poses
    return {
        "perturbation": {"rotation_deg": degrees, "translation_fraction": fraction, "seed": PERTURB_SEED, "scene_radius": round(radius, 4)},
        "refine_poses": trainer.strategy("poses") is not None,
        "pose_blur": trainer.config.pose_blur,
        "before": pose_errors(given.cameras.c2w[train].double().numpy(), true, radius),
        "after": pose_errors(refined, true, radius),
    }


def refine_poses(args: argparse.Namespace) -> str:
    """The run's `--refine-poses`: as given, or for auto (the bench's default) on with
    `--perturb-poses` and off without."""
    if args.refine_poses != "auto":
        return args.refine_poses
    return "on" if args.perturb_poses is not None else "off"


def _test_time_fit(trainer: Trainer, held_out: Scene, final: dict[str, Any], count: int) -> dict[str, Any]:
    """BARF's test-time pose optimization on `count` evenly spaced held-out views of `held_out`
    (true poses mapped into the refined frame): their PSNR as mapped (from `final`, the scores
    of every view) and after each pose is fitted to its image with the field frozen."""
    views = evenly_spaced(held_out.split("test"), count)
    mapped = {entry["index"]: entry["psnr"] for entry in final["per_view"]}
    fitted = evaluate_views(trainer.model, fit_poses(trainer.model, held_out, views), views, with_ssim=False)
    return {
        "views": views.tolist(),
        "psnr_mapped": round(sum(mapped[v] for v in views.tolist()) / len(views), 3),
        "psnr_fitted": round(fitted["psnr"], 3),
        "steps": POSE_FIT_STEPS,
    }


def _budget_run(args: argparse.Namespace, out: str) -> dict[str, Any]:
    """One budget run of `bench_train` into `out`; its results (see `bench_train`). With
    `--perturb-poses`, held-out views are scored with their true poses mapped into the refined
    cameras' frame, and the results hold the pose errors ("poses")."""
    every = float("inf") if args.checkpoint_every is None else args.checkpoint_every  # no saves in the timing unless asked
    perturbing = args.perturb_poses is not None
    config = config_from_args(args, out=out, budget=args.budget, checkpoint_every=every, refine_poses=refine_poses(args))
    curve: list[list[float]] = []
    next_eval = [args.eval_every]
    trained: list[Trainer] = []

    scene, truth = None, None
    if args.jitter_appearance is not None or perturbing:
        scene = load_scene(config.data, config.downsample)
    if args.jitter_appearance is not None:
        scene = jitter_appearance(scene, args.jitter_appearance)
    if perturbing:
        truth = scene.cameras.c2w.clone()
        scene = perturb_poses(scene, *args.perturb_poses)

    def evaluate_on_schedule(trainer: Trainer) -> None:
        trained[:] = [trainer]
        if trainer.state.train_seconds < next_eval[0]:
            return
        views = evenly_spaced(trainer.scene.split("test"), args.eval_views)
        result = evaluate_views(trainer.model, _held_out_cameras(trainer, truth), views, with_ssim=False)
        curve.append([round(trainer.state.train_seconds, 2), round(result["psnr"], 3)])
        print(f"  t={trainer.state.train_seconds:6.1f}s  it={trainer.state.iteration:5d}  held-out PSNR {result['psnr']:.2f} dB", flush=True)
        next_eval[0] = trainer.state.train_seconds + args.eval_every

    # every held-out view, however long it takes; with perturbed poses, the run's own final
    # evaluation (metrics.json) is a short unaligned one and the aligned one follows
    metrics = train_run(
        config, overwrite=True, scene=scene, on_step=evaluate_on_schedule, final_eval_views=10 if perturbing else None, final_eval_share=None
    )
    poses = None
    if perturbing:
        trainer = trained[0]
        held_out = _held_out_cameras(trainer, truth)
        final = evaluate_views(trainer.model, held_out, trainer.scene.split("test"))
        metrics = {**metrics, "psnr": final["psnr"], "ssim": final["ssim"], "num_views": final["num_views"]}
        poses = {**_pose_report(args, trainer, scene, truth), "test_time_fit": _test_time_fit(trainer, held_out, final, args.eval_views)}
        print(f"poses before: {poses['before']}\nposes after:  {poses['after']}\nheld-out poses fitted: {poses['test_time_fit']}", flush=True)
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
        "poses": poses,
        "curve": curve,
        "time_to_psnr": {str(t): time_to_psnr(curve, t) for t in (25.0, 28.0, 30.0, 31.0, 32.0)},
        "iterations": metrics["iterations"],
        "iterations_per_s": round(metrics["iterations"] / metrics["train_seconds"], 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "num_parameters": metrics["num_parameters"],
        "run": str(Path(out).resolve()),
    }
