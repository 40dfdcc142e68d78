"""Interpolated lookups into the 1D and 2D factors of tensor decompositions.

Coordinates are normalized to [-1, 1] over the factor's extent, with grid values at the ends
(`align_corners=True`, as TensoRF), so slicing a factor at grid points leaves values unchanged.
Factors are stored as `grid_sample` wants them (planes `[1, R, H, W]`, lines `[1, R, L, 1]`)
and passed as they are to the fused lookups `cuda_ext.vm_sample` / `cp_sample` (native kernels
when built, `grid_sample` otherwise). This module resamples, regularizes and blurs them.

Blurring a factor along its axes blurs the dense grid it is a factor of along the same axes: a
VM component `P(x, y) v(z)` blurred by a 3D Gaussian is `(G_xy * P)(x, y) (G_z * v)(z)`, since
the 3D Gaussian is separable, and with replicated borders on both sides the identity is exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["resize_plane", "resize_line", "total_variation", "gaussian_blur_matrix", "blur_factor", "BLUR_TRUNCATE"]

#: the Gaussian kernel of a blur is cut off at this many standard deviations (and renormalized)
BLUR_TRUNCATE = 3.0


def resize_plane(plane: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resampling of a `[1, R, H, W]` plane to `size = (H', W')` (grid values at the ends)."""
    return F.interpolate(plane.data, size=size, mode="bilinear", align_corners=True)


def resize_line(line: torch.Tensor, length: int) -> torch.Tensor:
    """Linear resampling of a `[1, R, L, 1]` line to `L'` (grid values at the ends)."""
    return F.interpolate(line.data, size=(length, 1), mode="bilinear", align_corners=True)


def total_variation(factor: torch.Tensor) -> torch.Tensor:
    """TensoRF's total variation of a `[1, R, H, W]` factor: mean squared finite differences."""
    h, w = factor.shape[2], factor.shape[3]
    tv = factor.new_zeros(())
    if h > 1:
        tv = tv + (factor[:, :, 1:, :] - factor[:, :, :-1, :]).pow(2).sum() / (factor.shape[1] * (h - 1) * w)
    if w > 1:
        tv = tv + (factor[:, :, :, 1:] - factor[:, :, :, :-1]).pow(2).sum() / (factor.shape[1] * h * (w - 1))
    return 2.0 * tv


def gaussian_blur_matrix(length: int, sigma: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """The `[L, L]` matrix of a 1D Gaussian convolution over `length` grid points: `M @ values`
    is `values [L]` convolved with a normalized Gaussian of `sigma` grid steps (cut off at
    `BLUR_TRUNCATE` sigma), borders replicated (the taps beyond an end read the end value).

    A matrix product with this banded matrix is the convolution: at the grid sizes of factors
    (tens to hundreds of points) one BLAS call beats a padded `conv1d` over thousands of rows.
    """
    radius = max(1, math.ceil(BLUR_TRUNCATE * sigma))
    offsets = torch.arange(-radius, radius + 1, device=device)
    kernel = torch.exp(-0.5 * (offsets.float() / sigma) ** 2)
    kernel = kernel / kernel.sum()
    rows = torch.arange(length, device=device)[:, None]
    columns = (rows + offsets[None, :]).clamp(0, length - 1)
    matrix = torch.zeros(length, length, device=device)
    return matrix.scatter_add_(1, columns, kernel.expand(length, -1).contiguous())


def blur_factor(factor: torch.Tensor, sigma: float, dims: tuple[int, ...]) -> torch.Tensor:
    """`factor` blurred along each of `dims` by a Gaussian of `sigma` grid steps (replicated
    borders, see `gaussian_blur_matrix`); differentiable. A plane `[1, R, H, W]` takes dims
    (2, 3), a line `[1, R, L, 1]` dim 2, Strivec's lines `[T, 3, R, L]` dim 3."""
    for dim in dims:
        matrix = gaussian_blur_matrix(factor.shape[dim], sigma, factor.device).to(factor.dtype)
        factor = (factor.movedim(dim, -1) @ matrix.t()).movedim(-1, dim)
    return factor
