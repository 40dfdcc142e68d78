"""The Gaussian field's op: density and density-weighted features of a sum of 3D Gaussians at
sample points, each point visiting the Gaussians of its lookup-grid cell. Arguments are
validated here, then the native kernel runs when built (gradients w.r.t. the points and the
Gaussians, each only when asked for), else the `cuda_ext.reference` twin. The
Gaussian indices in `cell_gaussians` and the offsets in `cell_start` are checked only with
`TENSORFIELDS_DEBUG=1` (see `cuda_ext._checks`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from . import reference
from ._backend import kernels_for
from ._checks import check_index_range, check_tensor, debug_checks

__all__ = ["gaussian_mix"]


def _check_grid(origin: Sequence[float], cell_size: float, resolution: Sequence[int]) -> tuple[list[float], float, list[int]]:
    if not isinstance(origin, Sequence) or len(origin) != 3 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in origin):
        raise ValueError(f"origin must be 3 finite numbers, got {origin!r}")
    if not isinstance(cell_size, (int, float)) or not (math.isfinite(cell_size) and cell_size > 0):
        raise ValueError(f"cell_size must be a positive number, got {cell_size!r}")
    if not isinstance(resolution, Sequence) or len(resolution) != 3 or not all(isinstance(v, int) and v >= 1 for v in resolution):
        raise ValueError(f"resolution must be 3 positive integers, got {resolution!r}")
    return [float(v) for v in origin], float(cell_size), [int(v) for v in resolution]


#: the grid and cutoff as the native ops take them: origin (3 floats), cell_size, resolution (3 ints), cutoff
_Grid = tuple[list[float], float, list[int], float]


class _GaussianMix(torch.autograd.Function):
    """Native Gaussian mixture; gradients w.r.t. the points, means `[N, 3]`, precision factors
    `[N, 3, 3]`, peaks `[N]` and features `[N, F]`, each only when asked for (first order only)."""

    @staticmethod
    def forward(
        ctx: Any,
        module: ModuleType,
        grid: _Grid,
        points: torch.Tensor,
        means: torch.Tensor,
        precision_factors: torch.Tensor,
        peaks: torch.Tensor,
        features: torch.Tensor,
        cell_start: torch.Tensor,
        cell_gaussians: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = (points, means, precision_factors, peaks, features, cell_start, cell_gaussians)
        ctx.module, ctx.grid = module, grid
        ctx.save_for_backward(*inputs)
        density, mixed = module.gaussian_mix_fwd(*inputs, *grid)
        return density, mixed

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_density: torch.Tensor, grad_mixed: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        wanted = list(ctx.needs_input_grad[2:7])  # points, means, precision_factors, peaks, features
        grads = ctx.module.gaussian_mix_bwd(*ctx.saved_tensors, *ctx.grid, grad_density.contiguous(), grad_mixed.contiguous(), wanted)
        return (None, None, *grads, None, None)


def gaussian_mix(
    points: torch.Tensor,
    means: torch.Tensor,
    precision_factors: torch.Tensor,
    peaks: torch.Tensor,
    features: torch.Tensor,
    cell_start: torch.Tensor,
    cell_gaussians: torch.Tensor,
    origin: Sequence[float],
    cell_size: float,
    resolution: Sequence[int],
    cutoff: float = 3.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Density `[S]` and density-weighted features `[S, F]` of Gaussians at `points [S, 3]`;
    the contract of `reference.gaussian_mix` (differentiable w.r.t. points, means, precision
    factors, peaks and features)."""
    dtype = points.dtype if isinstance(points, torch.Tensor) and points.dtype in (torch.float32, torch.float64) else torch.float32
    points = check_tensor("points", points, (None, 3), dtype)
    device = points.device
    means = check_tensor("means", means, (None, 3), dtype, device)
    count = means.shape[0]
    check_tensor("precision_factors", precision_factors, (count, 3, 3), dtype, device)
    check_tensor("peaks", peaks, (count,), dtype, device)
    check_tensor("features", features, (count, None), dtype, device)
    origin, cell_size, resolution = _check_grid(origin, cell_size, resolution)
    check_tensor("cell_start", cell_start, (math.prod(resolution) + 1,), torch.int64, device)
    check_tensor("cell_gaussians", cell_gaussians, (None,), torch.int32, device)
    if not (isinstance(cutoff, (int, float)) and cutoff > 0):
        raise ValueError(f"cutoff must be a positive number of standard deviations, got {cutoff!r}")
    if debug_checks():
        check_index_range(cell_gaussians, 0, max(count, 1), f"cell_gaussians holds indices outside [0, {count})")
        check_index_range(cell_start, 0, cell_gaussians.shape[0] + 1, "cell_start holds offsets outside cell_gaussians")
        if bool((cell_start[1:] < cell_start[:-1]).any()):
            raise ValueError("cell_start must be non-decreasing")
    module = kernels_for(device)
    if module is None:
        return reference.gaussian_mix(
            points, means, precision_factors, peaks, features, cell_start, cell_gaussians, origin, cell_size, resolution, float(cutoff)
        )
    grid = (origin, cell_size, resolution, float(cutoff))
    return _GaussianMix.apply(module, grid, points, means, precision_factors, peaks, features, cell_start, cell_gaussians)
