"""The evaluation at the end of a training run: held-out views scored at the resolution, and in
the number, that a share of the training time allows at the render rate measured on a probe."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import torch

from data import Cameras, Scene
from render import Model

from ..evaluate import at_most_pixels, evaluate_views, evenly_spaced, into_refined_frame
from ..evaluate.poses import REFINED_FRAME
from ..runs import writing

__all__ = ["FINAL_EVAL_VIEWS", "FINAL_EVAL_PIXELS", "FINAL_EVAL_SHARE", "EvalPlan", "plan_final_eval", "final_evaluation"]

#: views scored at the end of training (`eval` scores a whole split)
FINAL_EVAL_VIEWS = 10
#: larger held-out views are scored downscaled to at most this many pixels (about 800x600;
#: `eval` scores them at full size): a 1600x1200 photo took minutes per view
FINAL_EVAL_PIXELS = 480_000
#: the share of the training time the final evaluation may take, probe included
FINAL_EVAL_SHARE = 0.1
#: the part of that time the plan fills: larger renders cost a little more per pixel than the
#: probe, and writing the renders takes the rest (the sculpture's 3 views took 13% over plan)
PLAN_FILL = 0.8
#: pixels of the probe view that measures the render rate; views this small are all scored unplanned
PROBE_PIXELS = 20_000
#: views are not scored below this many pixels (about 230x170): fewer views are scored instead
MIN_VIEW_PIXELS = 40_000


@dataclasses.dataclass(frozen=True)
class EvalPlan:
    """What the final evaluation scores: `views [K]` at `pixels` each, planned from a probe that
    rendered and scored `probe_pixels` in `probe_seconds` (0 when the time was not limited)."""

    views: torch.Tensor
    pixels: int
    probe_pixels: int = 0
    probe_seconds: float = 0.0

    @property
    def pixels_per_second(self) -> float:
        return self.probe_pixels / max(self.probe_seconds, 1e-9)


def plan_final_eval(model: Model, scene: Scene, views: torch.Tensor, seconds: float | None, max_pixels: int = FINAL_EVAL_PIXELS) -> EvalPlan:
    """The views `views [K]` (held-out indices of `scene`) and the pixels per view that fit in
    `seconds` (None: no limit, every view at up to `max_pixels`).

    Views of at most `PROBE_PIXELS` are all scored whole (cheap, and a probe would be one of
    them). Otherwise the render rate is measured by rendering and scoring the first view at
    `PROBE_PIXELS`, and the views fill `PLAN_FILL` of `seconds` at that rate. Views get equal
    shares down to `MIN_VIEW_PIXELS`; below that, fewer views are scored (at least one, even
    when it does not fit)."""
    pixels = min(scene.width * scene.height, max_pixels)
    if seconds is None or len(views) == 0 or pixels <= PROBE_PIXELS:
        return EvalPlan(views, pixels)
    probe_scene, _ = at_most_pixels(scene, views[:1], PROBE_PIXELS)
    started = time.perf_counter()
    evaluate_views(model, probe_scene, views[:1])
    probe_seconds = time.perf_counter() - started
    probe_pixels = probe_scene.width * probe_scene.height
    affordable = max(PLAN_FILL * seconds - probe_seconds, 0.0) * probe_pixels / max(probe_seconds, 1e-9)
    per_view = min(pixels, int(affordable / len(views)))
    floor = min(pixels, MIN_VIEW_PIXELS)
    if per_view >= floor:
        return EvalPlan(views, per_view, probe_pixels, probe_seconds)
    count = max(1, min(len(views), int(affordable // floor)))
    return EvalPlan(evenly_spaced(views, count), floor, probe_pixels, probe_seconds)


def final_evaluation(
    model: Model,
    scene: Scene,
    train_seconds: float,
    out: Path,
    log: Callable[[str], None],
    views: int | None = FINAL_EVAL_VIEWS,
    share: float | None = FINAL_EVAL_SHARE,
    refined: Cameras | None = None,
) -> dict[str, Any]:
    """Score `views` evenly spread held-out views of `scene` (None: all) within `share` of
    `train_seconds` (None: no limit), write their renders to `out/renders`, log what was scored
    and how long it took. With `refined` (the training cameras after pose refinement, `[T]`),
    the held-out cameras are first mapped into their frame (`into_refined_frame`).

    Returns:
        evaluate_views's result, plus "held_out_views" (the split's size), "held_out_poses"
        ("given" or `REFINED_FRAME`) and "eval_seconds" (probe included).
    """
    mapped = None if refined is None else into_refined_frame(scene, refined)
    if mapped is not None:
        scene = mapped
        log(f"held-out poses {REFINED_FRAME}")
    held_out = scene.split("test")
    started = time.perf_counter()
    plan = plan_final_eval(model, scene, evenly_spaced(held_out, views), None if share is None else share * train_seconds)
    scored, factor = at_most_pixels(scene, plan.views, plan.pixels)
    with writing(out / "renders", f"the trained checkpoint is saved in {out}; `tensorfields eval {out}` scores it"):
        result = evaluate_views(model, scored, plan.views, out / "renders")
    seconds = time.perf_counter() - started
    width, height = result["resolution"]
    what = f"{result['num_views']} of {len(held_out)} held-out views at {width}x{height}"
    if factor < 1.0:
        what += f" (downscaled from {scene.width}x{scene.height}; `tensorfields eval {out}` scores all at full size)"
    if plan.probe_seconds:
        what += f", sized for {share:.0%} of the training time at the measured {plan.pixels_per_second:,.0f} pixels/s"
    log(f"final evaluation: {what}; rendered and scored in {seconds:.1f} s ({seconds / max(train_seconds, 1e-9):.0%} of the training time)")
    poses = "given" if mapped is None else REFINED_FRAME
    return {**result, "held_out_views": int(len(held_out)), "held_out_poses": poses, "eval_seconds": round(seconds, 2)}
