"""Test-time slimming (SlimmeRF): `tensorfields slim` and the per-rank table of `tensorfields eval --ranks`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from data import Scene
from fields import Slimmable

from .checkpoint import CHECKPOINT_NAME, Checkpoint, checkpoint_nbytes, load_checkpoint, save_checkpoint
from .evaluate import evaluate_views
from .run import load_run_config
from .trainer import write_json

__all__ = ["parse_ranks", "slimmable_field", "evaluate_ranks", "slim_command", "rank_table"]


def parse_ranks(text: str) -> list[int]:
    """"1,2,4,8,16" -> [1, 2, 4, 8, 16] (sorted, unique, positive)."""
    try:
        ranks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"--ranks takes comma-separated whole numbers such as 1,2,4,8,16, got {text!r}") from None
    if not ranks or ranks[0] < 1:
        raise ValueError(f"--ranks takes positive ranks such as 1,2,4,8,16, got {text!r}")
    return ranks


def slimmable_field(checkpoint: Checkpoint, run: str | Path, ranks: list[int]) -> Slimmable:
    """The checkpoint's field, checked to be rank-ordered with every rank of `ranks`."""
    field = checkpoint.field
    if not isinstance(field, Slimmable):
        raise ValueError(f"{run}: a '{field.name}' field has no ranks to slim (vm, cp and trivec fields do)")
    too_high = [r for r in ranks if r > field.ranks]
    if too_high:
        raise ValueError(f"{run}: rank {too_high[0]} is above this field's {field.ranks} (choose ranks 1 to {field.ranks})")
    return field


@torch.no_grad()
def evaluate_ranks(checkpoint: Checkpoint, scene: Scene, indices: torch.Tensor, ranks: list[int], with_ssim: bool = True) -> list[dict[str, Any]]:
    """Score the field slimmed to each of `ranks` on the views `indices` of `scene`.

    Returns one entry per rank: {"rank", "psnr", "ssim", "nbytes" (the size of the compact
    checkpoint `tensorfields slim` writes at that rank), "num_parameters"}.
    """
    rows = []
    for rank in ranks:
        slimmed = checkpoint.field.slim(rank)
        result = evaluate_views(slimmed, checkpoint.grid, checkpoint.settings, scene, indices, with_ssim=with_ssim)
        rows.append(
            {
                "rank": rank,
                "psnr": result["psnr"],
                "ssim": result["ssim"],
                "nbytes": checkpoint_nbytes(Checkpoint(slimmed, checkpoint.grid, checkpoint.settings)),
                "num_parameters": slimmed.num_parameters(),
            }
        )
    return rows


def rank_table(rows: list[dict[str, Any]]) -> str:
    """The per-rank rows as an aligned text table (rank, PSNR, SSIM, size)."""
    lines = ["rank    PSNR     SSIM      size"]
    for row in rows:
        ssim = f"{row['ssim']:.4f}" if row["ssim"] is not None else "   -  "
        lines.append(f"{row['rank']:4d}  {row['psnr']:6.2f}  {ssim}  {row['nbytes'] / 1e6:6.2f} MB")
    return "\n".join(lines)


def slim_command(args: argparse.Namespace) -> Path:
    """Write the run `args.run` slimmed to `args.rank` into the run folder `args.out`."""
    source, out = Path(args.run), Path(args.out)
    if out.resolve() == source.resolve():
        raise ValueError(f"{out}: --out must be a new run folder, not the run being slimmed")
    run_config = load_run_config(source)
    checkpoint = load_checkpoint(source)
    field = slimmable_field(checkpoint, source, [args.rank])
    slimmed = Checkpoint(field.slim(args.rank), checkpoint.grid, checkpoint.settings)
    save_checkpoint(out / CHECKPOINT_NAME, slimmed, compact=True, half=args.half)
    run_config["slim"] = {"source": str(source.resolve()), "rank": args.rank, "of": field.ranks, "half": args.half}
    write_json(out / "config.json", run_config)
    before, after = (source / CHECKPOINT_NAME).stat().st_size, (out / CHECKPOINT_NAME).stat().st_size
    precision = "float16" if args.half else "float32"
    print(
        f"wrote {out / CHECKPOINT_NAME}: rank {args.rank} of {field.ranks}, {slimmed.field.num_parameters():,} parameters "
        f"in {precision}, {after / 1e6:.2f} MB (the training checkpoint: {before / 1e6:.2f} MB)"
    )
    return out
