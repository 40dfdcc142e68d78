"""Interpolated lookups into the 1D and 2D factors of tensor decompositions.

Coordinates are normalized to [-1, 1] over the factor's extent, with grid values at the ends
(`align_corners=True`, as TensoRF), so slicing a factor at grid points leaves values unchanged.
Factors are stored as `grid_sample` wants them (planes `[1, R, H, W]`, lines `[1, R, L, 1]`)
and passed as they are to the fused lookups `cuda_ext.vm_sample` / `cp_sample` (native kernels
when built, `grid_sample` otherwise). This module resamples and regularizes them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["resize_plane", "resize_line", "total_variation"]


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
