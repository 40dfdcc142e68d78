"""Scoring a rank-ordered field at each rank (SlimmeRF's test-time slimming): `tensorfields eval --ranks`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from data import Scene
from fields import Slimmable

from ..runs import Checkpoint, checkpoint_nbytes
from .views import evaluate_views

__all__ = ["parse_ranks", "slimmable_field", "evaluate_ranks", "rank_table"]


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
    field = checkpoint.model.field
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
        slimmed = checkpoint.model.with_field(checkpoint.model.field.slim(rank))
        result = evaluate_views(slimmed, scene, indices, with_ssim=with_ssim)
        rows.append(
            {
                "rank": rank,
                "psnr": result["psnr"],
                "ssim": result["ssim"],
                "nbytes": checkpoint_nbytes(Checkpoint(slimmed)),
                "num_parameters": slimmed.field.num_parameters(),
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
