"""Factor-sampling ops of the TensoRF fields: validate arguments, then run the native kernel
(gradients w.r.t. the factors and the points) when built, else the `grid_sample` reference."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import torch

from . import reference
from ._backend import kernels_for
from ._checks import check_tensor

__all__ = ["vm_sample", "cp_sample"]


def _check_points(xn: object) -> torch.Tensor:
    """xn must be a contiguous float32/float64 `[N, 3]` tensor; returns it."""
    dtype = xn.dtype if isinstance(xn, torch.Tensor) and xn.dtype in (torch.float32, torch.float64) else torch.float32
    return check_tensor("xn", xn, (None, 3), dtype)


def _core(factor: torch.Tensor, dims: int) -> torch.Tensor:
    """A factor as its `dims`-d core: planes `[1, R, H, W]` -> `[R, H, W]`, lines `[1, R, L, 1]` -> `[R, L]`
    (a view; other tensors are returned as they are)."""
    if isinstance(factor, torch.Tensor) and factor.dim() == 4 and factor.shape[0] == 1 and (dims == 3 or factor.shape[3] == 1):
        return factor[0] if dims == 3 else factor[0, :, :, 0]
    return factor


def _check_factors(name: str, factors: object, dims: int, xn: torch.Tensor) -> list[torch.Tensor]:
    """`factors` must be 3 contiguous `dims`-d tensors (or the 4-d parameters of TensoRF's layout) of
    xn's dtype on xn's device; returns their `dims`-d cores."""
    if not isinstance(factors, Sequence) or len(factors) != 3:
        raise ValueError(f"{name} must be a sequence of 3 tensors, got {type(factors).__name__}")
    return [check_tensor(f"{name}[{i}]", _core(f, dims), (None,) * dims, xn.dtype, xn.device) for i, f in enumerate(factors)]


class _VMSample(torch.autograd.Function):
    """Native VM sampling; gradients w.r.t. the planes, lines and points, each only when asked for.
    The factors may be the 4-d parameters themselves: their cores are taken inside, so no view
    enters the autograd graph (a select's backward would copy every gradient into a zero tensor of
    the parameter's size)."""

    @staticmethod
    def forward(ctx: Any, module: ModuleType, xn: torch.Tensor, reduce: bool, *factors: torch.Tensor) -> torch.Tensor:
        ctx.module, ctx.reduce = module, reduce
        ctx.save_for_backward(xn, *factors)
        return module.vm_sample_fwd(_cores(factors[:3], 3), _cores(factors[3:], 2), xn, reduce)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        xn, *factors = ctx.saved_tensors
        planes, lines, grad_out = _cores(factors[:3], 3), _cores(factors[3:], 2), grad_out.contiguous()
        grad_xn = ctx.module.vm_sample_bwd_points(planes, lines, xn, grad_out, ctx.reduce) if ctx.needs_input_grad[1] else None
        if not any(ctx.needs_input_grad[3:]):
            return (None, grad_xn, None, *(None for _ in factors))
        grads = ctx.module.vm_sample_bwd(planes, lines, xn, grad_out, ctx.reduce)
        return (None, grad_xn, None, *(grad.view(factor.shape) for grad, factor in zip(grads, factors)))


class _CPSample(torch.autograd.Function):
    """Native CP sampling; gradients w.r.t. the lines and points; lines may be 4-d parameters (see _VMSample)."""

    @staticmethod
    def forward(ctx: Any, module: ModuleType, xn: torch.Tensor, reduce: bool, *lines: torch.Tensor) -> torch.Tensor:
        ctx.module, ctx.reduce = module, reduce
        ctx.save_for_backward(xn, *lines)
        return module.cp_sample_fwd(_cores(lines, 2), xn, reduce)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        xn, *lines = ctx.saved_tensors
        cores, grad_out = _cores(lines, 2), grad_out.contiguous()
        grad_xn = ctx.module.cp_sample_bwd_points(cores, xn, grad_out, ctx.reduce) if ctx.needs_input_grad[1] else None
        if not any(ctx.needs_input_grad[3:]):
            return (None, grad_xn, None, *(None for _ in lines))
        grads = ctx.module.cp_sample_bwd(cores, xn, grad_out, ctx.reduce)
        return (None, grad_xn, None, *(grad.view(line.shape) for grad, line in zip(grads, lines)))


def _cores(factors: Sequence[torch.Tensor], dims: int) -> list[torch.Tensor]:
    return [_core(factor, dims) for factor in factors]


def vm_sample(planes: Sequence[torch.Tensor], lines: Sequence[torch.Tensor], xn: torch.Tensor, reduce: bool) -> torch.Tensor:
    """TensoRF-VM plane x line products at normalized points; same contract as `reference.vm_sample`.

    Differentiable w.r.t. the planes, lines and xn (the gradient w.r.t. xn is grid_sample's: the
    bilinear weights' derivatives, which jump across grid lines).

    Args:
        planes: three contiguous planes `[R_i, H_i, W_i]`, or TensoRF's `[1, R_i, H_i, W_i]` parameters.
        lines: three contiguous lines `[R_i, L_i]`, or TensoRF's `[1, R_i, L_i, 1]` parameters.
        xn: points `[N, 3]` in [-1, 1], float32 or float64 (the factors' dtype).
        reduce: return the sum over all components `[N]` instead of the products.
    Returns:
        `[R_0 + R_1 + R_2, N]` (pair 0's components first), or `[N]` if `reduce`.
    """
    xn = _check_points(xn)
    plane_cores = _check_factors("planes", planes, 3, xn)
    line_cores = _check_factors("lines", lines, 2, xn)
    for i, (plane, line) in enumerate(zip(plane_cores, line_cores)):
        if plane.shape[0] != line.shape[0]:
            raise ValueError(f"planes[{i}] has {plane.shape[0]} components but lines[{i}] has {line.shape[0]}")
    module = kernels_for(xn.device)
    if module is None:
        return reference.vm_sample(plane_cores, line_cores, xn, reduce)
    return _VMSample.apply(module, xn, bool(reduce), *planes, *lines)


def cp_sample(lines: Sequence[torch.Tensor], xn: torch.Tensor, reduce: bool) -> torch.Tensor:
    """TensoRF-CP products of three line lookups at normalized points; same contract as `reference.cp_sample`.

    Differentiable w.r.t. the lines and xn.

    Args:
        lines: three contiguous lines `[R, L_a]` along x, y, z, or TensoRF's `[1, R, L_a, 1]` parameters.
        xn: points `[N, 3]` in [-1, 1], float32 or float64 (the lines' dtype).
        reduce: return the sum over components `[N]` instead of the products.
    Returns:
        `[R, N]`, or `[N]` if `reduce`.
    """
    xn = _check_points(xn)
    cores = _check_factors("lines", lines, 2, xn)
    if not cores[0].shape[0] == cores[1].shape[0] == cores[2].shape[0]:
        raise ValueError(f"lines must have the same number of components, got {[line.shape[0] for line in cores]}")
    module = kernels_for(xn.device)
    if module is None:
        return reference.cp_sample(cores, xn, reduce)
    return _CPSample.apply(module, xn, bool(reduce), *lines)
