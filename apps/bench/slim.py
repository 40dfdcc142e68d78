"""`tensorfields bench slim`: how gracefully a field slims, trained with and without TRaIn.

Two runs of the same field on the same scene with the same wall-clock budget, one with
`--slimmable` (SlimmeRF's rank incrementation) and one without, both scored on the held-out
views after slimming to each rank. SlimmeRF's claim, checked here: the slimmable field loses
little at low ranks, the plain one collapses, and at full rank the two are about equal.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from data import load_scene

from ..evaluate import evaluate_ranks, evenly_spaced, parse_ranks
from ..runs import CHECKPOINT_NAME, load_checkpoint
from ..training import TrainConfig, train_run

__all__ = ["add_arguments", "bench_slim", "slim_targets"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..commands import types
    from ..training.config import MAX_ETA, MAX_UPSILON

    parser.add_argument("--data", required=True, help="scene folder, e.g. ../shared/data/lego")
    parser.add_argument(
        "--downsample", type=types.downsample, default=8.0, help=f"divide image size by this, 1 to {types.MAX_DOWNSAMPLE} (default: 8)"
    )
    parser.add_argument("--field", type=types.field_name, default="vm", help="rank-ordered field: vm, cp or trivec (default: vm)")
    parser.add_argument("--budget", type=types.seconds, default=120.0, help="seconds of training per run (default: 120)")
    parser.add_argument("--ranks", type=types.rank_list, default="1,2,4,8,16", help="ranks to score (default: 1,2,4,8,16)")
    parser.add_argument(
        "--eval-views",
        type=types.non_negative_int(100_000, "views", zero_means="all"),
        default=0,
        help="held-out views to score (default: 0, all)",
    )
    parser.add_argument(
        "--upsilon",
        type=types.real(0, MAX_UPSILON, low_open=True, noun="a fraction"),
        default=None,
        help=f"TRaIn threshold, above 0 and at most {MAX_UPSILON:g} (default: SlimmeRF's)",
    )
    parser.add_argument(
        "--eta",
        type=types.non_negative_int(MAX_ETA, "steps"),
        default=None,
        help=f"TRaIn least steps between increments, 0 to {MAX_ETA:,} (default: SlimmeRF's)",
    )
    parser.add_argument("--out", default="runs/bench-slim", help="folder of the two runs, reused when they exist (default: runs/bench-slim)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")

def bench_slim(args: argparse.Namespace) -> dict[str, Any]:
    """Train (or reuse) `<out>/slimmable` and `<out>/plain`, score both at `args.ranks`, compare."""
    scene = load_scene(args.data, args.downsample)
    ranks = parse_ranks(args.ranks)
    views = evenly_spaced(scene.split("test"), args.eval_views or None)
    result: dict[str, Any] = {"data": args.data, "downsample": args.downsample, "field": args.field, "budget_s": args.budget}
    for name, slimmable in (("slimmable", True), ("plain", False)):
        run = Path(args.out) / name
        if not (run / CHECKPOINT_NAME).is_file() or not (run / "metrics.json").is_file():
            config = TrainConfig(
                data=args.data,
                field=args.field,
                out=str(run),
                downsample=args.downsample,
                budget=args.budget,
                slimmable=slimmable,
                upsilon=args.upsilon,
                eta=args.eta,
                checkpoint_every=float("inf"),
            )
            print(f"training the {name} {args.field} field for {args.budget:.0f} s into {run}", flush=True)
            train_run(config, overwrite=True, scene=scene, final_eval_views=1)
        else:
            print(f"reusing {run}", flush=True)
        checkpoint = load_checkpoint(run)
        full_rank = checkpoint.model.field.ranks
        usable = [rank for rank in ranks if rank <= full_rank]
        metrics = json.loads((run / "metrics.json").read_text())
        rows = evaluate_ranks(checkpoint, scene, views, usable, with_ssim=True)
        result[name] = {"ranks": rows, "full_rank": full_rank, "iterations": metrics["iterations"], "run": str(run.resolve())}
    result["num_views"] = len(views)
    result["targets"] = slim_targets(result["slimmable"]["ranks"], result["plain"]["ranks"])
    print(comparison_table(result))
    print(json.dumps(result["targets"], indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


def _psnr_at(rows: list[dict[str, Any]], rank: int) -> float | None:
    return next((row["psnr"] for row in rows if row["rank"] == rank), None)


def slim_targets(slimmable: list[dict[str, Any]], plain: list[dict[str, Any]], low_rank: int = 4) -> dict[str, Any]:
    """The issue's three checks from the per-rank rows (highest rank = full):
    slimmable full - slimmable at `low_rank` <= 4 dB; plain full - slimmable full <= 0.5 dB;
    slimmable at `low_rank` - plain at `low_rank` >= 8 dB."""
    slim_full, plain_full = slimmable[-1]["psnr"], plain[-1]["psnr"]
    slim_low, plain_low = _psnr_at(slimmable, low_rank), _psnr_at(plain, low_rank)
    checks: dict[str, Any] = {"full_rank_gap_db": round(plain_full - slim_full, 3)}
    checks["full_rank_gap_ok"] = checks["full_rank_gap_db"] <= 0.5
    if slim_low is not None:
        checks[f"rank{low_rank}_drop_db"] = round(slim_full - slim_low, 3)
        checks[f"rank{low_rank}_drop_ok"] = checks[f"rank{low_rank}_drop_db"] <= 4.0
    if slim_low is not None and plain_low is not None:
        checks[f"rank{low_rank}_vs_plain_db"] = round(slim_low - plain_low, 3)
        checks[f"rank{low_rank}_vs_plain_ok"] = checks[f"rank{low_rank}_vs_plain_db"] >= 8.0
    return checks


def comparison_table(result: dict[str, Any]) -> str:
    """PSNR and size per rank of both runs, side by side."""
    plain = {row["rank"]: row for row in result["plain"]["ranks"]}
    lines = ["rank   slimmable PSNR   size      plain PSNR   size"]
    for row in result["slimmable"]["ranks"]:
        other = plain.get(row["rank"])
        right = f"{other['psnr']:8.2f} dB  {other['nbytes'] / 1e6:5.2f} MB" if other else ""
        lines.append(f"{row['rank']:4d}   {row['psnr']:10.2f} dB  {row['nbytes'] / 1e6:5.2f} MB   {right}")
    return "\n".join(lines)
