"""Strivec tri-vector ops: the covering-tensor lookup of a scale and the weighted tri-vector
products at the neighbours it finds. Arguments are validated here, then the native kernel runs
(gradients w.r.t. the lines) when built, else the `cuda_ext.reference` twin. The tensor indices
in `table` and `index` are checked to be in range only with `TENSORFIELDS_DEBUG=1` (reading them
is a device sync on CUDA; see `cuda_ext._checks`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import torch

from . import reference
from ._backend import kernels_for
from ._checks import check_index_range, check_tensor, debug_checks

__all__ = ["trivec_neighbors", "trivec_sample"]


def _check_float(name: str, value: object, shape: tuple[int | None, ...], device: torch.device | None = None) -> torch.Tensor:
    """A contiguous float32/float64 tensor of `shape` (its dtype checked by `check_tensor`)."""
    dtype = value.dtype if isinstance(value, torch.Tensor) and value.dtype in (torch.float32, torch.float64) else torch.float32
    return check_tensor(name, value, shape, dtype, device)


def _check_triple(name: str, values: object, kind: type) -> list:
    """Three finite numbers (`kind` int: positive integers)."""
    if not isinstance(values, Sequence) or len(values) != 3:
        raise ValueError(f"{name} must hold 3 values, got {values!r}")
    if kind is int and not all(isinstance(v, int) and v >= 1 for v in values):
        raise ValueError(f"{name} must be 3 positive integers, got {list(values)}")
    if kind is float and not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be 3 finite numbers, got {list(values)}")
    return [kind(v) for v in values]


def _check_positive(name: str, value: object) -> float:
    if not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _check_indices(name: str, indices: torch.Tensor, count: int) -> None:
    """With `debug_checks()`: every entry of `indices` is -1 (empty) or a tensor index in [0, count)."""
    if debug_checks():
        check_index_range(indices, -1, count, f"{name} holds tensor indices outside [-1, {count}) (-1 marks an empty slot)")


def _native_for(*tensors: torch.Tensor) -> ModuleType | None:
    """The extension module if it can run these tensors and none of them needs a gradient, else None."""
    return None if any(t.requires_grad for t in tensors) else kernels_for(tensors[0].device)


def trivec_neighbors(
    points: torch.Tensor,
    centers: torch.Tensor,
    half_size: float,
    table: torch.Tensor,
    origin: Sequence[float],
    cell_size: float,
    resolution: Sequence[int],
    k: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The `k` nearest tensors covering each point, their weights and local coordinates; same
    contract as `reference.trivec_neighbors` (no gradients: when points or centers require one,
    the reference runs instead).

    Args:
        points: `[N, 3]` float32 or float64; centers: `[T, 3]` of points' dtype and device.
        half_size: half the side of every tensor's cube (world units).
        table: `[C, M]` int32 tensor indices per grid cell (ascending, padded with -1), C = prod(resolution);
            the indices are checked to lie in [-1, T) with `TENSORFIELDS_DEBUG=1`.
        origin: the grid's lower corner (3 numbers); cell_size: its cells' side; resolution: cells per axis (3 ints).
        k: neighbour slots per point (>= 1).
    Returns:
        index `[N, k]` int64 (-1 in empty slots), weights `[N, k]`, local `[N, k, 3]`.
    """
    points = _check_float("points", points, (None, 3))
    check_tensor("centers", centers, (None, 3), points.dtype, points.device)
    check_tensor("table", table, (None, None), torch.int32, points.device)
    half_size = _check_positive("half_size", half_size)
    cell_size = _check_positive("cell_size", cell_size)
    origin = _check_triple("origin", origin, float)
    resolution = _check_triple("resolution", resolution, int)
    if table.shape[0] != math.prod(resolution):
        raise ValueError(f"table must have a row per grid cell ({math.prod(resolution)} for {resolution}), got {table.shape[0]}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    _check_indices("table", table, centers.shape[0])
    module = _native_for(points, centers)
    if module is None:
        return reference.trivec_neighbors(points, centers, half_size, table, origin, cell_size, resolution, k)
    return tuple(module.trivec_neighbors(points, centers, half_size, table, origin, cell_size, resolution, k))


class _TriVecSample(torch.autograd.Function):
    """Native tri-vector sampling; gradients w.r.t. the lines only."""

    @staticmethod
    def forward(ctx: Any, module: ModuleType, index: torch.Tensor, weights: torch.Tensor, local: torch.Tensor, reduce: bool,
                lines: torch.Tensor) -> torch.Tensor:  # fmt: skip
        ctx.module, ctx.reduce = module, reduce
        ctx.save_for_backward(lines, index, weights, local)
        return module.trivec_sample_fwd(lines, index, weights, local, reduce)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        lines, index, weights, local = ctx.saved_tensors
        grad_lines = ctx.module.trivec_sample_bwd(lines, index, weights, local, grad_out.contiguous(), ctx.reduce)
        return None, None, None, None, None, grad_lines


def trivec_sample(lines: torch.Tensor, index: torch.Tensor, weights: torch.Tensor, local: torch.Tensor, reduce: bool) -> torch.Tensor:
    """Weighted tri-vector products at neighbour slots; same contract as `reference.trivec_sample`.

    Differentiable w.r.t. the lines (the native kernel computes no gradient w.r.t. weights or
    local coordinates; when they require one, the reference runs instead).

    Args:
        lines: `[T, 3, R, L]` float32 or float64 (tensor, axis x/y/z, component, grid point), L >= 2.
        index: `[N, K]` int64, -1 or a tensor index (checked with `TENSORFIELDS_DEBUG=1`);
            weights: `[N, K]`; local: `[N, K, 3]` in [-1, 1]
            (the lines' dtype and device), as `trivec_neighbors` returns them.
        reduce: return the sum over components `[N]` instead of the components.
    Returns:
        `[R, N]`, or `[N]` if `reduce`.
    """
    lines = _check_float("lines", lines, (None, 3, None, None))
    if lines.shape[3] < 2:
        raise ValueError(f"lines must have at least 2 grid points, got {lines.shape[3]}")
    index = check_tensor("index", index, (None, None), torch.int64, lines.device)
    check_tensor("weights", weights, tuple(index.shape), lines.dtype, lines.device)
    check_tensor("local", local, (*index.shape, 3), lines.dtype, lines.device)
    _check_indices("index", index, lines.shape[0])
    module = _native_for(weights, local)
    if module is None:
        return reference.trivec_sample(lines, index, weights, local, reduce)
    return _TriVecSample.apply(module, index, weights, local, bool(reduce), lines)
