"""A whole distillation: a trained teacher run -> a student run folder of another field, trained on
the teacher's renders (`teacher.teacher_scene`) with PVD's losses (`training.strategies.Distillation`)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

from fields import Decoded, field_class

from ..runs import RunFolderError, RunLock, write_json, writing
from ..runs.folder import check_writable, clear_run, previous_run
from ..training import TrainConfig, train_run
from .teacher import HELD_OUT_VIEWS, TEACHER_VIEWS, Teacher, load_teacher, load_views, real_held_out, sampled_views, save_views, teacher_scene

__all__ = ["distill_run", "student_config", "DEFAULT_VIEWS", "MIN_TRAIN_SHARE"]

#: teacher views rendered for the student. Rendering them is part of the budget: on lego at 1/8
#: size, VM -> CP in 60 s scored 30.8 dB from 100 views (18 s of rendering), 31.5 from 40, 31.8
#: from 20 (10 held-out views)
DEFAULT_VIEWS = 20
#: a --budget must leave at least this share of itself for training once the views are rendered
MIN_TRAIN_SHARE = 0.25


def student_config(teacher: Teacher, field: str, out: str | Path, iters: int, budget: float | None, seed: int, device: str | None) -> TrainConfig:
    """The student's TrainConfig: the teacher's scene, downsampling, grid and decoder (so that a
    decoded student can share the teacher's), nothing fitted to photos (appearance codes, pose
    refinement, SfM depth: its images are renders), no contraction or distortion of its own (it
    takes the teacher's render settings); a Gaussian student starts from Gaussians fitted to the
    teacher."""
    train = teacher.train
    decoder = train.get("decoder") if isinstance(teacher.model.field, Decoded) else None
    return TrainConfig(
        data=str(train["data"]),
        field=field,
        out=str(out),
        downsample=float(train["downsample"]),
        iters=iters,
        budget=budget,
        occupancy_resolution=int(train.get("occupancy_resolution", TrainConfig.occupancy_resolution)),
        decoder=decoder if field != "gaussians" else None,
        appearance="off",
        contraction="off",
        distortion=0.0,
        depth_supervision="off",
        refine_poses="off",
        init_from=str(teacher.run) if field == "gaussians" else None,
        teacher=str(teacher.run),
        seed=seed,
        device=device,
    )


def distill_run(
    teacher_run: str | Path,
    field: str,
    out: str | Path,
    iters: int = 30000,
    budget: float | None = None,
    views: int = DEFAULT_VIEWS,
    resume: bool = False,
    overwrite: bool = False,
    seed: int = 0,
    device: str | None = None,
    log: Callable[[str], None] = print,
    **train_options: Any,
) -> dict[str, Any]:
    """Distill the run `teacher_run` into a new `field` run in `out`; returns its metrics.

    The teacher's renders at `views` sampled cameras are saved in `out` first (a resumed
    distillation reuses them); a `budget` (seconds) covers that rendering and the training.
    `metrics.json` adds the teacher, its render time and the whole distillation time to what
    training writes. `train_options` go to `train_run`. Unknown fields, teacher folders without
    a checkpoint (or with a newer one) and folders holding another run raise one line.
    """
    started = time.perf_counter()
    field_class(field)
    out = Path(out)
    teacher = load_teacher(teacher_run, device or "cpu")
    config = student_config(teacher, field, out, iters, budget, seed, device)
    with RunLock(_checked_folder(out, resume, overwrite, log)):
        views_path = out / TEACHER_VIEWS
        if resume and views_path.is_file():
            rendered = load_views(views_path)
            log(f"teacher views: {len(rendered.rgb)} from {views_path}")
        else:
            rendered = sampled_views(teacher, views, seed)
            with writing(views_path):
                save_views(rendered, views_path)
            log(f"teacher views: {len(rendered.rgb)} rendered at {rendered.cameras.width}x{rendered.cameras.height} in {rendered.seconds:.1f} s")
    held_out = real_held_out(teacher, log) or sampled_views(teacher, HELD_OUT_VIEWS, seed + 1)
    if budget is not None:
        left = budget - rendered.seconds
        if left < MIN_TRAIN_SHARE * budget:
            raise ValueError(
                f"--budget {budget:g}: rendering {len(rendered.rgb)} teacher views took {rendered.seconds:.0f} s, "
                f"which leaves too little to train; give fewer --views or a longer --budget"
            )
        config = dataclasses.replace(config, budget=left)
    scene = teacher_scene(teacher, rendered, held_out)
    metrics = train_run(config, resume=resume, scene=scene, log=log, **train_options)
    metrics.update(
        teacher=str(teacher.run),
        teacher_field=teacher.model.field.name,
        teacher_parameters=teacher.model.field.num_parameters(),
        teacher_views=len(rendered.rgb),
        teacher_render_seconds=round(rendered.seconds, 2),
        distill_seconds=round(rendered.seconds + metrics["train_seconds"], 2),
        held_out="images" if isinstance(held_out, tuple) else "teacher renders",
        wall_seconds=round(time.perf_counter() - started, 2),
    )
    with writing(out / "metrics.json"):
        write_json(out / "metrics.json", metrics)
    return metrics


def _checked_folder(out: Path, resume: bool, overwrite: bool, log: Callable[[str], None]) -> Path:
    """`out`, checked before anything is written there as `runs.claim_run_folder` checks it
    (writable; another run only with `resume` or `overwrite`, which removes it)."""
    if resume and overwrite:
        raise RunFolderError(f"{out}: --resume continues the run there and --overwrite replaces it; give one of them")
    check_writable(out)
    found = previous_run(out) + ([TEACHER_VIEWS] if (out / TEACHER_VIEWS).is_file() else [])
    if found and overwrite:
        clear_run(out)
        (out / TEACHER_VIEWS).unlink(missing_ok=True)
        log(f"--overwrite: removed the previous run's {', '.join(found)} from {out}")
    elif found and not resume:
        raise RunFolderError(f"{out}: holds another run ({', '.join(found)}); continue it with --resume, replace it with --overwrite, or choose another --out")
    return out
