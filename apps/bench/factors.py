"""`tensorfields bench factors`: factor sampling forward + backward, native kernel vs the
grid_sample reference, side by side.

Prints one line per configuration (TensoRF's default ranks: 16 per VM pair for density, summed;
48 for appearance; CP 96 / 288) with the median time of each path and their ratio. Both paths
run back to back on the same inputs, so load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cuda_ext import cp_sample, reference, status, vm_sample

__all__ = ["add_arguments", "bench_factors", "bench_vm", "bench_cp"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..commands import types

    parser.add_argument("--repeats", type=types.positive_int(1000), default=5, help="timed runs per configuration, 1 to 1000 (default: 5)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")

def _time(step: Callable[[], None], repeats: int) -> float:
    """Median seconds of `step` over `repeats` runs, after one warm-up run."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _fwd_bwd(sample: Callable[..., torch.Tensor], factors: list[torch.Tensor], *args: object) -> Callable[[], None]:
    """One forward + backward of `sample(*args)` w.r.t. `factors` with a fixed random output gradient."""
    grad: list[torch.Tensor] = []

    def step() -> None:
        out = sample(*args)
        if not grad:
            grad.append(torch.randn_like(out))
        torch.autograd.grad(out, factors, grad[0])

    return step


def bench_vm(rank: int, resolution: int, num_points: int, reduce: bool, repeats: int) -> tuple[float, float]:
    """(reference, native) seconds for VM factors `[rank, res, res]` / `[rank, res]` and `num_points` random points."""
    g = torch.Generator().manual_seed(0)
    planes = [(0.1 * torch.randn(rank, resolution, resolution, generator=g)).requires_grad_() for _ in range(3)]
    lines = [(0.1 * torch.randn(rank, resolution, generator=g)).requires_grad_() for _ in range(3)]
    xn = torch.rand(num_points, 3, generator=g) * 2 - 1
    factors = planes + lines
    ref = _time(_fwd_bwd(reference.vm_sample, factors, planes, lines, xn, reduce), repeats)
    nat = _time(_fwd_bwd(vm_sample, factors, planes, lines, xn, reduce), repeats)
    return ref, nat


def bench_cp(rank: int, resolution: int, num_points: int, reduce: bool, repeats: int) -> tuple[float, float]:
    """(reference, native) seconds for CP lines `[rank, res]` and `num_points` random points."""
    g = torch.Generator().manual_seed(0)
    lines = [(0.2 * torch.randn(rank, resolution, generator=g)).requires_grad_() for _ in range(3)]
    xn = torch.rand(num_points, 3, generator=g) * 2 - 1
    ref = _time(_fwd_bwd(reference.cp_sample, lines, lines, xn, reduce), repeats)
    nat = _time(_fwd_bwd(cp_sample, lines, lines, xn, reduce), repeats)
    return ref, nat


def bench_factors(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time every configuration (`args.repeats` runs each); print a table, write `args.json`."""
    if not status()["native"]:
        raise ValueError(f"the native extension is not available ({status()['error'] or 'forced off'}); nothing to compare")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; forward + backward, median of {args.repeats}")
    print(f"{'op':<4} {'R':>4} {'res':>4} {'N':>6} {'reduce':>6} {'grid_sample':>12} {'native':>9} {'speedup':>8}")
    rows = []
    for op, rank, reduce in [("vm", 16, True), ("vm", 48, False), ("cp", 96, True), ("cp", 288, False)]:
        for resolution in (128, 300):
            for num_points in (10_000, 50_000):
                bench = bench_vm if op == "vm" else bench_cp
                ref, nat = bench(rank, resolution, num_points, reduce, args.repeats)
                print(f"{op:<4} {rank:>4} {resolution:>4} {num_points:>6} {reduce!s:>6} {ref * 1e3:>9.1f} ms {nat * 1e3:>6.1f} ms {ref / nat:>7.1f}x")
                rows.append(
                    {"op": op, "rank": rank, "resolution": resolution, "points": num_points, "reduce": reduce,
                     "reference_ms": round(ref * 1e3, 2), "native_ms": round(nat * 1e3, 2), "speedup": round(ref / nat, 2)}
                )  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return rows
