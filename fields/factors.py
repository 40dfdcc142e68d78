"""Interpolated lookups into the 1D and 2D factors of tensor decompositions.

Coordinates are normalized to [-1, 1] over the factor's extent, with grid values at the ends
(`align_corners=True`, as TensoRF), so slicing a factor at grid points leaves values unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sample_plane", "sample_line", "resize_plane", "resize_line", "total_variation"]


def sample_plane(plane: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of a plane factor.

    Args:
        plane: `[1, R, H, W]`; W runs along the first coordinate, H along the second.
        coords: normalized coordinates `[N, 2]` in [-1, 1].
    Returns:
        `[R, N]` (components first: products and sums over factors stay contiguous).
    """
    out = F.grid_sample(plane, coords.view(1, -1, 1, 2), mode="bilinear", align_corners=True)
    return out.view(plane.shape[1], -1)


def sample_line(line: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Linear lookup of a line factor (a width-1 `grid_sample`, the fastest form in torch).

    Args:
        line: `[1, R, L, 1]`.
        coords: normalized coordinates `[N]` in [-1, 1].
    Returns:
        `[R, N]`.
    """
    grid = torch.stack([torch.zeros_like(coords), coords], dim=-1).view(1, -1, 1, 2)
    out = F.grid_sample(line, grid, mode="bilinear", align_corners=True)
    return out.view(line.shape[1], -1)


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
