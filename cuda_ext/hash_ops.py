"""The hash-grid field's op: instant-ngp's multiresolution hash encoding of points in the unit cube.
Arguments are validated here, then the native kernel runs when built (gradient w.r.t. the table),
else the `cuda_ext.reference` twin. Points get no gradient on either path."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from . import reference
from ._backend import kernels_for
from ._checks import check_tensor

__all__ = ["hash_encode", "MAX_LEVELS", "MAX_RESOLUTION"]

#: the most levels a table may have (`kHashMaxLevels` in csrc/hashgrid/hashgrid.h)
MAX_LEVELS = 64
#: the finest resolution a level may have (the kernels index vertices in 32 bits)
MAX_RESOLUTION = 1 << 20


class _HashEncode(torch.autograd.Function):
    """Native hash encoding; the gradient w.r.t. the table only, when asked for (first order)."""

    @staticmethod
    def forward(ctx: Any, module: ModuleType, resolutions: list[int], points: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        ctx.module, ctx.resolutions = module, resolutions
        if ctx.needs_input_grad[3]:
            ctx.save_for_backward(points, table)
        return module.hash_encode_fwd(points, table, resolutions).t()  # [L * F, N] feature-major -> [N, L * F]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if not ctx.needs_input_grad[3]:
            return None, None, None, None
        points, table = ctx.saved_tensors
        return None, None, None, ctx.module.hash_encode_bwd(points, table, ctx.resolutions, grad_out.t().contiguous())


def _check_resolutions(base_resolution: object, finest_resolution: object) -> tuple[float, float]:
    """1 <= base <= finest <= `MAX_RESOLUTION`, both finite numbers."""
    for name, value in (("base_resolution", base_resolution), ("finest_resolution", finest_resolution)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= MAX_RESOLUTION:
            raise ValueError(f"{name} must be a number from 1 to {MAX_RESOLUTION}, got {value!r}")
    if finest_resolution < base_resolution:
        raise ValueError(f"finest_resolution ({finest_resolution}) must be at least base_resolution ({base_resolution})")
    return float(base_resolution), float(finest_resolution)


def hash_encode(points: torch.Tensor, table: torch.Tensor, base_resolution: float, finest_resolution: float) -> torch.Tensor:
    """Multiresolution hash encoding of `points` (instant-ngp); the contract of `reference.hash_encode`.

    Level l of the L levels has floor(base * b^l) cells per axis, b = exp((ln finest - ln base) / (L - 1))
    (`reference.hash_level_resolutions`); a level whose (R + 1)^3 vertices fit in T rows is indexed
    densely, the others by instant-ngp's spatial hash (a xor of the vertex coordinates times the primes
    1, 2654435761, 805459861, mod T); each level's F features are the trilinear interpolation of its 8
    corners' rows.

    Differentiable w.r.t. the table only: the points are constants (no gradient flows to them on
    either path, so a field built on this op gives camera poses no gradient through positions).

    Args:
        points: `[N, 3]` float32 or float64, normalized to the unit cube [0, 1]^3 (points outside are
            clamped to it, NaN read as 0).
        table: `[L, T, F]` of the points' dtype and device: L levels (1 to `MAX_LEVELS`), T = 2^k rows
            each, F features per row.
        base_resolution, finest_resolution: cells per axis of the coarsest and the finest level,
            1 <= base <= finest <= `MAX_RESOLUTION` (with one level, the base alone).
    Returns:
        `[N, L * F]`, level l's features at columns l * F to (l + 1) * F. The native kernels write
        them feature-major, so on that path this is the transpose of a contiguous `[L * F, N]`
        (matrix products take it as it is; `.contiguous()` it before a `.view`).
    """
    dtype = points.dtype if isinstance(points, torch.Tensor) and points.dtype in (torch.float32, torch.float64) else torch.float32
    points = check_tensor("points", points, (None, 3), dtype)
    table = check_tensor("table", table, (None, None, None), dtype, points.device)
    levels, size, features = table.shape
    if not 1 <= levels <= MAX_LEVELS:
        raise ValueError(f"table must have 1 to {MAX_LEVELS} levels, got {levels}")
    if size < 1 or size > 1 << 31 or size & (size - 1):
        raise ValueError(f"table must have a power-of-two number of rows per level (T = 2^k, k <= 31), got {size}")
    if features < 1:
        raise ValueError("table must have at least 1 feature per row, got 0")
    base_resolution, finest_resolution = _check_resolutions(base_resolution, finest_resolution)
    module = kernels_for(points.device)
    if module is None:
        return reference.hash_encode(points, table, base_resolution, finest_resolution)
    resolutions = reference.hash_level_resolutions(levels, base_resolution, finest_resolution)
    return _HashEncode.apply(module, resolutions, points, table)
