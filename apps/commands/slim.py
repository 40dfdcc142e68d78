"""`tensorfields slim`: a run truncated to a lower rank, as a smaller render-only run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import types

__all__ = ["register", "slim_command"]


def register(commands: argparse._SubParsersAction) -> None:
    slim = commands.add_parser(
        "slim",
        help="truncate a rank-ordered run to a lower rank (a smaller checkpoint)",
        description="Write a run folder whose field keeps only the first RANK components of every group (SlimmeRF "
        "test-time slimming). The checkpoint is compact: render-only (no optimizer state, packed occupancy grid).",
    )
    slim.add_argument("run", help="run folder of a vm, cp or trivec field (best trained with --slimmable)")
    slim.add_argument(
        "--rank",
        type=types.positive_int(types.MAX_RANK),
        required=True,
        help="rank to keep, 1 to the field's rank (16 for TensoRF's VM)",
    )
    slim.add_argument("--out", type=types.run_folder, required=True, help="new run folder")
    slim.add_argument(
        "--overwrite", action="store_true", help="replace the run already in --out (default: refuse a folder that holds one)"
    )
    slim.add_argument("--half", action="store_true", help="store the field's parameters as float16 (half the size)")
    slim.set_defaults(func=slim_command)


def slim_command(args: argparse.Namespace) -> Path:
    """Write the run `args.run` slimmed to `args.rank` into the run folder `args.out`."""
    from ..evaluate import slimmable_field
    from ..runs import CHECKPOINT_NAME, Checkpoint, claim_run_folder, load_checkpoint, load_run_config, save_checkpoint, write_json

    source, out = Path(args.run), Path(args.out)
    if out.resolve() == source.resolve():
        raise ValueError(f"{out}: --out must be a new run folder, not the run being slimmed")
    run_config = load_run_config(source)
    checkpoint = load_checkpoint(source)
    try:
        field = slimmable_field(checkpoint, source, [args.rank])
    except ValueError as error:
        raise ValueError(f"--rank {args.rank}: {error}") from None
    slimmed = checkpoint.model.with_field(field.slim(args.rank))
    run_config["slim"] = {"source": str(source.resolve()), "rank": args.rank, "of": field.ranks, "half": args.half}
    with claim_run_folder(out, overwrite=args.overwrite) as events:
        for event in events:
            print(event)
        save_checkpoint(out / CHECKPOINT_NAME, Checkpoint(slimmed), compact=True, half=args.half)
        write_json(out / "config.json", run_config)
    before, after = (source / CHECKPOINT_NAME).stat().st_size, (out / CHECKPOINT_NAME).stat().st_size
    precision = "float16" if args.half else "float32"
    print(
        f"wrote {out / CHECKPOINT_NAME}: rank {args.rank} of {field.ranks}, {slimmed.field.num_parameters():,} parameters "
        f"in {precision}, {after / 1e6:.2f} MB (the training checkpoint: {before / 1e6:.2f} MB)"
    )
    return out
