"""`tensorfields bench distill`: a VM teacher distilled into every student field, each beside the
same field trained from scratch on the images for the same wall-clock time, plus reverse pairs
(students of other fields as teachers of a VM), in one table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fields import FIELDS

from ..distill.run import DEFAULT_VIEWS, distill_run
from ..training import TrainConfig, train_run

__all__ = ["add_arguments", "bench_distill", "DEFAULT_STUDENTS", "DEFAULT_REVERSE"]

#: students of the VM teacher, and the fields trained as teachers of a VM (reverse pairs)
DEFAULT_STUDENTS = "vm,cp,trivec,hashgrid,gaussians"
DEFAULT_REVERSE = "trivec,hashgrid"


def _fields(text: str) -> list[str]:
    names = [name for name in text.split(",") if name]
    unknown = [name for name in names if name not in FIELDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(FIELDS))})")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..commands import types

    parser.add_argument("--data", required=True, help="scene folder (e.g. ../shared/data/lego)")
    parser.add_argument("--downsample", type=types.positive_float(64, "downsampling"), default=8.0, help="image downsampling (default: 8)")
    parser.add_argument("--teacher-budget", type=types.seconds, default=240.0, help="seconds of training of each teacher (default: 240)")
    parser.add_argument("--budget", type=types.seconds, default=60.0, help="seconds of each distillation and scratch run (default: 60)")
    parser.add_argument("--students", type=_fields, default=_fields(DEFAULT_STUDENTS), help=f"students of the VM teacher (default: {DEFAULT_STUDENTS})")
    parser.add_argument("--reverse", type=_fields, default=_fields(DEFAULT_REVERSE), help=f"fields trained as teachers of a VM student (default: {DEFAULT_REVERSE})")
    parser.add_argument("--views", type=types.positive_int(10_000, "views"), default=DEFAULT_VIEWS, help=f"teacher views (default: {DEFAULT_VIEWS})")
    parser.add_argument("--out", default="runs/bench-distill", help="folder of the runs (default: runs/bench-distill)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")


def _row(kind: str, field: str, metrics: dict[str, Any], teacher: str | None = None) -> dict[str, Any]:
    seconds = metrics.get("distill_seconds", metrics["train_seconds"])
    return {
        "run": kind, "teacher": teacher, "field": field, "psnr": round(metrics["psnr"], 2), "ssim": round(metrics["ssim"], 4),
        "parameters": metrics["num_parameters"], "seconds": round(seconds, 1), "iterations": metrics["iterations"],
    }  # fmt: skip


def _scratch(args: argparse.Namespace, field: str, budget: float, out: Path) -> dict[str, Any]:
    """`field` trained on the images for `budget` seconds, scored on every held-out view."""
    config = TrainConfig(data=args.data, field=field, out=str(out), downsample=args.downsample, budget=budget, checkpoint_every=float("inf"))
    return train_run(config, overwrite=True, final_eval_views=None, final_eval_share=None)


def _distilled(args: argparse.Namespace, teacher: Path, field: str, out: Path) -> dict[str, Any]:
    return distill_run(teacher, field, out, budget=args.budget, views=args.views, overwrite=True, final_eval_views=None, final_eval_share=None)


def bench_distill(args: argparse.Namespace) -> dict[str, Any]:
    """The table (module docstring): each row's held-out PSNR on every held-out image, parameters,
    seconds (a distillation's include rendering its teacher's views) and iterations. The VM
    teacher and each reverse teacher train `args.teacher_budget` seconds; the scratch runs of the
    reverse teachers' fields at that budget are the "from scratch at the teacher's budget" rows."""
    out = Path(args.out)
    rows: list[dict[str, Any]] = []

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        print(f"  {row['run']:>9} {row['teacher'] or '':>8} -> {row['field']:<9} {row['psnr']:6.2f} dB  {row['parameters']:>10,} params  "
              f"{row['seconds']:6.1f} s  {row['iterations']:>6} it", flush=True)  # fmt: skip

    teacher = out / "teacher-vm"
    add(_row("teacher", "vm", _scratch(args, "vm", args.teacher_budget, teacher)))
    for field in args.students:
        add(_row("distilled", field, _distilled(args, teacher, field, out / f"vm-to-{field}"), "vm"))
        add(_row("scratch", field, _scratch(args, field, args.budget, out / f"scratch-{field}")))
    for field in args.reverse:
        reverse_teacher = out / f"teacher-{field}"
        add(_row("teacher", field, _scratch(args, field, args.teacher_budget, reverse_teacher)))
        add(_row("distilled", "vm", _distilled(args, reverse_teacher, "vm", out / f"{field}-to-vm"), field))
    result = {"data": args.data, "downsample": args.downsample, "teacher_budget_s": args.teacher_budget, "budget_s": args.budget, "rows": rows}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result
